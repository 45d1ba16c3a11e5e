// Keeping an endless video inside its budget: when it outgrows it, the oldest frames are dropped
// and the cache is rebuilt from the frames that remain (their positions start again at 0, as in a
// fresh context — the model never sees a gap). The rebuild starts in the background before the
// budget is reached, a chunk at a time between appends and questions, so that rebuilds rarely
// stall the stream.
import type { Mutex } from '../util/lock.js';
import type { KvCache } from './decoder.js';
import type { FrameEntry, Prefiller, VideoState } from './video-state.js';

export interface EvictionEvent {
  /** Frames dropped from the start of the context. */
  frames: number;
  /** Tokens those frames took. */
  tokens: number;
  /** Frames / tokens that remain after the rebuild. */
  remainingFrames: number;
  remainingTokens: number;
  /** ptsMs of the oldest frame still in context (null when none remains). */
  oldestPtsMs: number | null;
  rebuildMs: number;
}

export interface VideoBudget {
  /** Largest video (tokens) before evicting. */
  tokens: number;
  /** Largest next position id before evicting. */
  positions: number;
  /** Evict down to this fraction of the budget. */
  evictToFraction: number;
  /** Start the background rebuild past this fraction (1: never). */
  rebuildAtFraction: number;
}

/** Frames to drop from the head so that the video plus `incoming` fits evictToFraction of the budget. */
export function planEviction(
  state: VideoState,
  budget: VideoBudget,
  incomingTokens: number,
  incomingPositions: number,
): { drop: number; droppedTokens: number } {
  const prefixLen = state.prefixLength;
  const targetTokens = Math.floor(budget.tokens * budget.evictToFraction);
  const targetPositions = Math.floor(budget.positions * budget.evictToFraction);
  let tokens = state.tokens - prefixLen;
  let positions = state.nextPosition - prefixLen;
  let drop = 0;
  let droppedTokens = 0;
  while (
    drop < state.frames.length &&
    (prefixLen + tokens + incomingTokens > targetTokens || prefixLen + positions + incomingPositions > targetPositions)
  ) {
    const e = state.frames[drop++];
    tokens -= e.tokenCount;
    positions -= e.positionCount;
    droppedTokens += e.tokenCount;
  }
  return { drop, droppedTokens };
}

/** A cache for the frames that will remain after an eviction, built in the background. */
interface Rebuild {
  /** Frames at the head of the list that the new cache leaves out. */
  drop: number;
  droppedTokens: number;
  /** Index in the frame list of the next frame to prefill. */
  next: number;
  cache: KvCache;
  nextPosition: number;
  logits: Float32Array | null;
  t0: number;
}

/**
 * Evicts for one VideoContext. Every method that touches the state runs under the context's lock:
 * `makeRoom` because the append holding it calls it, the background steps because they take it.
 */
export class Evictor {
  private rebuild: Rebuild | null = null;
  private pumping: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly state: VideoState,
    private readonly budget: VideoBudget,
    private readonly prefiller: Prefiller,
    private readonly emptyCache: KvCache,
    private readonly lock: Mutex,
    private readonly maxChunkTokens: number,
    /** Called once the new cache is in place. */
    private readonly onEvicted: (e: EvictionEvent) => void,
  ) {}

  /** The background rebuild's cache, which runs must not write over (null when none is under way). */
  get shadow(): KvCache | null {
    return this.rebuild?.cache ?? null;
  }

  get rebuilding(): boolean {
    return this.rebuild !== null;
  }

  /**
   * Makes room for `tokens` / `positions` more: finishes a background rebuild that did not catch
   * up in time, then evicts at once if that was not enough. Under the lock.
   */
  async makeRoom(tokens: number, positions: number, signal: AbortSignal | undefined): Promise<EvictionEvent | null> {
    const over = (): boolean => {
      const f = this.state.footprint;
      return f.tokens + tokens > this.budget.tokens || f.positions + positions > this.budget.positions;
    };
    let evicted: EvictionEvent | null = null;
    if (over() && this.rebuild) {
      while (this.rebuild) {
        const e = await this.step(signal, Infinity);
        if (e) evicted = e;
      }
    }
    if (over()) evicted = await this.evictNow(tokens, positions, signal);
    return evicted;
  }

  /** Starts the background rebuild once the video passes rebuildAtFraction of its budget. */
  maybeStart(): void {
    const { state, budget } = this;
    if (this.rebuild || budget.rebuildAtFraction >= 1 || this.stopped) return;
    const soft = state.tokens > budget.tokens * budget.rebuildAtFraction || state.nextPosition > budget.positions * budget.rebuildAtFraction;
    if (!soft) return;
    const { drop, droppedTokens } = planEviction(state, budget, 0, 0);
    if (drop === 0) return;
    this.rebuild = { drop, droppedTokens, next: drop, cache: this.emptyCache, nextPosition: 0, logits: null, t0: performance.now() };
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
    });
  }

  /** Resolves when no background rebuild is pending. */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  /** Drops a rebuild under way; no new one starts. */
  stop(): void {
    this.stopped = true;
    this.rebuild = null;
  }

  /** Runs the rebuild one step at a time, each under the lock, yielding to appends and questions in between. */
  private async pump(): Promise<void> {
    while (this.rebuild && !this.stopped) {
      await new Promise<void>((r) => setImmediate(r));
      const release = await this.lock.acquire();
      try {
        if (this.rebuild && !this.stopped) await this.step(undefined, this.maxChunkTokens);
      } catch {
        // The current cache is still valid; an append that reaches the budget evicts synchronously
        // and reports whatever goes wrong then.
        this.rebuild = null;
      } finally {
        release();
      }
    }
  }

  /** Prefills the next frames (about `maxTokens`) of the rebuild; swaps it in when it has caught up. */
  private async step(signal: AbortSignal | undefined, maxTokens: number): Promise<EvictionEvent | null> {
    const rb = this.rebuild as Rebuild;
    const frames = this.state.frames;
    const first = rb.cache.length === 0;
    const batch: FrameEntry[] = [];
    let tokens = 0;
    while (rb.next + batch.length < frames.length && (batch.length === 0 || tokens + frames[rb.next + batch.length].tokenCount <= maxTokens)) {
      const e = frames[rb.next + batch.length];
      batch.push(e);
      tokens += e.tokenCount;
    }
    if (first || batch.length > 0) {
      const r = await this.prefiller.run(rb.cache, first ? 0 : rb.nextPosition, batch, first, signal);
      rb.cache = r.cache;
      rb.nextPosition = r.nextPosition;
      rb.logits = r.logits ?? rb.logits;
      rb.next += batch.length;
    }
    if (rb.next < this.state.frames.length) return null;
    // Caught up: the rebuilt cache holds exactly the frames after `drop`.
    this.rebuild = null;
    return this.commit(rb.drop, rb.droppedTokens, { cache: rb.cache, nextPosition: rb.nextPosition, logits: rb.logits }, rb.t0);
  }

  private async evictNow(incomingTokens: number, incomingPositions: number, signal: AbortSignal | undefined): Promise<EvictionEvent> {
    const t0 = performance.now();
    const { drop, droppedTokens } = planEviction(this.state, this.budget, incomingTokens, incomingPositions);
    const r = await this.prefiller.run(this.emptyCache, 0, this.state.frames.slice(drop), true, signal);
    return this.commit(drop, droppedTokens, r, t0);
  }

  private commit(drop: number, droppedTokens: number, r: { cache: KvCache; nextPosition: number; logits: Float32Array | null }, t0: number): EvictionEvent {
    const state = this.state;
    state.evicted(drop, r);
    const event: EvictionEvent = {
      frames: drop,
      tokens: droppedTokens,
      remainingFrames: state.frames.length,
      remainingTokens: state.tokens,
      oldestPtsMs: state.frames.length > 0 ? state.frames[0].ptsMs : null,
      rebuildMs: performance.now() - t0,
    };
    this.onEvicted(event);
    return event;
  }
}
