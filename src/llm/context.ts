import { WinnowError, abortError, throwIfAborted } from '../errors.js';
import { formatFrameMarker, type LanguageModelConfig } from './config.js';
import { DecoderRuntime, KvBufferSet, KvCache } from './decoder.js';
import { TokenSampler, type SamplingOptions } from './sampling.js';
import { IncrementalDetokenizer, StopStringMatcher, type TextTokenizer } from './tokenizer.js';

/**
 * The visual part of one frame as the LLM consumes it. `PrunedFrame` from src/prune satisfies it;
 * so does an unpruned `EncodedFrame`-like object with all tokens.
 */
export interface VisualFrame {
  frame: { ptsMs: number };
  /** kept × dim, row-major, already in the LLM's width. */
  tokens: Float32Array;
  dim: number;
}

export interface VideoContextOptions {
  /**
   * Hard cap on tokens in the KV cache: video + question + answer. Default: the model's
   * max_position_embeddings (at least 4096 tokens when positions are frame-shared).
   */
  maxContextTokens?: number;
  /**
   * Tokens kept free for a question and its answer; the video never grows past
   * maxContextTokens − reserveTokens. Default 256.
   */
  reserveTokens?: number;
  /** Most tokens one decoder run prefills (bounds the activations in flight). Default 256. */
  maxChunkTokens?: number;
  /**
   * When the video outgrows its budget, the oldest frames are evicted until it fills at most
   * this fraction of the budget, so that rebuilds stay rare on an endless stream. Default 0.6.
   */
  evictToFraction?: number;
  /**
   * When the video passes this fraction of its budget, the rebuild for the eviction starts in
   * the background: the frames that will remain are prefilled into spare buffers a chunk at a
   * time between appends and questions, which keep using the current cache, and the new cache
   * replaces it once it has caught up. Reaching the budget itself finishes it at once. 1 turns
   * the background rebuild off (evict only at the budget). Default 0.9.
   */
  rebuildAtFraction?: number;
  /**
   * The question's last prefill chunk runs without fetching its KV cache: the first answer
   * token needs only its logits, and copying the whole cache out of onnxruntime is most of the
   * cost of that run on a long video. When the answer goes on, that chunk is fed again together
   * with the first answer token, this time keeping the cache: the same number of decoder runs as
   * without deferral, one of which skips the copy, so it lowers the time to first token and the
   * cost of the whole answer. The question's tokens are computed twice (cheap next to the cache).
   * Default true.
   */
  deferQuestionCache?: boolean;
}

export interface AskOptions extends SamplingOptions {
  signal?: AbortSignal;
  /** Default: generation_config.json's max_new_tokens, else 64. */
  maxNewTokens?: number;
  /** Extra strings that end the answer (not included in it). */
  stop?: readonly string[];
  /** Extra token ids that end the answer besides the model's eos. */
  stopTokenIds?: readonly number[];
  /** Called with each text delta as soon as it is complete UTF-16 text. */
  onText?: (delta: string) => void;
}

export type StopReason = 'eos' | 'stop-string' | 'max-new-tokens' | 'context-full';

export interface AnswerResult {
  text: string;
  stopReason: StopReason;
  /** Tokens generated (including the eos token when one ended the answer). */
  generatedTokens: number;
  /** Tokens of the templated question. */
  questionTokens: number;
  /** Tokens in the video context the question was asked against. */
  contextTokens: number;
  /** From the call to the first answer token. */
  ttftMs: number;
  /** Question prefill only. */
  prefillMs: number;
  totalMs: number;
}

export interface AppendResult {
  /** Tokens this frame added (marker + visual). */
  tokens: number;
  visualTokens: number;
  prefillMs: number;
  /** Set when frames had to be evicted to make room. */
  evicted: EvictionEvent | null;
}

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

export interface VideoContextEvents {
  evicted: EvictionEvent;
}

export interface VideoContextStats {
  frames: number;
  /** Tokens in the video state (bos + markers + visual tokens). */
  tokens: number;
  visualTokens: number;
  /** Next position id (frame-shared positions grow slower than tokens). */
  nextPosition: number;
  /** KV bytes the tokens in context take. */
  kvBytes: number;
  /** KV bytes allocated (three buffer sets, grown geometrically up to maxContextTokens). */
  kvReservedBytes: number;
  evictedFrames: number;
  /** A background rebuild for an eviction is under way (the current cache still serves). */
  rebuilding: boolean;
}

interface FrameEntry {
  ptsMs: number;
  markerIds: number[];
  /** Own copy: the producer's buffer may be a view of a larger batch buffer. */
  features: Float32Array;
  visualCount: number;
  tokenCount: number;
  positionCount: number;
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

/** A FIFO lock: appends and questions take turns on the one KV cache. */
class TurnLock {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    return prev.then(() => release);
  }
}

/**
 * One KV cache over one video stream. Frames are prefilled as they arrive; each question forks
 * from the video state, is answered, and is rolled back, so the video prefix is computed once
 * and every question pays only for itself.
 *
 * Layout (what winnow models are trained on): [bos] then per frame the marker text (`t=12s`)
 * and one image placeholder per kept token, then the chat-templated question, then the answer.
 */
export class VideoContext {
  readonly maxContextTokens: number;
  readonly reserveTokens: number;
  readonly maxChunkTokens: number;
  readonly evictToFraction: number;
  readonly rebuildAtFraction: number;
  readonly deferQuestionCache: boolean;
  private rebuild: Rebuild | null = null;
  private pumping: Promise<void> | null = null;

  private readonly lock = new TurnLock();
  private readonly listeners: { [K in keyof VideoContextEvents]: Set<(e: VideoContextEvents[K]) => void> } = { evicted: new Set() };
  private frames: FrameEntry[] = [];
  private cache: KvCache;
  private videoTokens = 0;
  private visualTokens = 0;
  private nextPosition = 0;
  private evictedFrames = 0;
  private prefixIds: number[];
  private lastLogits: Float32Array | null = null;
  private closed = false;
  /**
   * Three buffer sets: one holds the video state, the other two take turns as the output of
   * decoder runs (chunks, questions, answers, rebuilds). Questions therefore never touch the
   * video state, and steady-state decoding allocates no KV memory.
   */
  private readonly sets: KvBufferSet[];
  // Chunk scratch, sized once.
  private readonly chunkIds: BigInt64Array;
  private readonly chunkPositions: BigInt64Array;

  constructor(
    private readonly runtime: DecoderRuntime,
    private readonly tokenizer: TextTokenizer,
    private readonly config: LanguageModelConfig,
    options: VideoContextOptions = {},
  ) {
    const defaultMax = config.visualPositionScheme === 'frame-shared' ? Math.max(4096, config.maxPositionEmbeddings) : config.maxPositionEmbeddings;
    this.maxContextTokens = options.maxContextTokens ?? defaultMax;
    this.reserveTokens = options.reserveTokens ?? 256;
    this.maxChunkTokens = options.maxChunkTokens ?? 256;
    this.evictToFraction = options.evictToFraction ?? 0.6;
    this.rebuildAtFraction = options.rebuildAtFraction ?? 0.9;
    this.deferQuestionCache = options.deferQuestionCache ?? true;
    const bad = (name: string, v: number): never => {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} is out of range: ${v}`);
    };
    if (!Number.isInteger(this.maxChunkTokens) || this.maxChunkTokens < 1) bad('maxChunkTokens', this.maxChunkTokens);
    if (!Number.isInteger(this.reserveTokens) || this.reserveTokens < 1) bad('reserveTokens', this.reserveTokens);
    if (!Number.isInteger(this.maxContextTokens) || this.maxContextTokens <= this.reserveTokens) bad('maxContextTokens', this.maxContextTokens);
    if (!(this.evictToFraction > 0 && this.evictToFraction <= 1)) bad('evictToFraction', this.evictToFraction);
    if (!(this.rebuildAtFraction >= this.evictToFraction && this.rebuildAtFraction <= 1)) bad('rebuildAtFraction', this.rebuildAtFraction);
    this.cache = runtime.empty();
    // Video state, background-rebuild state, and two that take turns as run outputs. Buffers
    // are allocated on first use, so the rebuild's set costs nothing until an eviction nears.
    this.sets = [runtime.createBufferSet(), runtime.createBufferSet(), runtime.createBufferSet(), runtime.createBufferSet()];
    this.prefixIds = config.bosTokenId === null ? [] : [config.bosTokenId];
    this.chunkIds = new BigInt64Array(this.maxChunkTokens);
    this.chunkPositions = new BigInt64Array(this.maxChunkTokens);
  }

  on<K extends keyof VideoContextEvents>(event: K, listener: (e: VideoContextEvents[K]) => void): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  get stats(): VideoContextStats {
    return {
      frames: this.frames.length,
      tokens: this.videoTokens,
      visualTokens: this.visualTokens,
      nextPosition: this.nextPosition,
      kvBytes: this.cache.bytes,
      kvReservedBytes: this.sets.reduce((s, b) => s + b.reservedBytes, 0),
      evictedFrames: this.evictedFrames,
      rebuilding: this.rebuild !== null,
    };
  }

  /** A buffer set that is neither the video state, the rebuild's state, nor `current` (the run's input). */
  private outputSet(current: KvCache): KvBufferSet {
    const shadow = this.rebuild?.cache.set ?? null;
    for (const set of this.sets) if (set !== this.cache.set && set !== current.set && set !== shadow) return set;
    throw new WinnowError('WINNOW_ERR_INTERNAL', 'no free KV buffer set');
  }

  /** Largest video the context holds before evicting (tokens). */
  get videoBudgetTokens(): number {
    return this.maxContextTokens - this.reserveTokens;
  }

  private get videoBudgetPositions(): number {
    return this.config.maxPositionEmbeddings - this.reserveTokens;
  }

  /** Logits after the last video token (a copy), or null before the first frame. For tests and scoring. */
  videoLogits(): Float32Array | null {
    return this.lastLogits ? this.lastLogits.slice() : null;
  }

  private entryFor(f: VisualFrame): FrameEntry {
    const d = this.runtime.contract.hiddenSize;
    if (f.dim !== d) {
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `frame tokens are ${f.dim}-wide, the language model takes ${d}`, {
        details: { frameDim: f.dim, modelDim: d },
      });
    }
    if (f.tokens.length % d !== 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `tokens length ${f.tokens.length} is not a multiple of dim ${d}`);
    const visualCount = f.tokens.length / d;
    const markerIds = this.tokenizer.encode(formatFrameMarker(this.config.frameMarker, f.frame.ptsMs));
    const positionCount = markerIds.length + (this.config.visualPositionScheme === 'frame-shared' ? (visualCount > 0 ? 1 : 0) : visualCount);
    return {
      ptsMs: f.frame.ptsMs,
      markerIds,
      features: f.tokens.slice(),
      visualCount,
      tokenCount: markerIds.length + visualCount,
      positionCount,
    };
  }

  /**
   * Prefills `entries` (and the prefix when `withPrefix`) on top of `base`, in chunks of at most
   * maxChunkTokens. Returns the new state; `base` and the video state are left alone.
   */
  private async prefillEntries(
    base: KvCache,
    startPosition: number,
    entries: readonly FrameEntry[],
    withPrefix: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ cache: KvCache; nextPosition: number; logits: Float32Array | null }> {
    const d = this.runtime.contract.hiddenSize;
    const imageId = BigInt(this.config.imageTokenId);
    const ids = this.chunkIds;
    const positions = this.chunkPositions;
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
    try {
      if (withPrefix) {
        for (const id of this.prefixIds) {
          ids[n] = BigInt(id);
          positions[n++] = BigInt(pos++);
          if (n === this.maxChunkTokens) await flush();
        }
      }
      for (const e of entries) {
        for (const id of e.markerIds) {
          ids[n] = BigInt(id);
          positions[n++] = BigInt(pos++);
          if (n === this.maxChunkTokens) await flush();
        }
        const shared = this.config.visualPositionScheme === 'frame-shared';
        let done = 0;
        while (done < e.visualCount) {
          const take = Math.min(e.visualCount - done, this.maxChunkTokens - n);
          pastes.push({ row: n, src: e.features, from: done, count: take });
          for (let i = 0; i < take; i++) {
            ids[n] = imageId;
            positions[n++] = BigInt(shared ? pos : pos + done + i);
          }
          done += take;
          if (n === this.maxChunkTokens) await flush();
        }
        if (e.visualCount > 0) pos += shared ? 1 : e.visualCount;
      }
      await flush();
    } catch (err) {
      // Whatever was written went to scratch sets; the video state is intact.
      throw err;
    }
    const out = logits as Float32Array | null;
    return { cache: cur, nextPosition: pos, logits: out ? out.slice() : null };
  }

  /** Prefills one frame on top of the video state. Atomic: on abort or error the state is unchanged. */
  async appendFrame(frame: VisualFrame, options: { signal?: AbortSignal } = {}): Promise<AppendResult> {
    return this.appendFrames([frame], options);
  }

  /**
   * Prefills several frames in one go (chunked the same way). Used to build a context from a
   * list and by tests comparing incremental with one-shot prefill.
   */
  async appendFrames(frames: readonly VisualFrame[], options: { signal?: AbortSignal } = {}): Promise<AppendResult> {
    const { signal } = options;
    throwIfAborted(signal);
    this.assertOpen();
    const entries = frames.map((f) => this.entryFor(f));
    const release = await this.lock.acquire();
    try {
      this.assertOpen();
      const t0 = performance.now();
      const addTokens = entries.reduce((s, e) => s + e.tokenCount, 0);
      const addPositions = entries.reduce((s, e) => s + e.positionCount, 0);
      const prefixLen = this.prefixIds.length;
      if (prefixLen + addTokens > this.videoBudgetTokens || prefixLen + addPositions > this.videoBudgetPositions) {
        throw new WinnowError('WINNOW_ERR_CONTEXT_OVERFLOW', `${addTokens} tokens do not fit a video budget of ${this.videoBudgetTokens} tokens`, {
          details: { tokens: addTokens, budget: this.videoBudgetTokens },
        });
      }
      let evicted: EvictionEvent | null = null;
      const overBudget = (): boolean =>
        (this.cache.length === 0 ? prefixLen : this.videoTokens) + addTokens > this.videoBudgetTokens ||
        (this.cache.length === 0 ? prefixLen : this.nextPosition) + addPositions > this.videoBudgetPositions;
      if (overBudget() && this.rebuild) {
        // The background rebuild did not catch up in time: finish it now.
        while (this.rebuild) {
          const e = await this.rebuildStep(signal, Infinity);
          if (e) evicted = e;
        }
      }
      if (overBudget()) evicted = await this.evict(addTokens, addPositions, signal);
      const first = this.cache.length === 0;
      const r = await this.prefillEntries(this.cache, first ? 0 : this.nextPosition, entries, first, signal);
      this.cache = r.cache;
      if (first) this.videoTokens = prefixLen;
      this.nextPosition = r.nextPosition;
      this.lastLogits = r.logits ?? this.lastLogits;
      for (const e of entries) {
        this.frames.push(e);
        this.videoTokens += e.tokenCount;
        this.visualTokens += e.visualCount;
      }
      this.maybeStartRebuild();
      return {
        tokens: addTokens,
        visualTokens: entries.reduce((s, e) => s + e.visualCount, 0),
        prefillMs: performance.now() - t0,
        evicted,
      };
    } finally {
      release();
    }
  }

  /** Frames to drop from the head so that the video plus `incoming` fits evictToFraction of the budget. */
  private planEviction(incomingTokens: number, incomingPositions: number): { drop: number; droppedTokens: number } {
    const prefixLen = this.prefixIds.length;
    const targetTokens = Math.floor(this.videoBudgetTokens * this.evictToFraction);
    const targetPositions = Math.floor(this.videoBudgetPositions * this.evictToFraction);
    let tokens = this.videoTokens - prefixLen;
    let positions = this.nextPosition - prefixLen;
    let drop = 0;
    let droppedTokens = 0;
    while (
      drop < this.frames.length &&
      (prefixLen + tokens + incomingTokens > targetTokens || prefixLen + positions + incomingPositions > targetPositions)
    ) {
      const e = this.frames[drop++];
      tokens -= e.tokenCount;
      positions -= e.positionCount;
      droppedTokens += e.tokenCount;
    }
    return { drop, droppedTokens };
  }

  private maybeStartRebuild(): void {
    if (this.rebuild || this.rebuildAtFraction >= 1 || this.closed) return;
    const soft = this.videoTokens > this.videoBudgetTokens * this.rebuildAtFraction || this.nextPosition > this.videoBudgetPositions * this.rebuildAtFraction;
    if (!soft) return;
    const { drop, droppedTokens } = this.planEviction(0, 0);
    if (drop === 0) return;
    this.rebuild = { drop, droppedTokens, next: drop, cache: this.runtime.empty(), nextPosition: 0, logits: null, t0: performance.now() };
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
    });
  }

  /** Runs the rebuild one step at a time, each under the lock, yielding to appends and questions in between. */
  private async pump(): Promise<void> {
    while (this.rebuild && !this.closed) {
      await new Promise<void>((r) => setImmediate(r));
      const release = await this.lock.acquire();
      try {
        if (this.rebuild && !this.closed) await this.rebuildStep(undefined, this.maxChunkTokens);
      } catch {
        // The current cache is still valid; an append that reaches the budget evicts synchronously
        // and reports whatever goes wrong then.
        this.rebuild = null;
      } finally {
        release();
      }
    }
  }

  /** Prefills the next frames (about `maxTokens`) of the rebuild; swaps it in when it has caught up. Under the lock. */
  private async rebuildStep(signal: AbortSignal | undefined, maxTokens: number): Promise<EvictionEvent | null> {
    const rb = this.rebuild as Rebuild;
    const first = rb.cache.length === 0;
    const batch: FrameEntry[] = [];
    let tokens = 0;
    while (rb.next + batch.length < this.frames.length && (batch.length === 0 || tokens + this.frames[rb.next + batch.length].tokenCount <= maxTokens)) {
      const e = this.frames[rb.next + batch.length];
      batch.push(e);
      tokens += e.tokenCount;
    }
    if (first || batch.length > 0) {
      const r = await this.prefillEntries(rb.cache, first ? 0 : rb.nextPosition, batch, first, signal);
      rb.cache = r.cache;
      rb.nextPosition = r.nextPosition;
      rb.logits = r.logits ?? rb.logits;
      rb.next += batch.length;
    }
    if (rb.next < this.frames.length) return null;
    // Caught up: the rebuilt cache holds exactly the frames after `drop`.
    this.rebuild = null;
    const remaining = this.frames.slice(rb.drop);
    return this.commitEviction(rb.cache, rb.nextPosition, rb.logits, remaining, rb.drop, rb.droppedTokens, rb.t0);
  }

  private commitEviction(
    cache: KvCache,
    nextPosition: number,
    logits: Float32Array | null,
    remaining: FrameEntry[],
    drop: number,
    droppedTokens: number,
    t0: number,
  ): EvictionEvent {
    this.cache = cache;
    this.nextPosition = nextPosition;
    this.lastLogits = logits;
    this.frames = remaining;
    this.videoTokens = this.prefixIds.length + remaining.reduce((s, e) => s + e.tokenCount, 0);
    this.visualTokens = remaining.reduce((s, e) => s + e.visualCount, 0);
    this.evictedFrames += drop;
    const event: EvictionEvent = {
      frames: drop,
      tokens: droppedTokens,
      remainingFrames: remaining.length,
      remainingTokens: this.videoTokens,
      oldestPtsMs: remaining.length > 0 ? remaining[0].ptsMs : null,
      rebuildMs: performance.now() - t0,
    };
    for (const l of this.listeners.evicted) l(event);
    return event;
  }

  /** Resolves when no background rebuild is pending (tests, benchmarks, orderly shutdown). */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  /**
   * Drops the oldest frames until the video plus `incoming` fits evictToFraction of the budget,
   * then rebuilds the cache from the frames that remain (their positions start again at 0, as in
   * a fresh context — the model never sees a gap). Runs under the lock.
   */
  private async evict(incomingTokens: number, incomingPositions: number, signal: AbortSignal | undefined): Promise<EvictionEvent> {
    const t0 = performance.now();
    const { drop, droppedTokens } = this.planEviction(incomingTokens, incomingPositions);
    const remaining = this.frames.slice(drop);
    const r = await this.prefillEntries(this.runtime.empty(), 0, remaining, true, signal);
    return this.commitEviction(r.cache, r.nextPosition, r.logits, remaining, drop, droppedTokens, t0);
  }

  /** Answers `question` about the video so far; the video state is unchanged afterwards. */
  async ask(question: string, options: AskOptions = {}): Promise<AnswerResult> {
    const it = this.askStream(question, options);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /**
   * Same as ask, as an async generator of text deltas whose return value is the result. The
   * consumer's pace drives decoding (pause-source): nothing is buffered beyond one delta.
   */
  async *askStream(question: string, options: AskOptions = {}): AsyncGenerator<string, AnswerResult, void> {
    // TTFT counts from the call: templating, tokenizing and waiting for the cache included.
    const t0 = performance.now();
    const { signal, onText } = options;
    throwIfAborted(signal);
    this.assertOpen();
    const sampler = new TokenSampler({
      temperature: options.temperature ?? (this.config.generation.doSample ? this.config.generation.temperature : 0),
      topK: options.topK ?? (this.config.generation.doSample ? this.config.generation.topK : 0),
      topP: options.topP ?? (this.config.generation.doSample ? this.config.generation.topP : 1),
      seed: options.seed,
    });
    const maxNewTokens = options.maxNewTokens ?? this.config.generation.maxNewTokens ?? 64;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxNewTokens must be a positive integer, got ${maxNewTokens}`);
    }
    const eos = new Set<number>([...this.config.eosTokenIds, ...(options.stopTokenIds ?? [])]);
    const prompt = this.tokenizer.applyChatTemplate([{ role: 'user', content: question }]);
    const qIds = this.tokenizer.encode(prompt);
    const release = await this.lock.acquire();
    const tPrefill = performance.now();
    const video = this.cache;
    let cur: KvCache = video;
    try {
      this.assertOpen();
      throwIfAborted(signal);
      const ctxTokens = video.length === 0 ? this.prefixIds.length : video.length;
      const room = this.maxContextTokens - ctxTokens - qIds.length;
      const posRoom = this.config.maxPositionEmbeddings - (video.length === 0 ? this.prefixIds.length : this.nextPosition) - qIds.length;
      if (room < 1 || posRoom < 1) {
        throw new WinnowError('WINNOW_ERR_CONTEXT_OVERFLOW', `the question (${qIds.length} tokens) does not fit the context`, {
          details: { questionTokens: qIds.length, contextTokens: ctxTokens, maxContextTokens: this.maxContextTokens },
        });
      }
      const budget = Math.min(maxNewTokens, room, posRoom);
      // Question prefill (with the bos prefix when no frame came yet). The last chunk only needs
      // its logits for the first answer token; see deferQuestionCache for its cache.
      const ids = video.length === 0 ? [...this.prefixIds, ...qIds] : qIds;
      let pos = video.length === 0 ? 0 : this.nextPosition;
      let logits: Float32Array | null = null;
      let pendingIds: BigInt64Array | null = null;
      let pendingPositions: BigInt64Array | null = null;
      for (let a = 0; a < ids.length; a += this.maxChunkTokens) {
        throwIfAborted(signal);
        const b = Math.min(ids.length, a + this.maxChunkTokens);
        const chunkIds = BigInt64Array.from(ids.slice(a, b), (x) => BigInt(x));
        const positions = new BigInt64Array(b - a);
        for (let i = 0; i < b - a; i++) positions[i] = BigInt(pos + i);
        pos += b - a;
        const embeds = await this.runtime.embed(chunkIds);
        if (b === ids.length && this.deferQuestionCache) {
          logits = (await this.runtime.logitsOnly(embeds, positions, cur)).lastLogits;
          pendingIds = chunkIds;
          pendingPositions = positions;
        } else {
          const r = await this.runtime.forward(embeds, positions, cur, this.outputSet(cur), this.maxContextTokens);
          cur = r.present;
          logits = r.lastLogits;
        }
      }
      const prefillMs = performance.now() - tPrefill;
      const detok = IncrementalDetokenizer.forTokenizer(this.tokenizer);
      const stops = new StopStringMatcher(options.stop ?? []);
      const oneId = new BigInt64Array(1);
      const onePos = new BigInt64Array(1);
      let text = '';
      let generated = 0;
      let ttftMs = -1;
      let stopReason: StopReason = budget < maxNewTokens ? 'context-full' : 'max-new-tokens';
      const emit = async function* (delta: string): AsyncGenerator<string, void, void> {
        if (delta.length === 0) return;
        text += delta;
        onText?.(delta);
        yield delta;
      };
      for (;;) {
        throwIfAborted(signal);
        const next = sampler.sample(logits as Float32Array);
        generated++;
        if (ttftMs < 0) ttftMs = performance.now() - t0;
        if (eos.has(next)) {
          stopReason = 'eos';
          break;
        }
        const piece = stops.push(detok.push(next));
        yield* emit(piece.text);
        if (piece.stopped) {
          stopReason = 'stop-string';
          break;
        }
        if (generated >= budget) break;
        throwIfAborted(signal);
        oneId[0] = BigInt(next);
        onePos[0] = BigInt(pos++);
        let stepIds = oneId;
        let stepPositions = onePos;
        if (pendingIds !== null && pendingPositions !== null) {
          // The question's last chunk has no cache yet: run it again with this token, once.
          if (pendingIds.length + 1 <= this.maxChunkTokens) {
            stepIds = BigInt64Array.of(...pendingIds, oneId[0]);
            stepPositions = BigInt64Array.of(...pendingPositions, onePos[0]);
          } else {
            const embeds = await this.runtime.embed(pendingIds);
            cur = (await this.runtime.forward(embeds, pendingPositions, cur, this.outputSet(cur), this.maxContextTokens)).present;
            throwIfAborted(signal);
          }
          pendingIds = null;
          pendingPositions = null;
        }
        const embeds = await this.runtime.embed(stepIds);
        const r = await this.runtime.forward(embeds, stepPositions, cur, this.outputSet(cur), this.maxContextTokens);
        cur = r.present;
        logits = r.lastLogits;
      }
      if (stopReason !== 'stop-string') yield* emit(stops.push(detok.flush()).text + stops.flush());
      return {
        text,
        stopReason,
        generatedTokens: generated,
        questionTokens: qIds.length,
        contextTokens: ctxTokens,
        ttftMs,
        prefillMs,
        totalMs: performance.now() - t0,
      };
    } catch (e) {
      if (e instanceof WinnowError && e.code === 'WINNOW_ERR_ABORTED') throw abortError(signal);
      throw e;
    } finally {
      // Roll back: the question and answer live in scratch sets, the video state is untouched.
      release();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the video context is closed');
  }

  /** Drops the KV cache and frames. Idempotent; waits for the call in progress. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rebuild = null;
    const release = await this.lock.acquire();
    try {
      this.cache = this.runtime.empty();
      for (const set of this.sets) set.release();
      this.frames = [];
      this.lastLogits = null;
    } finally {
      release();
    }
  }
}
