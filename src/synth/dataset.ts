import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { throwIfAborted } from '../errors.js';
import { frameQuestions, videoQuestions, type QaPair } from './qa.js';
import { renderBackground, renderFrame } from './raster.js';
import { Rng } from './rng.js';
import { objectsAt, sampleStill, sampleVideo, type StillScene, type VideoScene } from './scene.js';
import { writeVideo } from './video.js';

export const WORLD_VERSION = 'synthetic-world-v1';

export interface StillTruth {
  world: typeof WORLD_VERSION;
  kind: 'still';
  seed: number;
  index: number;
  scene: StillScene;
  qa: QaPair[];
}

export interface VideoTruth {
  world: typeof WORLD_VERSION;
  kind: 'video';
  seed: number;
  index: number;
  scene: VideoScene;
  qa: QaPair[];
}

/** Deterministic per-item generators, so item k of seed s is the same whatever else is rendered. */
export function stillAt(seed: number, index: number): StillTruth {
  const rng = new Rng((Math.imul(seed, 2654435761) ^ Math.imul(index + 1, 40503)) >>> 0);
  const scene = sampleStill(rng);
  return { world: WORLD_VERSION, kind: 'still', seed, index, scene, qa: frameQuestions(scene.objects, 0, rng) };
}

export function videoAt(seed: number, index: number, durationMs: number, qaIntervalMs?: number): VideoTruth {
  const rng = new Rng((Math.imul(seed, 2246822519) ^ Math.imul(index + 1, 3266489917)) >>> 0);
  const scene = sampleVideo(rng, { durationMs });
  const interval = qaIntervalMs ?? Math.max(1000, Math.round(durationMs / 60 / 1000) * 1000);
  const qa: QaPair[] = [];
  // Questions refer to whole seconds (what a 1-fps viewer sees); the last is at the final sampled second.
  const lastS = Math.floor((durationMs - 1) / 1000);
  const times: number[] = [];
  for (let t = 0; t <= lastS * 1000; t += interval) times.push(t);
  if (times[times.length - 1] !== lastS * 1000) times.push(lastS * 1000);
  for (const t of times) {
    qa.push(...frameQuestions(objectsAt(scene, t), t, rng));
    qa.push(...videoQuestions(scene, t, rng));
  }
  return { world: WORLD_VERSION, kind: 'video', seed, index, scene, qa };
}

export function renderStill(truth: StillTruth): Uint8Array {
  const s = truth.scene;
  return renderFrame(renderBackground(s.background, s.width, s.height), s.width, s.height, s.objects);
}

export interface DatasetOptions {
  outDir: string;
  seed: number;
  stills: number;
  videos: number;
  durationS: number;
  ffmpegPath?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Writes stills (PNG + JSON) and videos (H.264 MP4 + JSON) with their ground truth. */
export async function writeDataset(options: DatasetOptions): Promise<{ files: string[] }> {
  await mkdir(options.outDir, { recursive: true });
  const files: string[] = [];
  const total = options.stills + options.videos;
  let done = 0;
  for (let i = 0; i < options.stills; i++) {
    throwIfAborted(options.signal);
    const truth = stillAt(options.seed, i);
    const name = `still_${String(i).padStart(5, '0')}`;
    const png = join(options.outDir, `${name}.png`);
    await sharp(Buffer.from(renderStill(truth)), { raw: { width: truth.scene.width, height: truth.scene.height, channels: 3 } }).png().toFile(png);
    await writeFile(join(options.outDir, `${name}.json`), JSON.stringify(truth, null, 1));
    files.push(png);
    options.onProgress?.(++done, total);
  }
  for (let i = 0; i < options.videos; i++) {
    throwIfAborted(options.signal);
    const truth = videoAt(options.seed, i, options.durationS * 1000);
    const name = `video_${String(i).padStart(5, '0')}`;
    const mp4 = join(options.outDir, `${name}.mp4`);
    await writeVideo(truth.scene, mp4, { ffmpegPath: options.ffmpegPath, signal: options.signal });
    await writeFile(join(options.outDir, `${name}.json`), JSON.stringify(truth));
    files.push(mp4);
    options.onProgress?.(++done, total);
  }
  return { files };
}
