// The video half of a VideoContext: the frames in context with their token accounting, the KV
// buffer sets the context owns, and the chunked prefill that lays frames into a KV cache
// (markers, placeholders and positions from ./layout.ts, visual rows pasted over the
// placeholders' embeddings).
import { WinnowError, throwIfAborted } from '../errors.js';
import type { DecoderRuntime, KvBufferSet, KvCache } from './decoder.js';
import type { FrameSlots, VideoPromptLayout } from './layout.js';

/**
 * The visual part of one frame as the LLM consumes it. `PrunedFrame` from src/prune satisfies it;
 * so does an unpruned `EncodedFrame`-like object with all tokens.
 */
export interface VisualFrame {
  frame: { ptsMs: number };
  /** kept × dim, row-major, already in the LLM's width. */
  tokens: Float32Array;
  dim: number;
  /**
   * Visual tokens the frame had before pruning (default: the kept count). Only counted, so that
   * callers can report kept / total for the frames still in context without shadowing evictions.
   */
  totalTokens?: number;
}

export interface FrameEntry extends FrameSlots {
  ptsMs: number;
  /** Own copy: the producer's buffer may be a view of a larger batch buffer. */
  features: Float32Array;
  /** Visual tokens before pruning (≥ visualCount). */
  totalVisualCount: number;
}

/** Checks a frame against the model's width and places it in the layout. */
export function frameEntry(layout: VideoPromptLayout, f: VisualFrame, hiddenSize: number): FrameEntry {
  if (f.dim !== hiddenSize) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `frame tokens are ${f.dim}-wide, the language model takes ${hiddenSize}`, {
      details: { frameDim: f.dim, modelDim: hiddenSize },
    });
  }
  if (f.tokens.length % hiddenSize !== 0) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `tokens length ${f.tokens.length} is not a multiple of dim ${hiddenSize}`);
  }
  const visualCount = f.tokens.length / hiddenSize;
  const totalVisualCount = f.totalTokens ?? visualCount;
  if (!Number.isInteger(totalVisualCount) || totalVisualCount < visualCount) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `totalTokens ${totalVisualCount} is not an integer ≥ the ${visualCount} kept tokens`);
  }
  return { ...layout.frame(f.frame.ptsMs, visualCount), ptsMs: f.frame.ptsMs, features: f.tokens.slice(), totalVisualCount };
}

export interface PrefillResult {
  cache: KvCache;
  nextPosition: number;
  /** Logits after the last token fed (a copy), null when nothing was fed. */
  logits: Float32Array | null;
}

/** The frames in context and the KV cache that holds them (plus the layout's prefix). */
export class VideoState {
  frames: FrameEntry[] = [];
  cache: KvCache;
  /** Tokens in the cache: prefix + markers + visual tokens (0 before the first frame). */
  tokens = 0;
  visualTokens = 0;
  visualTokensTotal = 0;
  nextPosition = 0;
  evictedFrames = 0;
  /** Logits after the last video token, null before the first frame. */
  logits: Float32Array | null = null;

  constructor(
    empty: KvCache,
    readonly prefixLength: number,
  ) {
    this.cache = empty;
  }

  get empty(): boolean {
    return this.cache.length === 0;
  }

  /** Tokens and positions the video takes, counting the prefix that the first frame brings. */
  get footprint(): { tokens: number; positions: number } {
    return this.empty ? { tokens: this.prefixLength, positions: this.prefixLength } : { tokens: this.tokens, positions: this.nextPosition };
  }

  /** `entries` were prefilled on top of the cache into `r`. */
  appended(entries: readonly FrameEntry[], r: PrefillResult): void {
    if (this.empty) this.tokens = this.prefixLength;
    this.cache = r.cache;
    this.nextPosition = r.nextPosition;
    this.logits = r.logits ?? this.logits;
    for (const e of entries) {
      this.frames.push(e);
      this.tokens += e.tokenCount;
      this.visualTokens += e.visualCount;
      this.visualTokensTotal += e.totalVisualCount;
    }
  }

  /** The first `dropped` frames left; `r` holds the prefix and the frames that remain. */
  evicted(dropped: number, r: PrefillResult): void {
    const remaining = this.frames.slice(dropped);
    this.cache = r.cache;
    this.nextPosition = r.nextPosition;
    this.logits = r.logits;
    this.frames = remaining;
    this.tokens = this.prefixLength + remaining.reduce((s, e) => s + e.tokenCount, 0);
    this.visualTokens = remaining.reduce((s, e) => s + e.visualCount, 0);
    this.visualTokensTotal = remaining.reduce((s, e) => s + e.totalVisualCount, 0);
    this.evictedFrames += dropped;
  }
}

/**
 * The KV buffer sets of one context. One holds the video state, one a background rebuild's state,
 * and the others take turns as the output of decoder runs (chunks, questions, answers, rebuilds):
 * questions therefore never touch the video state, and steady-state decoding allocates no KV
 * memory. Buffers are allocated on first use, so the rebuild's set costs nothing until an
 * eviction nears.
 */
export class KvSetPool {
  private readonly sets: KvBufferSet[];

  constructor(runtime: DecoderRuntime, count: number) {
    this.sets = Array.from({ length: count }, () => runtime.createBufferSet());
  }

  /** A set that none of `inUse` lives in. */
  free(...inUse: (KvCache | null | undefined)[]): KvBufferSet {
    for (const set of this.sets) if (!inUse.some((c) => c?.set === set)) return set;
    throw new WinnowError('WINNOW_ERR_INTERNAL', 'no free KV buffer set');
  }

  get reservedBytes(): number {
    return this.sets.reduce((s, b) => s + b.reservedBytes, 0);
  }

  release(): void {
    for (const set of this.sets) set.release();
  }
}

/** Feeds frames to the decoder in chunks of at most maxChunkTokens, with ids and positions from the layout. */
export class Prefiller {
  // Chunk scratch, sized once.
  private readonly ids: BigInt64Array;
  private readonly positions: BigInt64Array;

  constructor(
    private readonly runtime: DecoderRuntime,
    private readonly layout: VideoPromptLayout,
    private readonly maxChunkTokens: number,
    private readonly maxContextTokens: number,
    /** The set a run reading `current` may write into. */
    private readonly outputSet: (current: KvCache) => KvBufferSet,
  ) {
    this.ids = new BigInt64Array(maxChunkTokens);
    this.positions = new BigInt64Array(maxChunkTokens);
  }

  /**
   * Prefills `entries` (and the layout's prefix when `withPrefix`) on top of `base`. Returns the
   * new state; `base` and the video state are left alone (whatever was written went to scratch
   * sets), so an abort or error changes nothing.
   */
  async run(base: KvCache, startPosition: number, entries: readonly FrameEntry[], withPrefix: boolean, signal: AbortSignal | undefined): Promise<PrefillResult> {
    const d = this.runtime.contract.hiddenSize;
    const layout = this.layout;
    const imageId = BigInt(layout.imageTokenId);
    const { ids, positions, maxChunkTokens } = this;
    let n = 0;
    // Visual rows to paste over the placeholders' embeddings in the current chunk.
    const pastes: { row: number; src: Float32Array; from: number; count: number }[] = [];
    let cur = base;
    let pos = startPosition;
    let logits: Float32Array | null = null;
    const flush = async (): Promise<void> => {
      if (n === 0) return;
      throwIfAborted(signal);
      const embeds = await this.runtime.embed(ids.slice(0, n));
      for (const p of pastes) embeds.set(p.src.subarray(p.from * d, (p.from + p.count) * d), p.row * d);
      const r = await this.runtime.forward(embeds, positions.slice(0, n), cur, this.outputSet(cur), this.maxContextTokens);
      cur = r.present;
      logits = r.lastLogits;
      n = 0;
      pastes.length = 0;
    };
    const text = async (tokenIds: readonly number[]): Promise<void> => {
      for (const id of tokenIds) {
        ids[n] = BigInt(id);
        positions[n++] = BigInt(pos++);
        if (n === maxChunkTokens) await flush();
      }
    };
    if (withPrefix) await text(layout.prefixIds);
    for (const e of entries) {
      await text(e.markerIds);
      let done = 0;
      while (done < e.visualCount) {
        const take = Math.min(e.visualCount - done, maxChunkTokens - n);
        pastes.push({ row: n, src: e.features, from: done, count: take });
        for (let i = 0; i < take; i++) {
          ids[n] = imageId;
          positions[n++] = BigInt(layout.visualPosition(pos, done + i));
        }
        done += take;
        if (n === maxChunkTokens) await flush();
      }
      pos += layout.visualPositionCount(e.visualCount);
    }
    await flush();
    const out = logits as Float32Array | null;
    return { cache: cur, nextPosition: pos, logits: out ? out.slice() : null };
  }
}
