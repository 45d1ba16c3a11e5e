// Helpers for the ingest tests: the ffmpeg builds to run against, small videos made with ffmpeg's
// lavfi sources in a temp dir, frames collected from a stream, and the pids a stream spawned.
// The repo-wide parts (temp dirs, the media-making ffmpeg, process checks) live in test/shared.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import type { Observable } from 'rxjs';
import { resolveFfmpegPath, resolveFfprobePath } from '../../src/ingest/index.js';
import type { Frame, IngestEvent } from '../../src/ingest/index.js';
import type { WinnowError } from '../../src/errors.js';
import { GEN_FFPROBE, ffmpegSync, tempDirSync } from '../shared/index.js';

// Re-exported for test/stream/fuzz, which imports them from this file.
export { GEN_FFMPEG, GEN_FFPROBE, isAlive, waitGone } from '../shared/index.js';

const require = createRequire(import.meta.url);

/** The ffmpeg builds every core test runs against: whatever is on PATH (Debian 5.1 here) and the bundled 4.1. */
export interface FfmpegBuild {
  name: string;
  ffmpegPath: string;
  ffprobePath: string;
}

export function ffmpegBuilds(): FfmpegBuild[] {
  const builds: FfmpegBuild[] = [];
  const system = { name: 'PATH', ffmpegPath: resolveFfmpegPath().path, ffprobePath: resolveFfprobePath().path };
  builds.push(system);
  const bundled = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
  const bundledProbe = (require('@ffprobe-installer/ffprobe') as { path: string }).path;
  if (bundled !== system.ffmpegPath) builds.push({ name: 'bundled-4.1', ffmpegPath: bundled, ffprobePath: bundledProbe });
  return builds;
}

export class Workdir {
  readonly #tmp = tempDirSync('winnow-ingest-');
  readonly dir = this.#tmp.dir;
  path(name: string): string {
    return join(this.dir, name);
  }
  /** Runs ffmpeg with `args` writing `name`; returns the output path. */
  ffmpeg(name: string, args: string[]): string {
    const out = this.path(name);
    ffmpegSync([...args, out]);
    return out;
  }
  /** A lavfi testsrc2 clip: `seconds` long at `rate` fps, `size` WxH, encoded with `codecArgs`. */
  clip(name: string, opts: { seconds: number; rate: number; size: string; codecArgs: string[]; extraFilter?: string }): string {
    const vf = opts.extraFilter ? ['-vf', opts.extraFilter] : [];
    return this.ffmpeg(name, ['-f', 'lavfi', '-i', `testsrc2=size=${opts.size}:rate=${opts.rate}:duration=${opts.seconds}`, ...vf, ...opts.codecArgs]);
  }
  write(name: string, data: Uint8Array | string): string {
    const p = this.path(name);
    writeFileSync(p, data);
    return p;
  }
  cleanup(): void {
    this.#tmp.cleanup();
  }
}

export type Rgb = readonly [number, number, number];
export const RED: Rgb = [255, 0, 0];
export const GREEN: Rgb = [0, 255, 0];
export const BLUE: Rgb = [0, 0, 255];
export const WHITE: Rgb = [255, 255, 255];

/**
 * A 64×48 quadrant pattern with exactly known colours: top-left red, top-right blue, bottom-left white,
 * bottom-right green. Written as PNG by sharp, so the pixels do not depend on any ffmpeg build.
 */
export async function writeQuadrantPng(path: string): Promise<void> {
  const w = 64;
  const h = 48;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const c = y < h / 2 ? (x < w / 2 ? RED : BLUE) : x < w / 2 ? WHITE : GREEN;
      raw.set(c, (y * w + x) * 3);
    }
  }
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
}

export function pixel(frame: Frame, x: number, y: number): [number, number, number] {
  const i = (y * frame.width + x) * 3;
  return [frame.data[i], frame.data[i + 1], frame.data[i + 2]];
}

export function near(actual: readonly number[], expected: readonly number[], tolerance: number): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance);
}

export interface Collected {
  frames: Frame[];
  error: WinnowError | undefined;
  events: IngestEvent[];
}

/** Subscribes and gathers every frame and the terminal error (if any). */
export function collect(make: (onEvent: (e: IngestEvent) => void) => Observable<Frame>): Promise<Collected> {
  const events: IngestEvent[] = [];
  const frames: Frame[] = [];
  return new Promise((resolve) => {
    make((e) => events.push(e)).subscribe({
      next: (f) => frames.push(f),
      error: (e: WinnowError) => resolve({ frames, error: e, events }),
      complete: () => resolve({ frames, error: undefined, events }),
    });
  });
}

export function spawnedPids(events: IngestEvent[]): number[] {
  return events.flatMap((e) => (e.type === 'spawn' ? [e.pid] : []));
}

/** Frame timestamps (ms) as ffprobe decodes them: the reference for sampling tests. */
export function probeFrameTimesMs(file: string): number[] {
  const r = spawnSync(GEN_FFPROBE, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=best_effort_timestamp_time,pts_time', '-of', 'csv=p=0', file], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(',').find((v) => v.trim() && v.trim() !== 'N/A'))
    .filter((v): v is string => v !== undefined)
    .map((v) => Math.round(Number(v) * 1000));
}

/** The sampling rule openVideo documents: the first frame of each 1/fps bucket. */
export function expectedSample(timesMs: number[], fps: number): number[] {
  const out: number[] = [];
  let lastBucket = Number.NEGATIVE_INFINITY;
  for (const t of timesMs) {
    const b = Math.floor((t / 1000) * fps + 0.001);
    if (b > lastBucket) {
      out.push(t);
      lastBucket = b;
    }
  }
  return out;
}
