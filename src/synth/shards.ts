import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, rename, rm, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { WinnowError, throwIfAborted } from '../errors.js';
import { resolveFfmpegPath } from '../ingest/ffmpeg.js';
import { appearedBy, frameQuestions, videoQuestions, type QaPair } from './qa.js';
import { patchLabels, renderBackground, renderFrame, type PatchGeometry } from './raster.js';
import { Rng } from './rng.js';
import { objectsAt, sampleStill, sampleVideo, type PlacedObject, type VideoScene } from './scene.js';
import { writeVideo } from './video.js';
import { COLORS, SHAPES } from './world.js';

export type VideoMix = 'natural' | 'apart-rich';

/**
 * True when, at the last frame sampled at `sampleFps`, some shape's V3 answer (objects of that shape
 * that appeared so far, `appearedBy`) exceeds the most of that shape present together in any one
 * sampled frame: the count cannot be read off a single frame.
 */
export function hasApartCount(scene: VideoScene, sampleFps: number): boolean {
  const frameCount = Math.floor((scene.durationMs * sampleFps) / 1000 - 1e-9) + 1;
  const most = new Map<string, number>();
  const now = new Map<string, number>();
  for (let k = 0; k < frameCount; k++) {
    now.clear();
    for (const o of objectsAt(scene, Math.round((k * 1000) / sampleFps))) now.set(o.shape, (now.get(o.shape) ?? 0) + 1);
    for (const [shape, n] of now) most.set(shape, Math.max(most.get(shape) ?? 0, n));
  }
  const appeared = new Map<string, number>();
  for (const o of appearedBy(scene, Math.round(((frameCount - 1) * 1000) / sampleFps))) appeared.set(o.shape, (appeared.get(o.shape) ?? 0) + 1);
  for (const [shape, n] of appeared) if (n > (most.get(shape) ?? 0)) return true;
  return false;
}

export interface ShardOptions {
  outDir: string;
  seed: number;
  stills: number;
  videos: number;
  /** Video durations are drawn uniformly from this range. */
  minDurationS?: number;
  maxDurationS?: number;
  /** Frames per shard chunk (stills) / videos per chunk. */
  stillsPerChunk?: number;
  videosPerChunk?: number;
  geometry: PatchGeometry;
  /** ffmpeg filter that maps a canvas frame to the model input (the same one ingest uses). */
  inputFilter: string;
  /** Sampling rate of video frames for training. */
  sampleFps?: number;
  /**
   * Which videos the shards keep. `natural` (default): every video the world samples.
   * `apart-rich`: only videos in which, at their last sampled frame, some shape has had more
   * distinct objects than were ever present together in one sampled frame, i.e. where V3
   * ("how many {shape}s appeared?") cannot be answered from any single frame. About 4 % of
   * natural videos' V3 questions are of that kind; a trainer mixes these shards in to see more.
   * Each kept video is still an ordinary world video (rejection sampling, same generator).
   */
  videoMix?: VideoMix;
  /** `apart-rich`: draws per kept video before giving up (WINNOW_ERR_INVALID_ARGUMENT). */
  maxDrawsPerVideo?: number;
  ffmpegPath?: string;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Class of a patch for dense supervision: 0 background, 1 + shape·6 + colour for an object. */
function classOf(o: PlacedObject): number {
  return 1 + SHAPES.indexOf(o.shape) * COLORS.length + COLORS.indexOf(o.color);
}

function labelBytes(objects: readonly PlacedObject[], width: number, height: number, geometry: PatchGeometry, out: Uint8Array, offset: number): void {
  const { owner, centre, coverage } = patchLabels(objects, width, height, geometry);
  const n = owner.length;
  for (let i = 0; i < n; i++) {
    out[offset + i * 3] = owner[i] < 0 ? 0 : classOf(objects[owner[i]]);
    out[offset + i * 3 + 1] = centre[i];
    out[offset + i * 3 + 2] = Math.round(coverage[i] * 255);
  }
}

/** Runs ffmpeg: MP4 in, model-input RGB24 frames out (optionally every n-th frame). */
async function decodeFrames(mp4: string, filter: string, everyNth: number, ffmpegPath: string, frameBytes: number): Promise<Uint8Array> {
  const vf = everyNth > 1 ? `select=not(mod(n\\,${everyNth})),${filter}` : filter;
  const child = spawn(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-i', mp4, '-vf', vf, '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
  const chunks: Buffer[] = [];
  const err: string[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new WinnowError('WINNOW_ERR_FFMPEG_EXIT', `ffmpeg failed decoding ${mp4}`, { details: { stderr: err.join('').split('\n').slice(-10) } });
  const buf = Buffer.concat(chunks);
  if (buf.length % frameBytes !== 0) throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `decoded ${buf.length} bytes, not a whole number of frames`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path + '.tmp', data);
  await rename(path + '.tmp', path);
}

/**
 * Writes training shards: chunks of stills and of videos, each rendered, H.264-encoded, decoded back
 * through the model-input filter, with per-patch labels and every question the world allows.
 * A chunk is written atomically and skipped when it already exists, so an interrupted run resumes.
 */
export async function writeShards(options: ShardOptions): Promise<void> {
  const ffmpegPath = options.ffmpegPath ?? resolveFfmpegPath().path;
  const side = options.geometry.inputSize;
  const frameBytes = side * side * 3;
  const grid = Math.floor(side / options.geometry.patchSize);
  const labelPer = grid * grid * 3;
  const stillsPerChunk = options.stillsPerChunk ?? 500;
  const videosPerChunk = options.videosPerChunk ?? 25;
  const sampleFps = options.sampleFps ?? 1;
  await mkdir(options.outDir, { recursive: true });
  const tmp = join(options.outDir, 'tmp');
  await mkdir(tmp, { recursive: true });

  const jobs: (() => Promise<void>)[] = [];
  const stillChunks = Math.ceil(options.stills / stillsPerChunk);
  const videoChunks = Math.ceil(options.videos / videosPerChunk);
  const total = stillChunks + videoChunks;
  let done = 0;

  for (let c = 0; c < stillChunks; c++) {
    jobs.push(async () => {
      const base = join(options.outDir, `stills_${String(c).padStart(4, '0')}`);
      if (await exists(base + '.jsonl')) return;
      const count = Math.min(stillsPerChunk, options.stills - c * stillsPerChunk);
      const rng = new Rng((options.seed * 1000003 + c * 7919 + 1) >>> 0);
      const scenes = Array.from({ length: count }, () => sampleStill(rng));
      // Stills become the frames of one 10-fps clip, so they go through H.264 like user video.
      const mp4 = join(tmp, `stills_${c}.mp4`);
      await encodeFrames(scenes.map((s) => () => renderFrame(renderBackground(s.background, s.width, s.height), s.width, s.height, s.objects)), 256, 192, mp4, ffmpegPath);
      const pixels = await decodeFrames(mp4, options.inputFilter, 1, ffmpegPath, frameBytes);
      if (pixels.length !== count * frameBytes) throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `stills chunk ${c}: expected ${count} frames`);
      const labels = new Uint8Array(count * labelPer);
      const lines: string[] = [];
      scenes.forEach((s, i) => {
        labelBytes(s.objects, s.width, s.height, options.geometry, labels, i * labelPer);
        lines.push(JSON.stringify({ i, background: s.background.name, objects: s.objects, qa: frameQuestions(s.objects, 0, rng) }));
      });
      await atomicWrite(base + '.rgb', pixels);
      await atomicWrite(base + '.labels', labels);
      await atomicWrite(base + '.jsonl', lines.join('\n') + '\n');
      await rm(mp4, { force: true });
    });
  }
  for (let c = 0; c < videoChunks; c++) {
    jobs.push(async () => {
      const base = join(options.outDir, `videos_${String(c).padStart(4, '0')}`);
      if (await exists(base + '.jsonl')) return;
      const count = Math.min(videosPerChunk, options.videos - c * videosPerChunk);
      const rng = new Rng((options.seed * 1000003 + c * 104729 + 2) >>> 0);
      const allPixels: Uint8Array[] = [];
      const allLabels: Uint8Array[] = [];
      const lines: string[] = [];
      let frameOffset = 0;
      for (let v = 0; v < count; v++) {
        throwIfAborted(options.signal);
        const scene = drawVideo(rng, options, sampleFps);
        const mp4 = join(tmp, `video_${c}_${v}.mp4`);
        await writeVideo(scene, mp4, { ffmpegPath, signal: options.signal });
        const every = Math.round(scene.fps / sampleFps);
        const pixels = await decodeFrames(mp4, options.inputFilter, every, ffmpegPath, frameBytes);
        await rm(mp4, { force: true });
        const n = pixels.length / frameBytes;
        const labels = new Uint8Array(n * labelPer);
        const perFrame: { tMs: number; qa: QaPair[] }[] = [];
        for (let k = 0; k < n; k++) {
          const tMs = Math.round((k * 1000) / sampleFps);
          const objs = objectsAt(scene, tMs);
          labelBytes(objs, scene.width, scene.height, options.geometry, labels, k * labelPer);
          perFrame.push({ tMs, qa: [...frameQuestions(objs, tMs, rng), ...videoQuestions(scene, tMs, rng)] });
        }
        allPixels.push(pixels);
        allLabels.push(labels);
        lines.push(JSON.stringify({ v, frameOffset, numFrames: n, durationMs: scene.durationMs, background: scene.background.name, objects: scene.objects, frames: perFrame }));
        frameOffset += n;
      }
      await atomicWrite(base + '.rgb', concat(allPixels));
      await atomicWrite(base + '.labels', concat(allLabels));
      await atomicWrite(base + '.jsonl', lines.join('\n') + '\n');
    });
  }

  const meta = {
    world: 'synthetic-world-v1',
    seed: options.seed,
    inputSize: side,
    patchSize: options.geometry.patchSize,
    grid,
    inputFilter: options.inputFilter,
    sampleFps,
    videoMix: options.videoMix ?? 'natural',
    stills: options.stills,
    videos: options.videos,
    labelFormat: 'uint8 [frames, grid*grid, 3]: class (0 background, 1 + shape*6 + colour), centre flag, coverage*255',
    shapes: SHAPES,
    colors: COLORS,
  };
  await atomicWrite(join(options.outDir, 'meta.json'), JSON.stringify(meta, null, 2));

  const concurrency = Math.max(1, options.concurrency ?? 2);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      throwIfAborted(options.signal);
      const job = jobs[next++];
      await job();
      done++;
      options.onProgress?.(done, total);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await rm(tmp, { recursive: true, force: true });
}

function drawVideo(rng: Rng, options: ShardOptions, sampleFps: number): VideoScene {
  const mix = options.videoMix ?? 'natural';
  const maxDraws = mix === 'natural' ? 1 : options.maxDrawsPerVideo ?? 1000;
  for (let draw = 0; draw < maxDraws; draw++) {
    const durationS = rng.int(options.minDurationS ?? 10, options.maxDurationS ?? 30);
    const scene = sampleVideo(rng, { durationMs: durationS * 1000 });
    if (mix === 'natural' || hasApartCount(scene, sampleFps)) return scene;
  }
  throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `video mix ${mix}: no video qualified in ${maxDraws} draws`, { details: { mix, maxDraws } });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Encodes frames produced one at a time by `render` into an H.264 MP4 at 10 fps. */
async function encodeFrames(renders: (() => Uint8Array)[], width: number, height: number, outPath: string, ffmpegPath: string): Promise<void> {
  const child = spawn(ffmpegPath, [
    '-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', '10', '-i', 'pipe:0',
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', outPath,
  ]);
  const err: string[] = [];
  child.stderr.on('data', (d: Buffer) => err.push(d.toString()));
  const closed = once(child, 'close') as Promise<[number | null]>;
  for (const render of renders) if (!child.stdin.write(render())) await once(child.stdin, 'drain');
  child.stdin.end();
  const [code] = await closed;
  if (code !== 0) throw new WinnowError('WINNOW_ERR_FFMPEG_EXIT', `ffmpeg failed encoding ${outPath}`, { details: { stderr: err.join('').split('\n').slice(-10) } });
}
