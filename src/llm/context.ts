// VideoContext: one KV cache over one video stream. Frames are prefilled as they arrive; each
// question forks from the video state, is answered, and is rolled back, so the video prefix is
// computed once and every question pays only for itself. This file is the facade: options,
// the turn lock, events, stats. The prompt layout is in ./layout.ts, the frames and prefill in
// ./video-state.ts, eviction in ./eviction.ts, answering in ./generation.ts.
import { WinnowError, abortError, throwIfAborted } from '../errors.js';
import { TypedEmitter, type Unsubscribe } from '../util/emitter.js';
import { Mutex } from '../util/lock.js';
import { intAtLeast, positiveInt } from '../util/validate.js';
import type { LanguageModelConfig } from './config.js';
import type { DecoderRuntime, KvBufferSet, KvCache } from './decoder.js';
import { Evictor, type EvictionEvent } from './eviction.js';
import { answer, planQuestion, type AnswerResult, type AskOptions } from './generation.js';
import { VideoPromptLayout } from './layout.js';
import type { TextTokenizer } from './tokenizer.js';
import { KvSetPool, Prefiller, VideoState, frameEntry, type VisualFrame } from './video-state.js';

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

export interface AppendResult {
  /** Tokens this frame added (marker + visual). */
  tokens: number;
  visualTokens: number;
  prefillMs: number;
  /** Set when frames had to be evicted to make room. */
  evicted: EvictionEvent | null;
}

export interface VideoContextEvents {
  evicted: EvictionEvent;
}

export interface VideoContextStats {
  /** Frames currently in context. */
  frames: number;
  /** Tokens in the video state (bos + markers + visual tokens). */
  tokens: number;
  /** Visual tokens kept for the frames currently in context. */
  visualTokens: number;
  /** Visual tokens those same frames had before pruning (VisualFrame.totalTokens). */
  visualTokensTotal: number;
  /** Next position id (frame-shared positions grow slower than tokens). */
  nextPosition: number;
  /** KV bytes the tokens in context take. */
  kvBytes: number;
  /** KV bytes allocated (the buffer sets, grown geometrically up to maxContextTokens). */
  kvReservedBytes: number;
  evictedFrames: number;
  /** A background rebuild for an eviction is under way (the current cache still serves). */
  rebuilding: boolean;
}

/** The defaults VideoContextOptions documents. */
const DEFAULTS = { reserveTokens: 256, maxChunkTokens: 256, evictToFraction: 0.6, rebuildAtFraction: 0.9 } as const;
/** Frame-shared positions grow slower than tokens, so such contexts may hold more tokens than positions. */
const MIN_FRAME_SHARED_CONTEXT_TOKENS = 4096;

export class VideoContext {
  readonly maxContextTokens: number;
  readonly reserveTokens: number;
  readonly maxChunkTokens: number;
  readonly evictToFraction: number;
  readonly rebuildAtFraction: number;
  readonly deferQuestionCache: boolean;
  /** Where each token goes and which position it takes. */
  readonly layout: VideoPromptLayout;

  /** Appends, questions and rebuild steps take turns on the one KV cache. */
  private readonly lock = new Mutex();
  private readonly events = new TypedEmitter<VideoContextEvents>();
  private readonly state: VideoState;
  /** Video state, background-rebuild state, and two that take turns as run outputs. */
  private readonly sets: KvSetPool;
  private readonly prefiller: Prefiller;
  private readonly evictor: Evictor;
  private closed = false;

  constructor(
    private readonly runtime: DecoderRuntime,
    private readonly tokenizer: TextTokenizer,
    private readonly config: LanguageModelConfig,
    options: VideoContextOptions = {},
  ) {
    const defaultMax =
      config.visualPositionScheme === 'frame-shared' ? Math.max(MIN_FRAME_SHARED_CONTEXT_TOKENS, config.maxPositionEmbeddings) : config.maxPositionEmbeddings;
    this.maxContextTokens = options.maxContextTokens ?? defaultMax;
    this.reserveTokens = options.reserveTokens ?? DEFAULTS.reserveTokens;
    this.maxChunkTokens = options.maxChunkTokens ?? DEFAULTS.maxChunkTokens;
    this.evictToFraction = options.evictToFraction ?? DEFAULTS.evictToFraction;
    this.rebuildAtFraction = options.rebuildAtFraction ?? DEFAULTS.rebuildAtFraction;
    this.deferQuestionCache = options.deferQuestionCache ?? true;
    positiveInt('maxChunkTokens', this.maxChunkTokens);
    positiveInt('reserveTokens', this.reserveTokens);
    intAtLeast('maxContextTokens', this.maxContextTokens, this.reserveTokens + 1);
    const fraction = (name: string, v: number, min: number, minIncluded: boolean): void => {
      if (!(minIncluded ? v >= min : v > min) || !(v <= 1)) {
        throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be in ${minIncluded ? '[' : '('}${min}, 1], got ${v}`, { details: { name } });
      }
    };
    fraction('evictToFraction', this.evictToFraction, 0, false);
    fraction('rebuildAtFraction', this.rebuildAtFraction, this.evictToFraction, true);
    this.layout = new VideoPromptLayout(tokenizer, config);
    this.state = new VideoState(runtime.empty(), this.layout.prefixIds.length);
    this.sets = new KvSetPool(runtime, 4);
    this.prefiller = new Prefiller(runtime, this.layout, this.maxChunkTokens, this.maxContextTokens, (cur) => this.outputSet(cur));
    this.evictor = new Evictor(
      this.state,
      {
        tokens: this.videoBudgetTokens,
        positions: this.videoBudgetPositions,
        evictToFraction: this.evictToFraction,
        rebuildAtFraction: this.rebuildAtFraction,
      },
      this.prefiller,
      runtime.empty(),
      this.lock,
      this.maxChunkTokens,
      (e) => this.events.emit('evicted', e),
    );
  }

  on<K extends keyof VideoContextEvents>(event: K, listener: (e: VideoContextEvents[K]) => void): Unsubscribe {
    return this.events.on(event, listener);
  }

  get stats(): VideoContextStats {
    const s = this.state;
    return {
      frames: s.frames.length,
      tokens: s.tokens,
      visualTokens: s.visualTokens,
      visualTokensTotal: s.visualTokensTotal,
      nextPosition: s.nextPosition,
      kvBytes: s.cache.bytes,
      kvReservedBytes: this.sets.reservedBytes,
      evictedFrames: s.evictedFrames,
      rebuilding: this.evictor.rebuilding,
    };
  }

  /** Largest video the context holds before evicting (tokens). */
  get videoBudgetTokens(): number {
    return this.maxContextTokens - this.reserveTokens;
  }

  private get videoBudgetPositions(): number {
    return this.config.maxPositionEmbeddings - this.reserveTokens;
  }

  /** A buffer set that is neither the video state, the rebuild's state, nor `current` (the run's input). */
  private outputSet(current: KvCache): KvBufferSet {
    return this.sets.free(this.state.cache, current, this.evictor.shadow);
  }

  /** Logits after the last video token (a copy), or null before the first frame. For tests and scoring. */
  videoLogits(): Float32Array | null {
    return this.state.logits ? this.state.logits.slice() : null;
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
    const entries = frames.map((f) => frameEntry(this.layout, f, this.runtime.contract.hiddenSize));
    const release = await this.lock.acquire();
    try {
      this.assertOpen();
      const t0 = performance.now();
      const addTokens = entries.reduce((s, e) => s + e.tokenCount, 0);
      const addPositions = entries.reduce((s, e) => s + e.positionCount, 0);
      const prefixLen = this.layout.prefixIds.length;
      if (prefixLen + addTokens > this.videoBudgetTokens || prefixLen + addPositions > this.videoBudgetPositions) {
        throw new WinnowError('WINNOW_ERR_CONTEXT_OVERFLOW', `${addTokens} tokens do not fit a video budget of ${this.videoBudgetTokens} tokens`, {
          details: { tokens: addTokens, budget: this.videoBudgetTokens },
        });
      }
      const evicted = await this.evictor.makeRoom(addTokens, addPositions, signal);
      const first = this.state.empty;
      const r = await this.prefiller.run(this.state.cache, first ? 0 : this.state.nextPosition, entries, first, signal);
      this.state.appended(entries, r);
      this.evictor.maybeStart();
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

  /** Resolves when no background rebuild is pending (tests, benchmarks, orderly shutdown). */
  async idle(): Promise<void> {
    await this.evictor.idle();
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
    const { signal } = options;
    throwIfAborted(signal);
    this.assertOpen();
    const plan = planQuestion(this.config, this.layout, question, options);
    const release = await this.lock.acquire();
    try {
      this.assertOpen();
      const target = {
        runtime: this.runtime,
        tokenizer: this.tokenizer,
        layout: this.layout,
        video: this.state.cache,
        nextPosition: this.state.nextPosition,
        maxContextTokens: this.maxContextTokens,
        maxPositionEmbeddings: this.config.maxPositionEmbeddings,
        maxChunkTokens: this.maxChunkTokens,
        deferQuestionCache: this.deferQuestionCache,
        outputSet: (cur: KvCache) => this.outputSet(cur),
      };
      return yield* answer(target, plan, options, t0);
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
    this.evictor.stop();
    const release = await this.lock.acquire();
    try {
      this.state.cache = this.runtime.empty();
      this.sets.release();
      this.state.frames = [];
      this.state.logits = null;
    } finally {
      release();
    }
  }
}
