// The Pruner turns one EncodedFrame into a PrunedFrame: score tokens against the codebook,
// apply the chosen strategy, AND it with the temporal filter, enforce minKeep/maxKeep, gather
// the kept rows. `prune(pruner)` wraps it as an RxJS operator with a bounded input queue.
import { loadPruningCodebook } from './loaded-codebook.js';
import { Observable, type OperatorFunction } from 'rxjs';
import { WinnowError, throwIfAborted, toWinnowError } from '../errors.js';
import type { Codebook, EncoderCheckPolicy } from './codebook.js';
import type { PrototypeIndex, PrototypeIndexOptions } from './prototype-index.js';
import {
  clsStrategy,
  doubleSoftmaxStrategy,
  lowestK,
  noneStrategy,
  poolStrategy,
  pyRound,
  randomStrategy,
  ratioStrategy,
  thresholdStrategy,
} from './strategies.js';
import { TemporalFilter, type TemporalOptions } from './temporal.js';
import { CODEBOOK_STRATEGIES, type EncodedFrame, type PrunedFrame, type StrategyName } from './types.js';

export interface PrunerOptions {
  strategy?: StrategyName;
  /** Threshold for `threshold`. Default: the codebook's default τ. */
  tau?: number;
  /** Kept fraction for `ratio`, `double-softmax`, `random`, `pool`, `cls`. Default: the codebook's, else 0.5. */
  ratio?: number;
  /** Seed for `random`; each frame uses seed ⊕ frame index so results do not depend on batching. Default 0. */
  seed?: number;
  /** `cls`: keep the lowest (default, the paper's `low_sim_patch`) or highest similarity. */
  clsMode?: 'low' | 'high';
  /** Temporal filter (combinable with any strategy); off by default. */
  temporal?: TemporalOptions;
  /** Every frame keeps at least this many tokens (filled with the lowest-scoring ones). Default 1. */
  minKeep?: number;
  /** No frame keeps more than this many tokens. Default unlimited. */
  maxKeep?: number;
  index?: PrototypeIndexOptions;
}

export interface PrunerLoadOptions extends PrunerOptions {
  /** A Codebook, or a path to `.safetensors` / `.pt`. Required for threshold/ratio/double-softmax. */
  codebook?: Codebook | string;
  /**
   * The vision encoder file whose tokens will be pruned. When given and the codebook records the
   * encoder it was built with (`model.visionEncoderSha256`), the two are compared under
   * `encoderCheck`.
   */
  visionEncoderPath?: string;
  /** See EncoderCheckPolicy. Default 'error' (WINNOW_ERR_CODEBOOK_MISMATCH). */
  encoderCheck?: EncoderCheckPolicy;
  /** Receives a mismatch under `encoderCheck: 'warn'`. */
  onWarning?: (error: WinnowError) => void;
  signal?: AbortSignal;
}

export class Pruner {
  readonly strategy: StrategyName;
  private readonly temporal?: TemporalFilter;
  private closed = false;
  // Reused across calls (the pruner handles one call at a time; see the prune operator).
  private staging = new Float32Array(0);
  private argMaxScratch = new Int32Array(0);
  private dsScratch = new Float64Array(0);
  private scratchLent = false;

  /** Prefer `Pruner.load`; the constructor takes an already built index (dependency injection). */
  constructor(
    readonly codebook: Codebook | undefined,
    private readonly index: PrototypeIndex | undefined,
    readonly options: PrunerOptions = {},
  ) {
    this.strategy = options.strategy ?? codebook?.defaults?.strategy ?? 'none';
    if (CODEBOOK_STRATEGIES.has(this.strategy) && (!codebook || !index)) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `strategy ${this.strategy} needs a codebook`);
    }
    if (this.strategy === 'threshold' && this.tau === undefined) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'threshold needs tau (none given and the codebook has no default)');
    const { minKeep, maxKeep } = options;
    if (minKeep !== undefined && (!Number.isInteger(minKeep) || minKeep < 0)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'minKeep must be a non-negative integer');
    if (maxKeep !== undefined && (!Number.isInteger(maxKeep) || maxKeep < 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxKeep must be a positive integer');
    if (minKeep !== undefined && maxKeep !== undefined && minKeep > maxKeep) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'minKeep > maxKeep');
    if (options.temporal) this.temporal = new TemporalFilter(options.temporal);
  }

  static async load(opts: PrunerLoadOptions): Promise<Pruner> {
    if (!opts.codebook) return new Pruner(undefined, undefined, opts);
    const { codebook, index } = await loadPruningCodebook(opts.codebook, {
      ...(opts.visionEncoderPath ? { visionEncoderFile: opts.visionEncoderPath } : {}),
      ...(opts.encoderCheck ? { policy: opts.encoderCheck } : {}),
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      ...(opts.index ? { index: opts.index } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    try {
      return new Pruner(codebook, index, opts);
    } catch (e) {
      await index.close();
      throw e;
    }
  }

  get tau(): number | undefined {
    return this.options.tau ?? this.codebook?.defaults?.tau;
  }

  get ratio(): number {
    return this.options.ratio ?? this.codebook?.defaults?.ratio ?? 0.5;
  }

  get backend(): string {
    return this.index ? `${this.index.backend}/${this.index.kernel}` : 'none';
  }

  /** Prunes one frame; see pruneBatch. */
  async prune(input: EncodedFrame, signal?: AbortSignal): Promise<PrunedFrame> {
    return (await this.pruneBatch([input], signal))[0];
  }

  /**
   * Prunes several frames, in order, scoring all their tokens against the codebook in one
   * onnxruntime run (per-run overhead paid once per batch). Results are exactly those of
   * pruning the frames one by one: scores do not depend on the batch, and the temporal filter
   * advances frame by frame. `stats.scoreMs` of each frame = its share of the batch's scoring
   * time + its own selection time.
   */
  async pruneBatch(inputs: readonly EncodedFrame[], signal?: AbortSignal): Promise<PrunedFrame[]> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'pruner is closed');
    let totalTokens = 0;
    for (const input of inputs) {
      this.checkFrame(input);
      totalTokens += input.numTokens;
    }
    const t0 = performance.now();
    // One fresh array for the whole batch (returned to the caller), one view per frame.
    const allScores = new Float32Array(totalTokens).fill(NaN);
    const scoresOf = (f: number, offset: number): Float32Array => allScores.subarray(offset, offset + inputs[f].numTokens);
    const index = this.index;
    if (index && this.strategy !== 'double-softmax' && totalTokens > 0) {
      // Scratch buffers are lent to one call at a time; an overlapping call gets its own.
      const lend = !this.scratchLent;
      this.scratchLent = true;
      try {
        const tokens = this.gather(inputs, totalTokens, lend);
        const argMax = lend && this.argMaxScratch.length >= totalTokens ? this.argMaxScratch : new Int32Array(totalTokens);
        if (lend) this.argMaxScratch = argMax;
        await index.score(tokens, totalTokens, { maxSim: allScores, argMax }, signal);
      } finally {
        if (lend) this.scratchLent = false;
      }
    }
    const sharedMs = (performance.now() - t0) / Math.max(1, inputs.length);
    const out: PrunedFrame[] = [];
    let offset = 0;
    for (let f = 0; f < inputs.length; f++) {
      throwIfAborted(signal);
      const t1 = performance.now();
      const input = inputs[f];
      const L = input.numTokens;
      const scores = scoresOf(f, offset);
      offset += L;
      let kept: Int32Array;
      if (this.strategy === 'double-softmax' && index) {
        // Needs its own frame's full L×P matrix (the softmax over tokens is per frame).
        const sim = await index.similarityMatrix(input.tokens, L, signal);
        const P = index.count;
        for (let i = 0; i < L; i++) {
          let m = -Infinity;
          for (let p = 0; p < P; p++) if (sim[i * P + p] > m) m = sim[i * P + p];
          scores[i] = m;
        }
        if (this.dsScratch.length < L * P + P) this.dsScratch = new Float64Array(L * P + P);
        kept = doubleSoftmaxStrategy(sim, L, P, this.ratio, undefined, this.dsScratch);
      } else {
        kept = this.select(input, scores);
      }
      out.push(this.finish(input, scores, kept, sharedMs + performance.now() - t1));
    }
    return out;
  }

  private checkFrame(input: EncodedFrame): void {
    const { numTokens: L, dim: D, gridH, gridW, tokens } = input;
    if (!Number.isInteger(L) || L < 0 || tokens.length < L * D) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame tokens hold ${tokens.length} values, need ${L} × ${D}`);
    if (gridH * gridW !== L) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `grid ${gridH}×${gridW} does not match ${L} tokens`);
    if (this.codebook && this.codebook.dim !== D) {
      throw new WinnowError('WINNOW_ERR_CODEBOOK_MISMATCH', `codebook width ${this.codebook.dim} ≠ token width ${D}`, { details: { codebook: this.codebook.path } });
    }
  }

  /** The batch's token rows as one matrix: the frame's own array for one frame, else a staging copy. */
  private gather(inputs: readonly EncodedFrame[], totalTokens: number, reuse: boolean): Float32Array {
    if (inputs.length === 1) return inputs[0].tokens;
    const D = inputs[0].dim;
    let staging = reuse ? this.staging : new Float32Array(0);
    if (staging.length < totalTokens * D) staging = new Float32Array(totalTokens * D);
    if (reuse) this.staging = staging;
    let o = 0;
    for (const f of inputs) {
      staging.set(f.tokens.subarray(0, f.numTokens * D), o);
      o += f.numTokens * D;
    }
    return staging;
  }

  /** Temporal filter, minKeep / maxKeep, gathering the kept rows. */
  private finish(input: EncodedFrame, scores: Float32Array, selected: Int32Array, scoreMs: number): PrunedFrame {
    const t0 = performance.now();
    const { numTokens: L, dim: D, gridH, gridW, tokens } = input;
    const hasScores = this.index !== undefined;
    let kept = selected;
    let similarity: Float32Array | undefined;
    {
      const mask = new Uint8Array(L);
      for (let j = 0; j < kept.length; j++) mask[kept[j]] = 1;
      if (this.temporal) {
        similarity = new Float32Array(L);
        this.temporal.filter(input.sourceId, tokens, gridH, gridW, D, mask, similarity);
      }
      // Ranking for fill/cap: most informative first. Codebook score when we have one, else
      // temporal novelty, else a golden-ratio sequence that spreads picks evenly over the grid.
      let count = 0;
      for (let i = 0; i < L; i++) count += mask[i];
      const minKeep = Math.min(L, this.options.minKeep ?? 1);
      const maxKeep = this.options.maxKeep;
      if (count < minKeep || (maxKeep !== undefined && count > maxKeep)) {
        const rank = new Float64Array(L);
        if (hasScores) for (let i = 0; i < L; i++) rank[i] = scores[i];
        else if (similarity) for (let i = 0; i < L; i++) rank[i] = Number.isNaN(similarity[i]) ? -Infinity : similarity[i];
        else for (let i = 0; i < L; i++) rank[i] = (i * 0.6180339887498949) % 1;
        if (count < minKeep) {
          const cand = new Float64Array(L);
          for (let i = 0; i < L; i++) cand[i] = mask[i] ? Infinity : rank[i];
          const add = lowestK(cand, L, minKeep - count);
          for (let j = 0; j < add.length; j++) mask[add[j]] = 1;
          count = minKeep;
        }
        if (maxKeep !== undefined && count > maxKeep) {
          const cand = new Float64Array(L);
          for (let i = 0; i < L; i++) cand[i] = mask[i] ? rank[i] : Infinity;
          const keep = lowestK(cand, L, maxKeep);
          mask.fill(0);
          for (let j = 0; j < keep.length; j++) mask[keep[j]] = 1;
          count = maxKeep;
        }
      }
      kept = new Int32Array(count);
      for (let i = 0, j = 0; i < L; i++) if (mask[i]) kept[j++] = i;
    }
    this.temporal?.commit(input.sourceId, tokens, D, kept);

    const out = new Float32Array(kept.length * D);
    for (let j = 0; j < kept.length; j++) out.set(tokens.subarray(kept[j] * D, kept[j] * D + D), j * D);
    return {
      frame: input.frame,
      kept,
      tokens: out,
      scores,
      gridH,
      gridW,
      dim: D,
      ...(input.sourceId !== undefined ? { sourceId: input.sourceId } : {}),
      stats: { kept: kept.length, total: L, scoreMs: scoreMs + performance.now() - t0 },
    };
  }

  private select(input: EncodedFrame, scores: Float32Array): Int32Array {
    const L = input.numTokens;
    switch (this.strategy) {
      case 'threshold':
        return thresholdStrategy(scores, L, this.tau as number);
      case 'ratio':
        return ratioStrategy(scores, L, this.ratio);
      case 'random':
        return randomStrategy(L, pyRound(L * this.ratio), ((this.options.seed ?? 0) ^ Math.imul(input.frame.index, 0x9e3779b1)) >>> 0);
      case 'pool':
        return poolStrategy(input.gridH, input.gridW, pyRound(L * this.ratio));
      case 'cls':
        if (!input.clsSimilarity) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'strategy cls needs clsSimilarity from the encoder (this model does not output it)');
        return clsStrategy(input.clsSimilarity, L, this.ratio, this.options.clsMode ?? 'low');
      case 'none':
        return noneStrategy(L);
      default:
        throw new WinnowError('WINNOW_ERR_INTERNAL', `unhandled strategy ${this.strategy}`);
    }
  }

  /** Forget temporal state of one source (or all). */
  resetSource(sourceId?: string): void {
    this.temporal?.forget(sourceId);
  }

  /** Idempotent; releases the scoring session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.temporal?.forget();
    await this.index?.close();
  }
}

export type PruneOverflowPolicy = 'error' | 'drop-oldest';

export interface PruneOperatorOptions {
  /**
   * Frames waiting while a batch is being pruned (or formed). Default 16. At most this many
   * plus one batch (maxBatchFrames) are held at once.
   */
  maxQueuedFrames?: number;
  /**
   * Frames pruned together, their tokens scored in one onnxruntime run: the frames that arrive
   * in one synchronous burst while the pruner is idle (an encode batch), else the oldest waiting
   * ones. Results do not depend on it. Default 8; 1 prunes frame by frame.
   */
  maxBatchFrames?: number;
  /**
   * When the queue is full: `error` (default; fail with WINNOW_ERR_QUEUE_OVERFLOW, nothing lost
   * silently) or `drop-oldest` (live sources: the stalest waiting frame is discarded).
   */
  overflow?: PruneOverflowPolicy;
  signal?: AbortSignal;
}

/** RxJS operator: EncodedFrame → PrunedFrame, one batch at a time, output order = input order. */
export function prune(pruner: Pruner, options: PruneOperatorOptions = {}): OperatorFunction<EncodedFrame, PrunedFrame> {
  const maxQueued = options.maxQueuedFrames ?? 16;
  const maxBatch = options.maxBatchFrames ?? 8;
  if (!Number.isInteger(maxQueued) || maxQueued < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxQueuedFrames must be a positive integer, got ${maxQueued}`);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxBatchFrames must be a positive integer, got ${maxBatch}`);
  const overflow = options.overflow ?? 'error';
  return (source) =>
    new Observable<PrunedFrame>((subscriber) => {
      const ac = new AbortController();
      const onOuterAbort = (): void => ac.abort(options.signal?.reason);
      options.signal?.addEventListener('abort', onOuterAbort, { once: true });
      // The next batch, collected while idle until a microtask starts it; frames beyond it, or
      // arriving while a batch runs, wait in `queue` (bounded, overflow policy below).
      const forming: EncodedFrame[] = [];
      const queue: EncodedFrame[] = [];
      let busy = false;
      let pumpQueued = false;
      let sourceDone = false;
      let failed = false;

      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        ac.abort();
        subscriber.error(toWinnowError(e));
      };
      const pump = (): void => {
        if (busy || failed) return;
        const batch = forming.length ? forming.splice(0) : queue.splice(0, maxBatch);
        if (!batch.length) {
          if (sourceDone) subscriber.complete();
          return;
        }
        busy = true;
        pruner.pruneBatch(batch, ac.signal).then(
          (outs) => {
            busy = false;
            for (const out of outs) {
              if (ac.signal.aborted) return;
              subscriber.next(out);
            }
            pump();
          },
          (e: unknown) => {
            busy = false;
            fail(e);
          },
        );
      };
      // Deferred by a microtask so frames emitted in one synchronous burst share a batch.
      const requestPump = (): void => {
        if (pumpQueued) return;
        pumpQueued = true;
        queueMicrotask(() => {
          pumpQueued = false;
          pump();
        });
      };
      const sub = source.subscribe({
        next: (frame) => {
          if (failed) return;
          if (!busy && !queue.length && forming.length < maxBatch) {
            forming.push(frame);
            requestPump();
            return;
          }
          if (queue.length >= maxQueued) {
            if (overflow === 'drop-oldest') queue.shift();
            else return fail(new WinnowError('WINNOW_ERR_QUEUE_OVERFLOW', `more than ${maxQueued} frames waiting to be pruned`, { retryable: true }));
          }
          queue.push(frame);
          requestPump();
        },
        error: (e: unknown) => fail(e),
        complete: () => {
          sourceDone = true;
          requestPump();
        },
      });
      return () => {
        options.signal?.removeEventListener('abort', onOuterAbort);
        ac.abort();
        sub.unsubscribe();
      };
    });
}
