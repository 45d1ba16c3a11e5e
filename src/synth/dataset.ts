import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { WinnowError, throwIfAborted } from '../errors.js';
import { frameQuestions, videoQuestions, type QaPair } from './qa.js';
import { renderBackground, renderFrame } from './raster.js';
import { Rng } from './rng.js';
import { objectsAt, sampleStill, sampleVideo, type StillScene, type VideoScene } from './scene.js';
import { writeVideo } from './video.js';
import { checkWatchDuration, sampleWatch, type WatchAppearance } from './watch.js';

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

/**
 * A watch-profile video (docs/default-model.md, "Long videos: the watch profile"): its plan (every
 * planned appearance, the object that carried it out or null when dropped), the rendered scene,
 * and questions at each checkpoint about the frame then and everything seen so far (V1–V4).
 */
export interface WatchTruth {
  world: typeof WORLD_VERSION;
  kind: 'watch';
  seed: number;
  index: number;
  scene: VideoScene;
  plan: WatchAppearance[];
  /** Times of the questions, whole seconds in ms, ascending; the last is the final sampled second. */
  checkpointsMs: number[];
  qa: QaPair[];
}

/** Default checkpoints as fractions of the video: early, middle and late ones, and the end. */
export const WATCH_CHECKPOINT_FRACTIONS: readonly number[] = [0.05, 0.25, 0.5, 0.75, 1];

/** Deterministic per-item generators, so item k of seed s is the same whatever else is rendered. */
export function stillAt(seed: number, index: number): StillTruth {
  const rng = new Rng((Math.imul(seed, 2654435761) ^ Math.imul(index + 1, 40503)) >>> 0);
  const scene = sampleStill(rng);
  return { world: WORLD_VERSION, kind: 'still', seed, index, scene, qa: frameQuestions(scene.objects, 0, rng) };
}

/** The last second a 1-fps viewer samples of a video durationMs long, in ms: questions "at the end" refer to it. */
export function lastSampledMs(durationMs: number): number {
  return Math.floor((durationMs - 1) / 1000) * 1000;
}

export function videoAt(seed: number, index: number, durationMs: number, qaIntervalMs?: number): VideoTruth {
  const rng = new Rng((Math.imul(seed, 2246822519) ^ Math.imul(index + 1, 3266489917)) >>> 0);
  const scene = sampleVideo(rng, { durationMs });
  const interval = qaIntervalMs ?? Math.max(1000, Math.round(durationMs / 60 / 1000) * 1000);
  const qa: QaPair[] = [];
  // Questions refer to whole seconds (what a 1-fps viewer sees); the last is at the final sampled second.
  const lastMs = lastSampledMs(durationMs);
  const times: number[] = [];
  for (let t = 0; t <= lastMs; t += interval) times.push(t);
  if (times[times.length - 1] !== lastMs) times.push(lastMs);
  for (const t of times) {
    qa.push(...frameQuestions(objectsAt(scene, t), t, rng));
    qa.push(...videoQuestions(scene, t, rng));
  }
  return { world: WORLD_VERSION, kind: 'video', seed, index, scene, qa };
}

function checkWatchOptions(durationMs: number, checkpointsMs: readonly number[] = []): void {
  checkWatchDuration(durationMs);
  for (const c of checkpointsMs) {
    if (!(Number.isFinite(c) && c >= 0 && c <= durationMs)) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `a checkpoint lies in the video (0 … ${durationMs} ms), not at ${c} ms`, { details: { checkpointMs: c, durationMs } });
    }
  }
}

/**
 * Watch video `index` of `seed`, durationMs long (10 min … 8 h), with questions at checkpointsMs
 * (ms from the start, each ≤ durationMs; default WATCH_CHECKPOINT_FRACTIONS). A checkpoint is taken
 * down to its whole second and the end is always one. The questions at a checkpoint depend only on
 * the video and that moment, not on which other checkpoints are asked.
 */
export function watchAt(seed: number, index: number, durationMs: number, checkpointsMs?: readonly number[]): WatchTruth {
  checkWatchOptions(durationMs, checkpointsMs);
  const itemSeed = (Math.imul(seed, 3266489917) ^ Math.imul(index + 1, 668265263)) >>> 0;
  const { scene, plan } = sampleWatch(new Rng(itemSeed), durationMs);
  const lastMs = lastSampledMs(durationMs);
  const wanted = checkpointsMs ?? WATCH_CHECKPOINT_FRACTIONS.map((f) => f * durationMs);
  const times = [...new Set([...wanted.map((c) => Math.min(lastMs, Math.floor(c / 1000) * 1000)), lastMs])].sort((a, b) => a - b);
  const qa: QaPair[] = [];
  for (const t of times) {
    const rng = new Rng((itemSeed ^ Math.imul(t / 1000 + 1, 2246822519)) >>> 0);
    qa.push(...frameQuestions(objectsAt(scene, t), t, rng));
    qa.push(...videoQuestions(scene, t, rng, { when: true }));
  }
  return { world: WORLD_VERSION, kind: 'watch', seed, index, scene, plan, checkpointsMs: times, qa };
}

export function renderStill(truth: StillTruth): Uint8Array {
  const s = truth.scene;
  return renderFrame(renderBackground(s.background, s.width, s.height), s.width, s.height, s.objects);
}

export type VideoProfile = 'busy' | 'watch';

export interface DatasetOptions {
  outDir: string;
  seed: number;
  stills: number;
  videos: number;
  durationS: number;
  /** `busy` (default): short videos full of events. `watch`: long, mostly empty ones (10 min … 8 h). */
  profile?: VideoProfile;
  /** Watch: question times in seconds from the start (default: WATCH_CHECKPOINT_FRACTIONS). */
  checkpointsS?: readonly number[];
  ffmpegPath?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Frames encoded so far of the video being written (a watch video can take minutes). */
  onFrames?: (framesDone: number, frameCount: number) => void;
}

/**
 * Writes stills (PNG + JSON) and videos (H.264 MP4 + JSON) with their ground truth: busy videos
 * as `video_NNNNN`, watch videos as `watch_NNNNN`.
 */
export async function writeDataset(options: DatasetOptions): Promise<{ files: string[] }> {
  const profile = options.profile ?? 'busy';
  // Whole ms: 600.3 s is 600300.0000000001 ms in floating point.
  const durationMs = Math.round(options.durationS * 1000);
  const checkpointsMs = options.checkpointsS?.map((c) => c * 1000);
  // Before anything is written: a bad flag should not leave half a folder behind.
  if (profile === 'watch' && options.videos > 0) checkWatchOptions(durationMs, checkpointsMs);
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
    const truth = profile === 'watch' ? watchAt(options.seed, i, durationMs, checkpointsMs) : videoAt(options.seed, i, durationMs);
    const name = `${profile === 'watch' ? 'watch' : 'video'}_${String(i).padStart(5, '0')}`;
    const mp4 = join(options.outDir, `${name}.mp4`);
    await writeVideo(truth.scene, mp4, { ffmpegPath: options.ffmpegPath, signal: options.signal, onProgress: options.onFrames });
    await writeFile(join(options.outDir, `${name}.json`), JSON.stringify(truth));
    files.push(mp4);
    options.onProgress?.(++done, total);
  }
  return { files };
}
