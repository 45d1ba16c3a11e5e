// The frame pipeline: decode → encode → prune → append into a VideoContext. Offline uses (`winnow
// ask`, eval) decode one source at a time with ffmpeg doing the model's resize and encode it in
// video mode; streaming sessions encode frames of many sessions in one image-mode batch and
// finish them per session (VisionRuntime.finishVideo). Both append through appendPruned.
import { NEVER, Subject, concatMap, from, fromEvent, lastValueFrom, of, takeUntil, toArray, type Observable } from 'rxjs';
import { encode, type EncodedFrame, type ModelFolder } from '../encode/index.js';
import { openVideo, type Frame, type SourcePolicy, type VideoSource } from '../ingest/index.js';
import type { AppendResult, VideoContext } from '../llm/index.js';
import { prune, type Pruner, type PrunedFrame } from '../prune/index.js';
import type { VisionRuntime, WinnowRuntime } from './runtime.js';

export interface EncodeSourceOptions {
  /** Frames per second sampled. */
  fps: number;
  /** A still image: encoded in image mode (full grid, no video pooling or tracker). */
  isStill: boolean;
  /** The consumer acknowledges each frame once done with it; at most 8 are decoded ahead. */
  ack$: Subject<void>;
  maxFrames?: number;
  /** ffmpeg input format (`-f`). */
  inputFormat?: string;
  /** Confines a string source (see ingest's SourcePolicy). */
  policy?: SourcePolicy;
  /** Largest decoded picture, pixels. Default: openVideo's. */
  maxInputPixels?: number;
  /** Ends the source early (ffmpeg is stopped); frames already decoded are still encoded. */
  stop?: AbortSignal;
  signal?: AbortSignal;
}

/** Frames decoded ahead of the consumer's acknowledgements. */
const MAX_IN_FLIGHT_FRAMES = 8;

function stopped(stop: AbortSignal | undefined): Observable<unknown> {
  if (!stop) return NEVER;
  return stop.aborted ? of(true) : fromEvent(stop, 'abort');
}

/** One source decoded and encoded the offline way, in order. */
export function encodeSource(runtime: VisionRuntime, source: VideoSource, o: EncodeSourceOptions): Observable<EncodedFrame> {
  const { signal } = o;
  return openVideo(source, {
    fps: o.fps,
    ...(runtime.offlineDecodeResize ?? {}),
    ...(o.maxFrames ? { maxFrames: o.maxFrames } : {}),
    ...(o.inputFormat ? { inputFormat: o.inputFormat } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
    ...(o.maxInputPixels ? { maxInputPixels: o.maxInputPixels } : {}),
    ack$: o.ack$,
    maxInFlightFrames: MAX_IN_FLIGHT_FRAMES,
    signal,
  }).pipe(takeUntil(stopped(o.stop)), encode(runtime.folder, { video: !o.isStill, signal }));
}

/** One vision-encoder run over `frames`, full grids, in order. */
export function encodeImages(folder: ModelFolder, frames: readonly Frame[]): Promise<EncodedFrame[]> {
  const n = frames.length;
  return lastValueFrom(from(frames).pipe(encode(folder, { video: false, batchSize: n, maxWaitMs: 0, maxInFlightBatches: 1, maxQueuedFrames: n }), toArray()));
}

/** Appends a pruned frame, telling the context its pre-pruning size (the context's kept/total stats follow evictions). */
export function appendPruned(ctx: VideoContext, pruned: PrunedFrame, signal?: AbortSignal): Promise<AppendResult> {
  return ctx.appendFrame({ ...pruned, totalTokens: pruned.stats.total }, { signal });
}

export interface PrefillOptions extends Omit<EncodeSourceOptions, 'ack$'> {
  /** After each frame is in the context, with the number of frames so far. */
  onFrame?: (pruned: PrunedFrame, frames: number) => void;
}

export interface PrefillResult {
  /** Frames appended. */
  frames: number;
  /** Language-model time spent prefilling them. */
  prefillMs: number;
}

/** Every sampled frame of `source`, pruned by `pruner` (its temporal state reset first) and appended to `ctx`. */
export async function prefillSource(runtime: WinnowRuntime, source: VideoSource, ctx: VideoContext, pruner: Pruner, o: PrefillOptions): Promise<PrefillResult> {
  const { signal } = o;
  pruner.resetSource();
  const ack$ = new Subject<void>();
  let frames = 0;
  let prefillMs = 0;
  await lastValueFrom(
    runtime.encodeSource(source, { ...o, ack$ }).pipe(
      prune(pruner, { signal }),
      concatMap(async (pf) => {
        prefillMs += (await appendPruned(ctx, pf, signal)).prefillMs;
        frames++;
        o.onFrame?.(pf, frames);
        ack$.next();
        return frames;
      }),
      // Frames still in the encoder when the stop comes are not added.
      takeUntil(stopped(o.stop)),
    ),
    { defaultValue: 0 },
  );
  return { frames, prefillMs };
}
