// Evaluation sets: a folder of rendered scenes (PNG stills, MP4 videos) with ground-truth JSON
// beside each, as `winnow synth` writes them, plus `eval-set.json` saying how it was made. The
// seed must differ from the ones the model and its codebook saw (training 1000, model evaluation
// 2000, codebook building 3000).
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { WinnowError, throwIfAborted } from '../errors.js';
import { Rng, renderStill, stillAt, videoAt, watchAt, writeVideo, type QaPair, type StillTruth, type VideoTruth, type WatchTruth } from '../synth/index.js';
import type { SceneRef } from './types.js';

/** Seeds already used for the default model: its training, its own evaluation, its codebook. */
export const RESERVED_SEEDS: ReadonlyMap<number, string> = new Map([
  [1000, 'training the default model'],
  [2000, 'the default model\'s own evaluation'],
  [3000, 'building the default codebook'],
]);

export const DEFAULT_EVAL_SEED = 4000;
export const MANIFEST = 'eval-set.json';

export interface EvalSetManifest {
  world: string;
  seed: number;
  stills: number;
  videos: number;
  minDurationS: number;
  maxDurationS: number;
  /** Per video, in index order. */
  durationsS: number[];
}

export interface WriteEvalSetOptions {
  outDir: string;
  seed: number;
  stills: number;
  videos: number;
  /** Video durations are drawn uniformly (whole seconds) from [min, max]. Default 10–30 s. */
  minDurationS?: number;
  maxDurationS?: number;
  ffmpegPath?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalSet {
  dir: string;
  manifest: EvalSetManifest | null;
  scenes: SceneRef[];
}

function durationsFor(seed: number, videos: number, minS: number, maxS: number): number[] {
  // Its own stream, so the durations do not shift the scenes (videoAt seeds each video itself).
  const rng = new Rng((Math.imul(seed, 0x27d4eb2d) ^ 0x5bd1e995) >>> 0);
  return Array.from({ length: videos }, () => rng.int(minS, maxS));
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(value));
  await rename(`${path}.tmp`, path);
}

/**
 * Renders an evaluation set: stills (PNG) and videos of varying length (H.264 MP4), each with its
 * ground truth. Idempotent: scenes whose files already exist are kept (they are deterministic
 * from the seed), so an interrupted run resumes. Refuses a folder made with other parameters.
 */
export async function writeEvalSet(options: WriteEvalSetOptions): Promise<EvalSet> {
  const { outDir, seed, stills, videos } = options;
  const minS = options.minDurationS ?? 10;
  const maxS = options.maxDurationS ?? 30;
  for (const [k, v] of [['stills', stills], ['videos', videos], ['seed', seed]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${k} must be a non-negative integer`);
  }
  if (!(Number.isInteger(minS) && Number.isInteger(maxS) && minS >= 1 && maxS >= minS)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'video durations must be whole seconds with 1 ≤ min ≤ max');
  }
  await mkdir(outDir, { recursive: true });
  const manifest: EvalSetManifest = { world: 'synthetic-world-v1', seed, stills, videos, minDurationS: minS, maxDurationS: maxS, durationsS: durationsFor(seed, videos, minS, maxS) };
  const mpath = join(outDir, MANIFEST);
  if (existsSync(mpath)) {
    const old = JSON.parse(await readFile(mpath, 'utf8')) as EvalSetManifest;
    if (old.seed !== seed || old.minDurationS !== minS || old.maxDurationS !== maxS) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${outDir} holds a set made with seed ${old.seed}, durations ${old.minDurationS}–${old.maxDurationS} s; use another folder`);
    }
  }
  const total = stills + videos;
  let done = 0;
  for (let i = 0; i < stills; i++) {
    throwIfAborted(options.signal);
    const name = `still_${String(i).padStart(5, '0')}`;
    const png = join(outDir, `${name}.png`);
    const json = join(outDir, `${name}.json`);
    if (!existsSync(png) || !existsSync(json)) {
      const truth = stillAt(seed, i);
      await sharp(Buffer.from(renderStill(truth)), { raw: { width: truth.scene.width, height: truth.scene.height, channels: 3 } }).png().toFile(`${png}.tmp.png`);
      await rename(`${png}.tmp.png`, png);
      await writeJsonAtomic(json, truth);
    }
    options.onProgress?.(++done, total);
  }
  for (let i = 0; i < videos; i++) {
    throwIfAborted(options.signal);
    const name = `video_${String(i).padStart(5, '0')}`;
    const mp4 = join(outDir, `${name}.mp4`);
    const json = join(outDir, `${name}.json`);
    if (!existsSync(mp4) || !existsSync(json)) {
      const truth = videoAt(seed, i, manifest.durationsS[i] * 1000);
      await writeVideo(truth.scene, `${mp4}.tmp.mp4`, { ffmpegPath: options.ffmpegPath, signal: options.signal });
      await rename(`${mp4}.tmp.mp4`, mp4);
      await writeJsonAtomic(json, truth);
    }
    options.onProgress?.(++done, total);
  }
  await writeJsonAtomic(mpath, manifest);
  return loadEvalSet(outDir);
}

/**
 * Renders one long video (minutes at the world's 10 fps) into `dir` unless it is already there.
 * Its ground truth asks questions every `round(duration / 60)` seconds (videoAt's default).
 */
export async function writeLongVideo(dir: string, seed: number, minutes: number, options: { ffmpegPath?: string; signal?: AbortSignal } = {}): Promise<{ path: string; truthPath: string }> {
  if (!(Number.isInteger(minutes) && minutes >= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'long-video minutes must be a positive integer');
  await mkdir(dir, { recursive: true });
  const name = `long_${minutes}min_seed${seed}`;
  const path = join(dir, `${name}.mp4`);
  const truthPath = join(dir, `${name}.json`);
  if (!existsSync(path) || !existsSync(truthPath)) {
    // Index 10_000 + minutes keeps long videos apart from the set's short ones of the same seed.
    const truth = videoAt(seed, 10_000 + minutes, minutes * 60_000);
    await writeVideo(truth.scene, `${path}.tmp.mp4`, options);
    await rename(`${path}.tmp.mp4`, path);
    await writeJsonAtomic(truthPath, truth);
  }
  return { path, truthPath };
}

/**
 * Renders watch-profile video `index` of `seed` (durationMs long, questions at checkpointsMs) into
 * `dir` unless it is already there; the checkpoints are part of the name, since they change the truth.
 */
export async function writeWatchVideo(
  dir: string,
  seed: number,
  index: number,
  durationMs: number,
  checkpointsMs: readonly number[],
  options: { ffmpegPath?: string; signal?: AbortSignal } = {},
): Promise<{ path: string; truthPath: string; truth: WatchTruth }> {
  await mkdir(dir, { recursive: true });
  const truth = watchAt(seed, index, durationMs, checkpointsMs);
  const name = `watch_${Math.round(durationMs / 1000)}s_seed${seed}_${index}_cp${truth.checkpointsMs.map((c) => c / 1000).join('-')}`;
  const path = join(dir, `${name}.mp4`);
  const truthPath = join(dir, `${name}.json`);
  if (!existsSync(path) || !existsSync(truthPath)) {
    await writeVideo(truth.scene, `${path}.tmp.mp4`, options);
    await rename(`${path}.tmp.mp4`, path);
    await writeJsonAtomic(truthPath, truth);
  }
  return { path, truthPath, truth };
}

/** Lists the scenes of a set folder (stills first, then videos, each in name order). */
export async function loadEvalSet(dir: string): Promise<EvalSet> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_IO', `cannot read the evaluation set ${dir}`, { cause: e });
  }
  const set = new Set(names);
  const scenes: SceneRef[] = [];
  for (const n of [...names].sort()) {
    const m = /^(.*)\.(png|mp4)$/.exec(n);
    if (!m || !set.has(`${m[1]}.json`)) continue;
    scenes.push({ part: m[2] === 'png' ? 'stills' : 'videos', path: join(dir, n), truthPath: join(dir, `${m[1]}.json`), name: m[1] });
  }
  scenes.sort((a, b) => (a.part === b.part ? a.name.localeCompare(b.name) : a.part === 'stills' ? -1 : 1));
  const mpath = join(dir, MANIFEST);
  const manifest = existsSync(mpath) ? (JSON.parse(await readFile(mpath, 'utf8')) as EvalSetManifest) : null;
  if (scenes.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `no scenes (PNG/MP4 with a JSON beside) in ${dir}`);
  return { dir, manifest, scenes };
}

export async function readTruth(scene: SceneRef): Promise<StillTruth | VideoTruth> {
  const truth = JSON.parse(await readFile(scene.truthPath, 'utf8')) as StillTruth | VideoTruth;
  if (!truth || !Array.isArray((truth as { qa?: QaPair[] }).qa)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${basename(scene.truthPath)} is not ground truth of the synthetic world (no qa list)`);
  }
  return truth;
}
