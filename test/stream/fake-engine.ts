// A stand-in for WinnowEngine with no model: frames "encode" to a 2 × 2 grid, the pruner keeps a
// fixed number of tokens, the context holds at most `maxFrames` frames (evicting the oldest), and
// answers are scripted words. Enough to drive the real FairScheduler and Session without onnxruntime.
import { WinnowError } from '../../src/errors.js';
import type { EncodedFrame } from '../../src/encode/index.js';
import type { Frame } from '../../src/ingest/types.js';
import type { AnswerResult, AppendResult, AskOptions, VideoContextEvents, VideoContextStats, VisualFrame } from '../../src/llm/index.js';
import type { PrunedFrame } from '../../src/prune/index.js';
import { FairScheduler } from '../../src/stream/scheduler.js';
import type { SessionContext, SessionEngine, SessionPruner } from '../../src/stream/session.js';
import { TypedEmitter } from '../../src/util/emitter.js';
import type { Deferred } from '../../src/util/deferred.js';

export const GRID = 2;
export const TOKENS_PER_FRAME = GRID * GRID;
const DIM = 2;

export interface FakeOptions {
  /** Frames the context holds before it evicts the oldest. Default: unlimited. */
  maxFrames?: number;
  /** Tokens the pruner keeps per frame. Default 3 (of 4). */
  keep?: number;
  /** The answer to every question, one delta per word. */
  answer?: (question: string) => string[];
  maxBatchFrames?: number;
  answerDeltasPerTurn?: number;
}

export class FakeContext implements SessionContext {
  private readonly events = new TypedEmitter<VideoContextEvents>();
  readonly frames: { ptsMs: number; kept: number; total: number }[] = [];
  evictedFrames = 0;
  closed = false;

  constructor(
    readonly maxContextTokens: number,
    private readonly maxFrames: number,
    private readonly answer: (question: string) => string[],
  ) {}

  on<K extends keyof VideoContextEvents>(event: K, listener: (e: VideoContextEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  get stats(): VideoContextStats {
    const kept = this.frames.reduce((s, f) => s + f.kept, 0);
    const total = this.frames.reduce((s, f) => s + f.total, 0);
    return { frames: this.frames.length, tokens: kept + this.frames.length, visualTokens: kept, visualTokensTotal: total, nextPosition: 0, kvBytes: 0, kvReservedBytes: 0, evictedFrames: this.evictedFrames, rebuilding: false };
  }

  async appendFrame(frame: VisualFrame): Promise<AppendResult> {
    const kept = frame.tokens.length / frame.dim;
    this.frames.push({ ptsMs: frame.frame.ptsMs, kept, total: frame.totalTokens ?? kept });
    let evicted: AppendResult['evicted'] = null;
    if (this.frames.length > this.maxFrames) {
      const gone = this.frames.splice(0, this.frames.length - this.maxFrames);
      this.evictedFrames += gone.length;
      evicted = {
        frames: gone.length,
        tokens: gone.reduce((s, f) => s + f.kept + 1, 0),
        remainingFrames: this.frames.length,
        remainingTokens: this.stats.tokens,
        oldestPtsMs: this.frames[0]?.ptsMs ?? null,
        rebuildMs: 0,
      };
      this.events.emit('evicted', evicted);
    }
    return { tokens: kept + 1, visualTokens: kept, prefillMs: 1, evicted };
  }

  async *askStream(question: string, options: AskOptions = {}): AsyncGenerator<string, AnswerResult, void> {
    const words = this.answer(question).slice(0, options.maxNewTokens ?? 64);
    let generated = 0;
    for (const w of words) {
      // One delta per macrotask, like a decoder step: cancels and other sessions get in between.
      await new Promise((r) => setImmediate(r));
      if (options.signal?.aborted) throw new WinnowError('WINNOW_ERR_ABORTED', 'aborted');
      generated++;
      yield generated === 1 ? w : ` ${w}`;
    }
    const stopReason = generated < words.length || words.length === (options.maxNewTokens ?? 64) ? 'max-new-tokens' : 'eos';
    return { text: words.join(' '), stopReason, generatedTokens: generated, questionTokens: 5, contextTokens: this.stats.tokens, ttftMs: 1, prefillMs: 2, totalMs: 3 };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

class FakePruner implements SessionPruner {
  closed = false;
  constructor(private readonly keep: number) {}

  async prune(input: EncodedFrame): Promise<PrunedFrame> {
    const n = Math.min(this.keep, input.numTokens);
    return {
      frame: input.frame,
      kept: Int32Array.from({ length: n }, (_, i) => i),
      tokens: input.tokens.slice(0, n * input.dim),
      scores: new Float32Array(input.numTokens),
      gridH: input.gridH,
      gridW: input.gridW,
      dim: input.dim,
      ...(input.sourceId !== undefined ? { sourceId: input.sourceId } : {}),
      stats: { kept: n, total: input.numTokens, scoreMs: 0 },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface FakeEngine extends SessionEngine {
  readonly scheduler: FairScheduler;
  /** Every encode batch, as the frames' session-timeline pts. */
  readonly batches: number[][];
  readonly contexts: FakeContext[];
  /** While set, encode batches wait for it (frames pile up in the sessions' queues). */
  gate: Deferred<void> | undefined;
  /** The next encode batch fails with this error. */
  failNext: Error | undefined;
  closed: boolean;
}

export function fakeEngine(options: FakeOptions = {}): FakeEngine {
  const answer = options.answer ?? ((q: string) => ['an', 'answer', 'to', q]);
  const engine: FakeEngine = {
    batches: [],
    contexts: [],
    gate: undefined,
    failNext: undefined,
    closed: false,
    scheduler: new FairScheduler(
      async (frames: Frame[]) => {
        engine.batches.push(frames.map((f) => f.ptsMs));
        await engine.gate?.promise;
        const err = engine.failNext;
        engine.failNext = undefined;
        if (err) throw err;
        return frames.map((frame) => ({ frame, tokens: new Float32Array(TOKENS_PER_FRAME * DIM).fill(1), numTokens: TOKENS_PER_FRAME, dim: DIM, gridH: GRID, gridW: GRID }));
      },
      options.maxBatchFrames ?? 8,
      options.answerDeltasPerTurn ?? 2,
    ),
    lm: {
      config: { generation: { maxNewTokens: 16 } },
      createContext: ({ maxContextTokens }) => {
        const ctx = new FakeContext(maxContextTokens, options.maxFrames ?? Number.POSITIVE_INFINITY, answer);
        engine.contexts.push(ctx);
        return ctx;
      },
    },
    inputSize: { width: 8, height: 8 },
    createPruner: () => new FakePruner(options.keep ?? 3),
    createTracker: () => undefined,
    finishVideo: (encoded) => encoded,
    close: async () => {
      engine.closed = true;
    },
  };
  return engine;
}

/** `count` small RGB frames `stepMs` apart. */
export function rgbFrames(count: number, stepMs: number, startMs = 0): Frame[] {
  return Array.from({ length: count }, (_, i) => ({ index: i, ptsMs: startMs + i * stepMs, width: 4, height: 4, data: new Uint8Array(4 * 4 * 3).fill(i) }));
}
