// The Pruner turns one EncodedFrame into a PrunedFrame: score tokens against the codebook,
// apply the chosen strategy, AND it with the temporal filter, enforce minKeep/maxKeep, gather
// the kept rows. `prune(pruner)` wraps it as an RxJS operator with a bounded input queue.
import { Observable, type OperatorFunction } from 'rxjs';
import { WinnowError, throwIfAborted, toWinnowError } from '../errors.js';
import { loadCodebook, type Codebook } from './codebook.js';
import { createPrototypeIndex, type PrototypeIndex, type PrototypeIndexOptions } from './prototype-index.js';
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
  signal?: AbortSignal;
}

export class Pruner {
  readonly strategy: StrategyName;
  private readonly temporal?: TemporalFilter;
  private closed = false;

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
    const codebook = typeof opts.codebook === 'string' ? await loadCodebook(opts.codebook, { signal: opts.signal }) : opts.codebook;
    const index = codebook ? await createPrototypeIndex(codebook.prototypes, codebook.count, codebook.dim, { ...opts.index, signal: opts.signal }) : undefined;
    try {
      return new Pruner(codebook, index, opts);
    } catch (e) {
      await index?.close();
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

  async prune(input: EncodedFrame, signal?: AbortSignal): Promise<PrunedFrame> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'pruner is closed');
    const t0 = performance.now();
    const { numTokens: L, dim: D, gridH, gridW, tokens } = input;
    if (!Number.isInteger(L) || L < 0 || tokens.length < L * D) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame tokens hold ${tokens.length} values, need ${L} × ${D}`);
    if (gridH * gridW !== L) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `grid ${gridH}×${gridW} does not match ${L} tokens`);
    if (this.codebook && this.codebook.dim !== D) {
      throw new WinnowError('WINNOW_ERR_CODEBOOK_MISMATCH', `codebook width ${this.codebook.dim} ≠ token width ${D}`, { details: { codebook: this.codebook.path } });
    }
    const scores = new Float32Array(L).fill(NaN);
    let kept: Int32Array;
    if (this.strategy === 'double-softmax' && this.index) {
      const sim = await this.index.similarityMatrix(tokens, L, signal);
      const P = this.index.count;
      for (let i = 0; i < L; i++) {
        let m = -Infinity;
        for (let p = 0; p < P; p++) if (sim[i * P + p] > m) m = sim[i * P + p];
        scores[i] = m;
      }
      kept = doubleSoftmaxStrategy(sim, L, P, this.ratio);
    } else {
      if (this.index && L > 0) await this.index.score(tokens, L, { maxSim: scores, argMax: new Int32Array(L) }, signal);
      kept = this.select(input, scores);
    }

    const hasScores = this.index !== undefined;
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
      const rank = new Float64Array(L);
      if (hasScores) for (let i = 0; i < L; i++) rank[i] = scores[i];
      else if (similarity) for (let i = 0; i < L; i++) rank[i] = Number.isNaN(similarity[i]) ? -Infinity : similarity[i];
      else for (let i = 0; i < L; i++) rank[i] = (i * 0.6180339887498949) % 1;
      let count = 0;
      for (let i = 0; i < L; i++) count += mask[i];
      const minKeep = Math.min(L, this.options.minKeep ?? 1);
      if (count < minKeep) {
        const cand = new Float64Array(L);
        for (let i = 0; i < L; i++) cand[i] = mask[i] ? Infinity : rank[i];
        const add = lowestK(cand, L, minKeep - count);
        for (let j = 0; j < add.length; j++) mask[add[j]] = 1;
        count = minKeep;
      }
      const maxKeep = this.options.maxKeep;
      if (maxKeep !== undefined && count > maxKeep) {
        const cand = new Float64Array(L);
        for (let i = 0; i < L; i++) cand[i] = mask[i] ? rank[i] : Infinity;
        const keep = lowestK(cand, L, maxKeep);
        mask.fill(0);
        for (let j = 0; j < keep.length; j++) mask[keep[j]] = 1;
        count = maxKeep;
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
      stats: { kept: kept.length, total: L, scoreMs: performance.now() - t0 },
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
  /** Frames waiting while one is being pruned. Default 16. */
  maxQueuedFrames?: number;
  /**
   * When the queue is full: `error` (default; fail with WINNOW_ERR_QUEUE_OVERFLOW, nothing lost
   * silently) or `drop-oldest` (live sources: the stalest waiting frame is discarded).
   */
  overflow?: PruneOverflowPolicy;
  signal?: AbortSignal;
}

/** RxJS operator: EncodedFrame → PrunedFrame, one frame at a time, output order = input order. */
export function prune(pruner: Pruner, options: PruneOperatorOptions = {}): OperatorFunction<EncodedFrame, PrunedFrame> {
  const maxQueued = options.maxQueuedFrames ?? 16;
  const overflow = options.overflow ?? 'error';
  return (source) =>
    new Observable<PrunedFrame>((subscriber) => {
      const ac = new AbortController();
      const onOuterAbort = (): void => ac.abort(options.signal?.reason);
      options.signal?.addEventListener('abort', onOuterAbort, { once: true });
      const queue: EncodedFrame[] = [];
      let busy = false;
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
        const next = queue.shift();
        if (!next) {
          if (sourceDone) subscriber.complete();
          return;
        }
        busy = true;
        pruner.prune(next, ac.signal).then(
          (out) => {
            busy = false;
            if (ac.signal.aborted) return;
            subscriber.next(out);
            pump();
          },
          (e: unknown) => {
            busy = false;
            fail(e);
          },
        );
      };
      const sub = source.subscribe({
        next: (frame) => {
          if (failed) return;
          if (queue.length >= maxQueued) {
            if (overflow === 'drop-oldest') queue.shift();
            else return fail(new WinnowError('WINNOW_ERR_QUEUE_OVERFLOW', `more than ${maxQueued} frames waiting to be pruned`, { retryable: true }));
          }
          queue.push(frame);
          pump();
        },
        error: (e: unknown) => fail(e),
        complete: () => {
          sourceDone = true;
          pump();
        },
      });
      return () => {
        options.signal?.removeEventListener('abort', onOuterAbort);
        ac.abort();
        sub.unsubscribe();
      };
    });
}
