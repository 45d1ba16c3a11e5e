// The encode operator: Frame → EncodedFrame through the model's vision encoder, in micro-batches,
// with a bounded number of batches in flight and output in input order.
import { Observable, type OperatorFunction } from 'rxjs';
import { WinnowError, abortError, toWinnowError } from '../errors.js';
import { positiveInt } from '../util/validate.js';
import type { Frame } from '../ingest/types.js';
import type { PoolingSpec } from '../model/config.js';
import type { ModelFolder } from './model-folder.js';
import { poolTokenGrid } from './pool.js';
import { normalizationTable, preprocessInto } from './preprocess.js';
import { ObjectTracker } from './tracker.js';
import type { EncodedFrame } from './types.js';

export type EncodeOverflowPolicy = 'error' | 'drop-oldest';

export interface EncodeBatchStats {
  /** Frames in this batch. */
  size: number;
  preprocessMs: number;
  inferenceMs: number;
  /** Frames dropped so far by the 'drop-oldest' policy. */
  droppedFrames: number;
}

export interface EncodeOptions {
  /** Frames per vision-encoder run. Default 4. */
  batchSize?: number;
  /**
   * Longest time a frame waits for its batch to fill before a partial batch runs. Default 50 ms.
   * 0 runs whatever is queued as soon as a batch slot is free (lowest latency).
   */
  maxWaitMs?: number;
  /**
   * Batches preprocessing, running or finished-but-waiting-for-order at once. Default 2, so one
   * batch is preprocessed while the previous one runs.
   */
  maxInFlightBatches?: number;
  /**
   * Frames waiting for a batch slot. Default 64. Beyond it `overflow` applies: 'error' fails the
   * stream with WINNOW_ERR_QUEUE_OVERFLOW (no silent loss: files), 'drop-oldest' discards the
   * oldest waiting frame (live sources, where fresh frames matter more). Default 'error'.
   */
  maxQueuedFrames?: number;
  overflow?: EncodeOverflowPolicy;
  /**
   * Video mode: pool each frame's token grid (LLaVA-OneVision style). Default false: a still
   * image keeps its full grid.
   */
  video?: boolean;
  /** Pooling used in video mode. Default: config.json `winnow.video_pooling`, else 2× bilinear. */
  pooling?: PoolingSpec;
  /**
   * Video mode, models whose config.json declares `winnow.temporal_identity`: the tracker that
   * numbers the stream's objects (ObjectTracker). Default: a new one per subscription, i.e. the
   * frames of one subscription are one video from its first frame. Pass your own to continue a
   * stream across subscriptions; false leaves the identity out (ablations).
   */
  tracker?: ObjectTracker | false;
  /** Copied onto every EncodedFrame. */
  sourceId?: string;
  /**
   * Called once per input frame when the operator is done with it: after its EncodedFrame was
   * emitted, or when 'drop-oldest' discarded it. Pair it with openVideo's `ack$` (emit on a
   * Subject here, with `maxInFlightFrames` ≥ batchSize · maxInFlightBatches) so a file source
   * pauses ffmpeg instead of overflowing this operator's queue.
   */
  onFrameDone?: (frame: Frame) => void;
  /** Called after every batch (progress, benchmarks). */
  onBatch?: (stats: EncodeBatchStats) => void;
  signal?: AbortSignal;
}

const DEFAULT_VIDEO_POOLING: PoolingSpec = { stride: 2, mode: 'bilinear' };

/** The video pooling `model` uses when the caller names none. */
export function videoPooling(model: ModelFolder): PoolingSpec {
  return model.config.winnow.videoPooling ?? DEFAULT_VIDEO_POOLING;
}

/**
 * Turns a full-grid EncodedFrame (image mode) into a video frame: adds the tracker's temporal
 * identity (which needs the frame's patchClasses and must see the stream's frames in order), then
 * pools the grid. For callers that batch frames of several streams through one encode (the
 * WebSocket engine); encode() in video mode does the same per subscription. Writes into
 * `encoded.tokens` before pooling; the result has its own arrays.
 */
export function finishVideoFrame(encoded: EncodedFrame, tracker: ObjectTracker | undefined, pooling: PoolingSpec): EncodedFrame {
  if (tracker) {
    if (!encoded.patchClasses) throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', 'the temporal identity needs patch_classes from the vision encoder');
    tracker.addIdentity(encoded.tokens, encoded.patchClasses);
  }
  const p = poolTokenGrid(encoded.tokens, encoded.gridH, encoded.gridW, encoded.dim, pooling);
  const out: EncodedFrame = { frame: encoded.frame, tokens: p.tokens, numTokens: p.gridH * p.gridW, dim: encoded.dim, gridH: p.gridH, gridW: p.gridW };
  if (encoded.clsSimilarity) out.clsSimilarity = poolTokenGrid(encoded.clsSimilarity, encoded.gridH, encoded.gridW, 1, pooling).tokens;
  if (encoded.sourceId !== undefined) out.sourceId = encoded.sourceId;
  return out;
}

interface Slot {
  frames: Frame[];
  done: boolean;
  results: EncodedFrame[] | undefined;
}

/**
 * Encodes frames with `model`'s vision encoder. Teardown (unsubscribe, error, `signal`) stops
 * scheduling, discards running batches' results once they finish (onnxruntime runs cannot be
 * interrupted) and disposes their tensors; the model itself stays open.
 */
export function encode(model: ModelFolder, options: EncodeOptions = {}): OperatorFunction<Frame, EncodedFrame> {
  const batchSize = positiveInt('batchSize', options.batchSize ?? 4);
  const maxWaitMs = options.maxWaitMs ?? 50;
  if (!(maxWaitMs >= 0)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxWaitMs must be ≥ 0, got ${maxWaitMs}`);
  const maxInFlight = positiveInt('maxInFlightBatches', options.maxInFlightBatches ?? 2);
  const maxQueued = positiveInt('maxQueuedFrames', options.maxQueuedFrames ?? 64);
  const overflow = options.overflow ?? 'error';
  const pooling = options.video ? (options.pooling ?? videoPooling(model)) : undefined;
  if (pooling) positiveInt('pooling.stride', pooling.stride);
  const identity = model.config.winnow.temporalIdentity;

  return (source) =>
    new Observable<EncodedFrame>((subscriber) => {
      const info = model.vision;
      const plan = model.preprocess;
      const lut = normalizationTable(plan);
      const frameFloats = 3 * info.imageHeight * info.imageWidth;
      // One input buffer per in-flight batch, reused: no per-frame allocation of pixel data.
      const freeBuffers: Float32Array[] = [];
      const takeBuffer = (): Float32Array => freeBuffers.pop() ?? new Float32Array(batchSize * frameFloats);

      const ac = new AbortController();
      const signal = ac.signal;
      const pending: Frame[] = [];
      const slots: Slot[] = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      let flushDue = maxWaitMs === 0;
      let sourceDone = false;
      let finished = false;
      let dropped = 0;

      const fail = (e: unknown, wrap = true): void => {
        if (finished) return;
        finished = true;
        ac.abort();
        subscriber.error(wrap ? toWinnowError(e, 'WINNOW_ERR_INFERENCE') : e);
      };

      // Per subscription: one subscription is one stream, seen in order (drain emits in order).
      const tracker = pooling && identity && options.tracker !== false ? (options.tracker ?? new ObjectTracker(identity)) : undefined;

      const toEncoded = (frame: Frame, features: Float32Array, cls: Float32Array | undefined, classes: Int32Array | undefined): EncodedFrame => {
        const out: EncodedFrame = { frame, tokens: features, numTokens: info.gridH * info.gridW, dim: info.dim, gridH: info.gridH, gridW: info.gridW };
        if (cls) out.clsSimilarity = cls;
        if (classes) out.patchClasses = classes;
        if (options.sourceId !== undefined) out.sourceId = options.sourceId;
        return out;
      };

      const runBatch = async (slot: Slot): Promise<void> => {
        const buffer = takeBuffer();
        try {
          const t0 = performance.now();
          await Promise.all(slot.frames.map((f, i) => preprocessInto(f, plan, buffer, i * frameFloats, lut, signal)));
          if (signal.aborted) return;
          const t1 = performance.now();
          const out = await model.runVision(buffer, slot.frames.length, signal);
          const t2 = performance.now();
          slot.results = slot.frames.map((f, i) => toEncoded(f, out.features[i], out.clsSimilarity?.[i], out.patchClasses?.[i]));
          options.onBatch?.({ size: slot.frames.length, preprocessMs: t1 - t0, inferenceMs: t2 - t1, droppedFrames: dropped });
        } finally {
          freeBuffers.push(buffer);
        }
      };

      const drain = (): void => {
        while (!finished && slots.length && slots[0].done) {
          const slot = slots.shift()!;
          for (const raw of slot.results ?? []) {
            let r = raw;
            if (pooling) {
              try {
                r = finishVideoFrame(raw, tracker, pooling);
              } catch (e) {
                fail(e);
                return;
              }
            }
            subscriber.next(r);
            options.onFrameDone?.(r.frame);
          }
        }
        schedule();
      };

      const schedule = (): void => {
        if (finished) return;
        while (slots.length < maxInFlight && pending.length && (pending.length >= batchSize || flushDue || sourceDone)) {
          const slot: Slot = { frames: pending.splice(0, batchSize), done: false, results: undefined };
          slots.push(slot);
          runBatch(slot).then(
            () => {
              slot.done = true;
              drain();
            },
            (e: unknown) => fail(e),
          );
        }
        if (!pending.length) {
          flushDue = maxWaitMs === 0;
          if (timer) {
            clearTimeout(timer);
            timer = undefined;
          }
        } else if (!timer && !flushDue) {
          timer = setTimeout(() => {
            timer = undefined;
            flushDue = true;
            schedule();
          }, maxWaitMs);
        }
        if (sourceDone && !pending.length && !slots.length) {
          finished = true;
          subscriber.complete();
        }
      };

      const onAbort = (): void => fail(abortError(options.signal));
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });

      const sub = source.subscribe({
        next(frame) {
          if (finished) return;
          pending.push(frame);
          if (pending.length > maxQueued) {
            if (overflow === 'drop-oldest') {
              const old = pending.shift()!;
              dropped++;
              options.onFrameDone?.(old);
            } else {
              fail(
                new WinnowError('WINNOW_ERR_QUEUE_OVERFLOW', `more than ${maxQueued} frames are waiting for the vision encoder`, {
                  retryable: true,
                  details: { maxQueuedFrames: maxQueued, batchSize, maxInFlightBatches: maxInFlight },
                }),
              );
              return;
            }
          }
          schedule();
        },
        // Upstream errors (ingest) pass through as they are.
        error: (e: unknown) => fail(e, false),
        complete() {
          sourceDone = true;
          schedule();
        },
      });

      return () => {
        finished = true;
        sub.unsubscribe();
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        ac.abort();
      };
    });
}
