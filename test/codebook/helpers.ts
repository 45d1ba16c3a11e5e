// Shared fixtures: a few rendered stills (seed 5: neither the training nor the evaluation seed)
// and encoding them with the default model.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, of, take } from 'rxjs';
import { encode, type ModelFolder } from '../../src/encode/index.js';
import { openVideo } from '../../src/ingest/index.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { writeDataset } from '../../src/synth/index.js';
import { GEN_FFMPEG, tempDir, type TempDir } from '../shared/index.js';

/** Renders `count` stills into a fresh temp dir; returns the dir (the caller cleans it up) and the PNG paths. */
export async function renderStills(count: number, seed = 5): Promise<TempDir & { files: string[] }> {
  const t = await tempDir('winnow-cb-imgs-');
  await writeDataset({ outDir: t.dir, seed, stills: count, videos: 0, durationS: 1, ffmpegPath: GEN_FFMPEG });
  const files = readdirSync(t.dir).filter((f) => f.endsWith('.png')).sort().map((f) => join(t.dir, f));
  return { ...t, files };
}

export async function encodeFile(folder: ModelFolder, path: string): Promise<EncodedFrame> {
  const frame = await lastValueFrom(openVideo(path, { size: { width: 112, height: 112 }, resize: 'pad' }).pipe(take(1)));
  return lastValueFrom(of(frame).pipe(encode(folder, { maxWaitMs: 0 })));
}
