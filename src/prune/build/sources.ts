// The images a codebook is built from: every image file of a directory (sorted by name, so ids
// and order are stable across runs), one still image, or frames sampled from a video.
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { Subject, take, lastValueFrom, type Observable } from 'rxjs';
import { WinnowError, throwIfAborted } from '../../errors.js';
import { openVideo, probe } from '../../ingest/index.js';
import type { Frame, FrameSize } from '../../ingest/index.js';

export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.webp', '.gif', '.tif', '.tiff', '.ppm']);

export interface SourceImage {
  /** Stable id: the file name in a directory, `name@<ptsMs>ms` for a video frame. */
  id: string;
  /** Decoded frame at model size, or null when `skip(id)` said it is not needed. */
  frame: Frame | null;
}

export interface SourceOptions {
  /** Frames per second sampled from a video. Default 1. */
  fps?: number;
  maxImages?: number;
  /** Output size (the model's input, letterboxed as at inference). */
  size?: FrameSize;
  /** Images for which the pixels are not needed (already done); they are still listed. */
  skip?: (id: string) => boolean;
  signal?: AbortSignal;
}

export interface SourcePlan {
  kind: 'directory' | 'image' | 'video';
  /** Number of images when known in advance (directories, stills), else an estimate or null. */
  total: number | null;
  images: () => AsyncGenerator<SourceImage, void, void>;
}

async function decodeStill(path: string, size: FrameSize | undefined, signal?: AbortSignal): Promise<Frame> {
  const frame = await lastValueFrom(openVideo(path, { fps: 1, ...(size ? { size, resize: 'pad' as const } : {}), signal }).pipe(take(1)), { defaultValue: null });
  if (!frame) throw new WinnowError('WINNOW_ERR_NOT_A_VIDEO', `no image could be read from ${path}`, { details: { path } });
  return frame;
}

/**
 * Iterates an acknowledged frame stream: the source is paused (openVideo's ack$ with one frame
 * in flight) until the consumer asks for the next frame, so at most one frame is buffered.
 */
async function* acknowledged(make: (ack$: Subject<void>) => Observable<Frame>): AsyncGenerator<Frame, void, void> {
  const ack$ = new Subject<void>();
  const queue: Frame[] = [];
  let done = false;
  let error: unknown = null;
  let wake: (() => void) | null = null;
  const sub = make(ack$).subscribe({
    next: (f) => {
      queue.push(f);
      wake?.();
    },
    error: (e) => {
      error = e;
      done = true;
      wake?.();
    },
    complete: () => {
      done = true;
      wake?.();
    },
  });
  try {
    for (;;) {
      while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
      wake = null;
      if (queue.length > 0) {
        yield queue.shift() as Frame;
        ack$.next();
        continue;
      }
      if (error) throw error;
      return;
    }
  } finally {
    sub.unsubscribe();
  }
}

export async function planSource(source: string, options: SourceOptions = {}): Promise<SourcePlan> {
  const { signal, size } = options;
  const max = options.maxImages ?? Infinity;
  let st;
  try {
    st = await stat(source);
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `cannot read ${source}`, { cause: e, details: { path: source } });
  }
  if (st.isDirectory()) {
    const names = (await readdir(source)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
    if (names.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${source} holds no image files (${[...IMAGE_EXTENSIONS].join(', ')})`);
    const chosen = names.slice(0, Math.min(names.length, max));
    return {
      kind: 'directory',
      total: chosen.length,
      images: async function* () {
        for (const name of chosen) {
          throwIfAborted(signal);
          const frame = options.skip?.(name) ? null : await decodeStill(join(source, name), size, signal);
          yield { id: name, frame };
        }
      },
    };
  }
  const info = await probe(source, { signal });
  const name = basename(source);
  if (info.isStill) {
    return {
      kind: 'image',
      total: 1,
      images: async function* () {
        yield { id: name, frame: options.skip?.(name) ? null : await decodeStill(source, size, signal) };
      },
    };
  }
  const fps = options.fps ?? 1;
  const estimate = info.durationMs ? Math.max(1, Math.floor((info.durationMs / 1000) * fps)) : null;
  return {
    kind: 'video',
    total: estimate === null ? (Number.isFinite(max) ? max : null) : Math.min(estimate, max),
    images: async function* () {
      let n = 0;
      if (n >= max) return;
      for await (const frame of acknowledged((ack$) => openVideo(source, { fps, ...(size ? { size, resize: 'pad' as const } : {}), ack$, maxInFlightFrames: 1, signal }))) {
        yield { id: `${name}@${Math.round(frame.ptsMs)}ms`, frame };
        if (++n >= max) return;
      }
    },
  };
}
