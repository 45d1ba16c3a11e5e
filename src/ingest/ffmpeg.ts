import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { spawn } from 'node:child_process';
import { WinnowError } from '../errors.js';
import type { FfmpegLocateOptions, FrameSize, ResizeMode } from './types.js';

/** Where a binary was found, in resolution order. */
export type BinarySource = 'option' | 'env' | 'path' | 'bundled';

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
}

export interface ResolvedFfmpeg {
  ffmpeg: ResolvedBinary;
  ffprobe: ResolvedBinary;
}

/** The default model's pad colour: round-down(image_mean·255) = 127 (docs/default-model.md). */
export const DEFAULT_PAD_COLOR = '0x7f7f7f';

const require = createRequire(import.meta.url);

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function searchPathFor(name: string, searchPath: string | undefined): string | undefined {
  // PATH is what spawn() itself would search; reading it here is not configuration, and callers may override it.
  const list = searchPath ?? process.env.PATH ?? '';
  const exe = process.platform === 'win32' ? `${name}.exe` : name;
  for (const dir of list.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, exe);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function bundledPath(pkg: '@ffmpeg-installer/ffmpeg' | '@ffprobe-installer/ffprobe'): string | undefined {
  try {
    // These packages throw a plain string when their platform binary is missing.
    const mod = require(pkg) as { path?: unknown };
    return typeof mod.path === 'string' && isExecutableFile(mod.path) ? mod.path : undefined;
  } catch {
    return undefined;
  }
}

function resolveOne(
  name: 'ffmpeg' | 'ffprobe',
  explicit: string | undefined,
  fromEnv: string | undefined,
  searchPath: string | undefined,
): ResolvedBinary {
  const notFound = (what: string, tried: string[]): WinnowError =>
    new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `${name} not found: ${what}`, { details: { binary: name, tried } });
  if (explicit) {
    if (!isExecutableFile(explicit)) throw notFound(`option path ${explicit} is not an executable file`, [explicit]);
    return { path: explicit, source: 'option' };
  }
  if (fromEnv) {
    const envName = name === 'ffmpeg' ? 'WINNOW_FFMPEG' : 'WINNOW_FFPROBE';
    if (!isExecutableFile(fromEnv)) throw notFound(`${envName}=${fromEnv} is not an executable file`, [fromEnv]);
    return { path: fromEnv, source: 'env' };
  }
  const onPath = searchPathFor(name, searchPath);
  if (onPath) return { path: onPath, source: 'path' };
  const bundled = bundledPath(name === 'ffmpeg' ? '@ffmpeg-installer/ffmpeg' : '@ffprobe-installer/ffprobe');
  if (bundled) return { path: bundled, source: 'bundled' };
  throw notFound('not on PATH and the bundled @ffmpeg-installer/@ffprobe-installer binaries are missing', []);
}

/** ffmpeg only: explicit option → WINNOW_FFMPEG (given by the entry point) → PATH → @ffmpeg-installer/ffmpeg. */
export function resolveFfmpegPath(options: FfmpegLocateOptions = {}): ResolvedBinary {
  return resolveOne('ffmpeg', options.ffmpegPath, options.env?.WINNOW_FFMPEG, options.searchPath);
}

/** ffprobe only: explicit option → WINNOW_FFPROBE (given by the entry point) → PATH → @ffprobe-installer/ffprobe. */
export function resolveFfprobePath(options: FfmpegLocateOptions = {}): ResolvedBinary {
  return resolveOne('ffprobe', options.ffprobePath, options.env?.WINNOW_FFPROBE, options.searchPath);
}

/** Both binaries; throws `WINNOW_ERR_FFMPEG_NOT_FOUND` naming the missing one. */
export function resolveFfmpeg(options: FfmpegLocateOptions = {}): ResolvedFfmpeg {
  return { ffmpeg: resolveFfmpegPath(options), ffprobe: resolveFfprobePath(options) };
}

/** First line of `<binary> -version`, e.g. `ffmpeg version 5.1.6-0+deb12u1 …`. */
export async function binaryVersion(path: string, signal?: AbortSignal, timeoutMs = 10_000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(path, ['-hide_banner', '-version'], { stdio: ['ignore', 'pipe', 'pipe'], signal, timeout: timeoutMs });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      if (out.length < 4096) out += s;
    });
    child.on('error', (e) => reject(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot run ${path}: ${e.message}`, { cause: e })));
    child.on('close', (code) => {
      const first = out.split('\n')[0]?.trim() ?? '';
      if (code === 0 && first) resolve(first);
      else reject(new WinnowError('WINNOW_ERR_FFMPEG_EXIT', `${path} -version exited with ${code}`, { details: { output: out.slice(0, 500) } }));
    });
  });
}

const COLOR_RE = /^(0x|#)?[0-9a-fA-F]{6}$/;

function checkSize(size: FrameSize): void {
  for (const v of [size.width, size.height]) {
    if (!Number.isInteger(v) || v < 1 || v > 16384) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame size must be integers in 1..16384, got ${size.width}x${size.height}`);
    }
  }
}

/**
 * The ffmpeg filter that fits a frame into `size`. For `pad` this is exactly the default model's preprocessing
 * (docs/default-model.md), so the training shards and runtime ingest see identical pixels:
 * `scale=W:H:force_original_aspect_ratio=decrease:flags=bicubic,pad=W:H:(ow-iw)/2:(oh-ih)/2:color=0x7f7f7f`.
 */
export function buildScaleFilter(size: FrameSize, mode: ResizeMode = 'pad', padColor: string = DEFAULT_PAD_COLOR): string {
  checkSize(size);
  const { width: w, height: h } = size;
  switch (mode) {
    case 'pad': {
      if (!COLOR_RE.test(padColor)) {
        throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `padColor must be 0xRRGGBB, got ${padColor}`);
      }
      const color = `0x${padColor.replace(/^(0x|#)/, '').toLowerCase()}`;
      return `scale=${w}:${h}:force_original_aspect_ratio=decrease:flags=bicubic,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=${color}`;
    }
    case 'stretch':
      return `scale=${w}:${h}:flags=bicubic`;
    case 'crop':
      return `scale=${w}:${h}:force_original_aspect_ratio=increase:flags=bicubic,crop=${w}:${h}`;
    default:
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `resize must be pad, stretch or crop, got ${String(mode)}`);
  }
}

/**
 * Timestamp-based sampling: keep the first frame of every 1/fps bucket of the source timeline. Unlike the `fps`
 * filter it never duplicates frames across gaps (VFR, live clock jumps) and still yields the single frame of a
 * still image. The small epsilon keeps a frame at exactly k/fps in bucket k despite float rounding of pts·timebase.
 */
export function buildSelectFilter(fps: number): string {
  if (!Number.isFinite(fps) || fps <= 0 || fps > 1000) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `fps must be a number in (0, 1000] or 'source', got ${fps}`);
  }
  const f = String(fps);
  return `select='isnan(prev_selected_t)+gt(floor(t*${f}+0.001),floor(prev_selected_t*${f}+0.001))'`;
}
