// Shared fixtures: a few rendered stills (seed 5: neither the training nor the evaluation seed)
// and encoding them with the default model.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, of, take } from 'rxjs';
import { encode, type ModelFolder } from '../../src/encode/index.js';
import { openVideo } from '../../src/ingest/index.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { writeDataset } from '../../src/synth/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MODEL_DIR = join(repoRoot, 'models', 'winnow-tiny');
export const CLI = join(repoRoot, 'src', 'cli', 'index.ts');

/** Renders `count` stills into a fresh temp dir; returns the dir and the PNG paths. */
export async function renderStills(count: number, seed = 5): Promise<{ dir: string; files: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'winnow-cb-imgs-'));
  await writeDataset({ outDir: dir, seed, stills: count, videos: 0, durationS: 1, ffmpegPath: process.env.WINNOW_FFMPEG });
  const files = readdirSync(dir).filter((f) => f.endsWith('.png')).sort().map((f) => join(dir, f));
  return { dir, files };
}

export async function encodeFile(folder: ModelFolder, path: string): Promise<EncodedFrame> {
  const frame = await lastValueFrom(openVideo(path, { size: { width: 112, height: 112 }, resize: 'pad' }).pipe(take(1)));
  return lastValueFrom(of(frame).pipe(encode(folder, { maxWaitMs: 0 })));
}
