// One video-QA session: an input (pushed container bytes, JPEGs, RGB frames, or a server-side
// file/URL), a bounded frame queue, a pruner and a VideoContext, questions answered on the frames
// so far, and standing questions. The WebSocket server is a thin translation of this class; the
// library API (`createSession`) is this class.
import { randomInt, randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Subject, type Subscription } from 'rxjs';
import sharp from 'sharp';
import { WinnowError, toWinnowError } from '../errors.js';
import type { EncodedFrame, ObjectTracker } from '../encode/index.js';
import { isConfinedSource, openVideo, type ConfinedSource, type SourcePolicy } from '../ingest/index.js';
import { redactUrl } from '../ingest/source.js';
import type { FfmpegEnv, Frame, IngestEvent, ResizeMode } from '../ingest/types.js';
import type { AnswerResult, VideoContext } from '../llm/index.js';
import type { Pruner, StrategyName } from '../prune/index.js';
import { WinnowEngine, type EngineOptions, type SchedulerClient } from './engine.js';
import { resolveLimits, type StreamLimits } from './limits.js';
import { DROP_POLICIES, sessionUpdateSchema, type DropPolicy, type SourceDescription, type TimingInfo, type UsageInfo, type VideoFormat, type WatchConfig } from './protocol.js';
import { decodeJpeg } from './jpeg.js';
import { WebhookSender } from './webhook.js';

export interface SessionConfig {
  /** Frames per second sampled from the input. Default 1. */
  fps: number;
  /** How frames are fitted to the model input. Default `pad` (the default model's preprocessing). */
  resize: ResizeMode;
  pruning: { strategy?: StrategyName; tau?: number; ratio?: number; temporal?: number; minKeep?: number };
  /** KV-cache budget (video + question + answer). Default: the limit `maxContextTokens`. */
  maxContextTokens: number;
  generation: { maxNewTokens: number; temperature: number };
  watch: WatchConfig[];
}

export type SessionConfigUpdate = Partial<Omit<SessionConfig, 'generation' | 'pruning'>> & {
  pruning?: SessionConfig['pruning'];
  generation?: Partial<SessionConfig['generation']>;
};

export interface SessionOptions extends Omit<EngineOptions, 'signal'> {
  /** A loaded engine shared with other sessions. Without it the session loads (and owns) its own. */
  engine?: WinnowEngine;
  config?: SessionConfigUpdate;
  limits?: Partial<StreamLimits>;
  id?: string;
  /** Webhook delivery for standing questions. Default: one owned by the session. */
  webhooks?: WebhookSender;
  /** Explicit ffmpeg binary (else WINNOW_FFMPEG in `env`, else PATH, else the bundled one). */
  ffmpegPath?: string;
  env?: FfmpegEnv;
  /**
   * Confines every path or URL given to `openSource` (ingest's SourcePolicy: roots, schemes,
   * playlists); refusals end the input with WINNOW_ERR_FORBIDDEN_SOURCE. Default: none, the caller
   * is trusted (sources a policy already confined are always taken as they are).
   */
  sourcePolicy?: SourcePolicy;
  signal?: AbortSignal;
}

export interface FrameProcessed {
  index: number;
  ptsMs: number;
  kept: number;
  total: number;
  /** Frame decoded (or pushed) → in the context. */
  latencyMs: number;
  /** LLM prefill of this frame. */
  prefillMs: number;
}

export interface SourceEnded {
  source: SourceDescription;
  /** Frames of this input that reached the context. */
  frames: number;
  /** Frames of this input dropped (all policies), each already reported by a `dropped` event. */
  dropped: number;
  reason: 'end' | 'closed' | 'error';
  error?: WinnowError;
}

export interface WatchResult {
  id: string;
  question: string;
  answer: string;
  /** Newest frame in context when the question was asked. */
  ptsMs: number;
  /** Frames in context. */
  frames: number;
}

export interface AnswerDone {
  id: string;
  status: 'completed' | 'cancelled' | 'failed';
  text: string;
  stopReason: AnswerResult['stopReason'] | null;
  usage: UsageInfo;
  timings: TimingInfo;
  error?: WinnowError;
}

export interface SessionEvents {
  /** A frame was sampled from the input and queued for the model. */
  queued: { index: number; ptsMs: number };
  frame: FrameProcessed;
  /**
   * Frames dropped under `policy` since the previous event of that policy (coalesced: at most one per
   * policy every 200 ms, and always flushed before `source.ended` and `closed`). `total`: all policies.
   */
  dropped: { count: number; total: number; policy: DropPolicy };
  evicted: { frames: number; tokens: number; remainingFrames: number; oldestPtsMs: number | null };
  'source.opened': SourceDescription;
  'source.reconnecting': { source: SourceDescription; attempt: number; delayMs: number; reason: string };
  'source.ended': SourceEnded;
  watch: WatchResult;
  /** A question (response or standing question) was prefilled against the context. */
  prefilled: { kind: 'response' | 'watch'; prefillMs: number; questionTokens: number };
  /** Problems not tied to a call (a frame the model could not process, a webhook that failed). */
  error: WinnowError;
  closed: { reason: string };
}

export interface AskOptions {
  maxNewTokens?: number;
  temperature?: number;
  signal?: AbortSignal;
  /** Called with each text delta as it is generated (the async iterator gets them too). */
  onDelta?: (delta: string) => void;
}

/**
 * A streaming answer: iterate it for text deltas (breaking out of the loop cancels the answer);
 * `done` resolves with the final text, usage and timings.
 */
export interface Answer extends AsyncIterable<string> {
  readonly id: string;
  readonly question: string;
  readonly done: Promise<AnswerDone>;
  cancel(): void;
}

export interface SessionStats {
  framesProcessed: number;
  framesQueued: number;
  framesDropped: number;
  droppedByPolicy: Record<DropPolicy, number>;
  /** Visual tokens kept / produced for the frames currently in context. */
  visualTokensKept: number;
  visualTokensTotal: number;
  contextTokens: number;
  evictedFrames: number;
  /** ffmpeg processes of the current input that are still running. */
  ffmpegPids: number[];
  pendingResponses: number;
}

export interface VideoInput {
  /** Appends container bytes. false: the buffer is full, wait for `drained()` before writing more. */
  write(chunk: Uint8Array): boolean;
  drained(): Promise<void>;
  /** No more bytes; the input ends once ffmpeg has delivered its last frame. */
  end(): void;
}

const FFMPEG_FORMAT: Readonly<Record<Exclude<VideoFormat, 'jpeg'>, string | undefined>> = {
  // mp4 and webm are recognised by probing; naming them would stop ffmpeg from accepting the
  // fragmented variants browsers and muxers produce.
  mp4: undefined,
  webm: undefined,
  mpegts: 'mpegts',
  mjpeg: 'mjpeg',
};

class Emitter<M> {
  private readonly map = new Map<keyof M, Set<(e: never) => void>>();
  on<K extends keyof M>(event: K, fn: (e: M[K]) => void): () => void {
    let s = this.map.get(event);
    if (!s) this.map.set(event, (s = new Set()));
    s.add(fn as (e: never) => void);
    return () => void s!.delete(fn as (e: never) => void);
  }
  emit<K extends keyof M>(event: K, e: M[K]): void {
    const s = this.map.get(event);
    if (s) for (const fn of [...s]) (fn as (e: M[K]) => void)(e);
  }
}

interface InputState {
  id: string;
  desc: SourceDescription;
  live: boolean;
  format: VideoFormat | 'frames' | 'source';
  sub?: Subscription;
  bytes?: PassThrough;
  ack$?: Subject<void>;
  /** Frames accepted from this input (after fps sampling). */
  received: number;
  /** Frames of this input that reached the context. */
  processed: number;
  /** Frames of this input dropped (all policies). */
  dropped: number;
  /** The ingest stage's cumulative drop counter as last seen (its events carry totals). */
  ingestDropped: number;
  /** input_video.end / endInput was called: no more pushes. */
  endRequested: boolean;
  /** Frames of this input still queued or in the model. */
  outstanding: number;
  /** Frames accepted but not queued yet: a JPEG being decoded, a non-live frame waiting for queue room. */
  limbo: number;
  decodeDone: boolean;
  /** No more frames are accepted (end, close or error); a new input may start. */
  ended: boolean;
  /** source.ended was emitted (after the input's last queued frame settled, unless closed). */
  endEmitted: boolean;
  endReason: { reason: SourceEnded['reason']; error?: WinnowError } | undefined;
  firstPts: number | undefined;
  lastBucket: number;
  ptsOffset: number;
  pids: Set<number>;
  exitWaiters: (() => void)[];
  /** JPEGs waiting to be decoded, oldest first (bounded; keep-latest when live). */
  jpegs: PendingJpeg[];
  /** The decode loop, while it runs; `jpegDecoding` turns false synchronously when it runs out of work. */
  jpegWorker: Promise<void> | undefined;
  jpegDecoding: boolean;
  roomWaiters: (() => void)[];
}

interface PendingJpeg {
  bytes: Uint8Array;
  /** Capture time as pushed (for messages). */
  capturePtsMs: number;
  /** Session timeline time (fps sampling already applied). */
  ptsMs: number;
  settle: (e?: unknown) => void;
}

interface QueuedFrame {
  frame: Frame;
  input: InputState;
  enqueuedAt: number;
  /** Counted as discarded by close() while in the model; its result is ignored. */
  discarded?: boolean;
}

interface Job {
  id: string;
  question: string;
  kind: 'response' | 'watch';
  watchId?: string;
  maxNewTokens: number;
  temperature: number;
  /** Sampling seed of this answer (used when temperature > 0). */
  seed: number;
  createdAt: number;
  startedAt?: number;
  firstDeltaAt?: number;
  ac: AbortController;
  gen?: AsyncGenerator<string, AnswerResult, void>;
  text: string;
  deltas: number;
  usage: { kept: number; total: number; ptsMs: number; frames: number };
  finished: boolean;
  onDelta?: (d: string) => void;
  buffer: string[];
  waiters: (() => void)[];
  resolve: (d: AnswerDone) => void;
  done: Promise<AnswerDone>;
}

interface WatchState {
  spec: WatchConfig;
  lastPts: number | undefined;
  pending: boolean;
  lastAnswer: string | undefined;
}

let responseCounter = 0;

/**
 * Use `createSession` (loads or borrows the engine). `close()` is idempotent and cascades: answers
 * are cancelled with a final `done`, ffmpeg is killed, the KV cache is released.
 */
export class Session implements SchedulerClient {
  readonly id: string;
  readonly limits: StreamLimits;
  private readonly events = new Emitter<SessionEvents>();
  private cfg: SessionConfig;
  private pruner: Pruner;
  private ctx: VideoContext;
  private readonly queue: QueuedFrame[] = [];
  private inFlight: QueuedFrame | undefined;
  private input: InputState | undefined;
  private readonly jobs: Job[] = [];
  private active: Job | undefined;
  private watches = new Map<string, WatchState>();
  private readonly window: { kept: number; total: number }[] = [];
  private keptInWindow = 0;
  private totalInWindow = 0;
  private framesProcessed = 0;
  private nextIndex = 0;
  private lastPts: number | undefined;
  private dropped = 0;
  private readonly droppedByPolicy: Record<DropPolicy, number> = { 'keep-latest': 0, 'fps-sampling': 0, 'discard-on-close': 0 };
  private readonly droppedUnreported: Record<DropPolicy, number> = { 'keep-latest': 0, 'fps-sampling': 0, 'discard-on-close': 0 };
  private dropTimer: ReturnType<typeof setTimeout> | undefined;
  private closing: Promise<void> | undefined;
  private lastActivity = Date.now();
  private readonly webhooks: WebhookSender;
  private readonly ownsWebhooks: boolean;

  constructor(
    readonly engine: WinnowEngine,
    private readonly ownsEngine: boolean,
    options: SessionOptions = {},
  ) {
    this.id = options.id ?? `sess_${randomUUID()}`;
    this.limits = resolveLimits(options.limits);
    this.ffmpegPath = options.ffmpegPath;
    this.sourcePolicy = options.sourcePolicy;
    this.env = options.env;
    this.cfg = {
      fps: 1,
      resize: 'pad',
      pruning: {},
      maxContextTokens: this.limits.maxContextTokens,
      generation: { maxNewTokens: Math.min(this.limits.maxNewTokens, engine.lm.config.generation.maxNewTokens ?? 64), temperature: 0 },
      watch: [],
    };
    this.ownsWebhooks = options.webhooks === undefined;
    this.webhooks = options.webhooks ?? new WebhookSender();
    this.checkUpdate(options.config ?? {});
    this.cfg = this.merged(options.config ?? {});
    this.pruner = engine.createPruner(this.cfg.pruning);
    this.ctx = this.newContext();
    this.setWatches(this.cfg.watch);
    engine.scheduler.add(this);
  }

  private readonly ffmpegPath: string | undefined;
  private readonly sourcePolicy: SourcePolicy | undefined;
  /** Temporal identity of the objects in this session's context (models that declare one). */
  private tracker: ObjectTracker | undefined;
  private readonly env: FfmpegEnv | undefined;

  on<K extends keyof SessionEvents>(event: K, listener: (e: SessionEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  get config(): Readonly<SessionConfig> {
    return this.cfg;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Milliseconds since the last client call or frame (idle detection). */
  get idleMs(): number {
    return Date.now() - this.lastActivity;
  }

  /** Marks client activity (the server calls it for every message). */
  touch(): void {
    this.lastActivity = Date.now();
  }

  get stats(): SessionStats {
    const s = this.ctx.stats;
    return {
      framesProcessed: this.framesProcessed,
      framesQueued: this.queue.length,
      framesDropped: this.dropped,
      droppedByPolicy: { ...this.droppedByPolicy },
      visualTokensKept: this.keptInWindow,
      visualTokensTotal: this.totalInWindow,
      contextTokens: s.tokens,
      evictedFrames: s.evictedFrames,
      ffmpegPids: this.input ? [...this.input.pids] : [],
      pendingResponses: this.jobs.length + (this.active ? 1 : 0),
    };
  }

  /** Whether an input (pushed video, frames or a source) is active. */
  get inputActive(): boolean {
    return this.input !== undefined && !this.input.ended;
  }

  /** Whether the active input drops frames it cannot keep up with (keep-latest) rather than pausing. */
  get inputLive(): boolean {
    return this.input !== undefined && !this.input.ended && this.input.live;
  }

  get inputFormat(): VideoFormat | 'frames' | 'source' | undefined {
    return this.input && !this.input.ended ? this.input.format : undefined;
  }

  // ---- configuration ----------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closing) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `session ${this.id} is closed`);
  }

  private checkQuestion(q: string, what: string): void {
    if (q.trim().length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${what} is empty`);
    if (q.length > this.limits.maxQuestionChars) {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${what} has ${q.length} characters; the limit maxQuestionChars is ${this.limits.maxQuestionChars}`, {
        details: { limit: 'maxQuestionChars', value: q.length, max: this.limits.maxQuestionChars },
      });
    }
  }

  private checkUpdate(u: SessionConfigUpdate): void {
    const L = this.limits;
    const over = (limit: keyof StreamLimits, value: number, max: number): never => {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${limit} ${value} exceeds the server limit ${max}`, { details: { limit, value, max } });
    };
    // Library callers skip the server's schema; the same schema guards their numbers (fps 5e-324 made ptsMs Infinity).
    const checked = sessionUpdateSchema.shape.session.safeParse(u);
    if (!checked.success) {
      const issues = checked.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `invalid session settings: ${issues.join('; ')}`, { details: { issues: issues.join('; ') } });
    }
    if (u.maxContextTokens !== undefined) {
      if (!Number.isInteger(u.maxContextTokens) || u.maxContextTokens < 512) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxContextTokens must be an integer ≥ 512');
      if (u.maxContextTokens > L.maxContextTokens) over('maxContextTokens', u.maxContextTokens, L.maxContextTokens);
      if (u.maxContextTokens !== this.cfg.maxContextTokens && this.ctx && (this.ctx.stats.frames > 0 || this.ctx.stats.evictedFrames > 0)) {
        throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxContextTokens can only change before the first frame');
      }
    }
    const g = u.generation;
    if (g?.maxNewTokens !== undefined && g.maxNewTokens > L.maxNewTokens) over('maxNewTokens', g.maxNewTokens, L.maxNewTokens);
    if (u.watch) {
      if (u.watch.length > L.maxWatches) over('maxWatches', u.watch.length, L.maxWatches);
      const ids = new Set<string>();
      for (const w of u.watch) {
        if (ids.has(w.id)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `watch id ${w.id} is used twice`);
        ids.add(w.id);
        this.checkQuestion(w.question, `watch ${w.id} question`);
        if (w.everySeconds < L.minWatchSeconds) {
          throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `watch ${w.id}: everySeconds ${w.everySeconds} is below the limit minWatchSeconds ${L.minWatchSeconds}`, {
            details: { limit: 'minWatchSeconds', value: w.everySeconds, min: L.minWatchSeconds },
          });
        }
      }
    }
    // Pruning settings are checked by constructing the pruner (codebook presence, tau, minKeep).
    if (u.pruning) void this.engine.createPruner({ ...this.cfg?.pruning, ...u.pruning }).close();
  }

  private merged(u: SessionConfigUpdate): SessionConfig {
    return {
      fps: u.fps ?? this.cfg.fps,
      resize: u.resize ?? this.cfg.resize,
      pruning: u.pruning ? { ...this.cfg.pruning, ...u.pruning } : this.cfg.pruning,
      maxContextTokens: u.maxContextTokens ?? this.cfg.maxContextTokens,
      generation: { ...this.cfg.generation, ...(u.generation ?? {}) },
      watch: u.watch ?? this.cfg.watch,
    };
  }

  private newContext(): VideoContext {
    // The objects' numbering belongs to the context: a new context starts counting afresh.
    this.tracker = this.engine.createTracker();
    const ctx = this.engine.lm.createContext({ maxContextTokens: this.cfg.maxContextTokens });
    ctx.on('evicted', (e) => {
      for (const w of this.window.splice(0, e.frames)) {
        this.keptInWindow -= w.kept;
        this.totalInWindow -= w.total;
      }
      this.events.emit('evicted', { frames: e.frames, tokens: e.tokens, remainingFrames: e.remainingFrames, oldestPtsMs: e.oldestPtsMs });
    });
    return ctx;
  }

  private setWatches(list: readonly WatchConfig[]): void {
    const next = new Map<string, WatchState>();
    for (const w of list) {
      const prev = this.watches.get(w.id);
      next.set(w.id, { spec: w, lastPts: prev?.spec.question === w.question ? prev.lastPts : undefined, pending: prev?.pending ?? false, lastAnswer: prev?.lastAnswer });
    }
    this.watches = next;
  }

  /**
   * Changes settings. fps and resize apply to the next input; pruning to the next frame;
   * maxContextTokens only before the first frame; watch replaces the standing questions.
   */
  update(u: SessionConfigUpdate): Readonly<SessionConfig> {
    this.assertOpen();
    this.touch();
    this.checkUpdate(u);
    const prev = this.cfg;
    this.cfg = this.merged(u);
    if (u.pruning) {
      const old = this.pruner;
      this.pruner = this.engine.createPruner(this.cfg.pruning);
      void old.close();
    }
    if (this.cfg.maxContextTokens !== prev.maxContextTokens) {
      const old = this.ctx;
      this.ctx = this.newContext();
      void old.close();
    }
    if (u.watch) this.setWatches(u.watch);
    return this.cfg;
  }

  // ---- inputs -------------------------------------------------------------------------------------

  private beginInput(desc: SourceDescription, format: InputState['format'], live: boolean): InputState {
    this.assertOpen();
    if (this.inputActive) {
      throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first', { details: { active: this.input!.desc } });
    }
    this.touch();
    const fps = this.cfg.fps;
    const input: InputState = {
      id: `in_${randomUUID().slice(0, 8)}`,
      desc,
      live,
      format,
      received: 0,
      processed: 0,
      dropped: 0,
      ingestDropped: 0,
      endRequested: false,
      outstanding: 0,
      limbo: 0,
      decodeDone: false,
      ended: false,
      endEmitted: false,
      endReason: undefined,
      firstPts: undefined,
      lastBucket: -1,
      // Inputs continue the session timeline one frame interval after the previous one.
      ptsOffset: this.lastPts === undefined ? 0 : this.lastPts + Math.round(1000 / fps),
      pids: new Set(),
      exitWaiters: [],
      jpegs: [],
      jpegWorker: undefined,
      jpegDecoding: false,
      roomWaiters: [],
    };
    this.input = input;
    this.events.emit('source.opened', desc);
    return input;
  }

  private ingestEvent(input: InputState, e: IngestEvent): void {
    if (e.type === 'spawn') input.pids.add(e.pid);
    else if (e.type === 'exit') {
      input.pids.delete(e.pid);
      if (input.pids.size === 0) for (const w of input.exitWaiters.splice(0)) w();
    } else if (e.type === 'reconnect') {
      this.events.emit('source.reconnecting', { source: input.desc, attempt: e.attempt, delayMs: e.delayMs, reason: e.error.message });
    } else if (e.type === 'drop') {
      // Ingest reports its running total; count only what is new.
      const n = e.droppedFrames - input.ingestDropped;
      input.ingestDropped = e.droppedFrames;
      if (n > 0) this.countDropped(n, 'keep-latest', input);
    }
  }

  private subscribeFfmpeg(input: InputState, source: string | PassThrough | ConfinedSource, opts: { inputFormat?: string; live?: boolean; stallTimeoutMs?: number }): void {
    const size = this.engine.inputSize;
    const ack$ = input.live ? undefined : new Subject<void>();
    input.ack$ = ack$;
    const frames$ = openVideo(source, {
      fps: this.cfg.fps,
      size,
      resize: this.cfg.resize,
      ...(opts.inputFormat ? { inputFormat: opts.inputFormat } : {}),
      ...(opts.live !== undefined ? { live: opts.live } : {}),
      ...(opts.stallTimeoutMs !== undefined ? { stallTimeoutMs: opts.stallTimeoutMs } : {}),
      ...(ack$ ? { ack$, maxInFlightFrames: this.limits.maxQueuedFrames } : {}),
      ...(this.ffmpegPath ? { ffmpegPath: this.ffmpegPath } : {}),
      ...(this.env ? { env: this.env } : {}),
      // Client-named sources, pushed containers too: nothing decodes past the pixel limit.
      maxInputPixels: this.limits.maxInputPixels,
      ...(this.sourcePolicy && typeof source === 'string' ? { policy: this.sourcePolicy } : {}),
      onEvent: (e) => this.ingestEvent(input, e),
    });
    input.sub = frames$.subscribe({
      next: (f) => this.enqueue(input, f, 'sampled'),
      error: (e: unknown) => this.finishInput(input, 'error', toWinnowError(e)),
      complete: () => {
        input.decodeDone = true;
        this.maybeEnded(input);
      },
    });
  }

  /**
   * Starts a pushed container stream (mp4 | webm | mpegts | mjpeg); write its bytes to the returned
   * input. Live (default): frames the model cannot keep up with are dropped, newest kept.
   * Not live: nothing is dropped; `write` returns false while the buffer is full.
   */
  startVideo(format: Exclude<VideoFormat, 'jpeg'>, options: { live?: boolean } = {}): VideoInput {
    const live = options.live ?? true;
    const input = this.beginInput({ kind: 'input_video', format, live }, format, live);
    const bytes = new PassThrough({ highWaterMark: this.limits.maxBufferedInputBytes });
    // ffmpeg exiting early makes writes fail with EPIPE; the input reports the exit itself.
    bytes.on('error', () => undefined);
    input.bytes = bytes;
    // Pushed bytes stop whenever the client stops; idle detection, not a stall timer, ends those.
    this.subscribeFfmpeg(input, bytes, { inputFormat: FFMPEG_FORMAT[format], live: false, stallTimeoutMs: 0 });
    return {
      write: (chunk) => {
        if (input.ended || bytes.destroyed || bytes.writableEnded) return true;
        this.touch();
        return bytes.write(chunk);
      },
      drained: () =>
        input.ended || bytes.destroyed || !bytes.writableNeedDrain
          ? Promise.resolve()
          : new Promise<void>((r) => {
              const done = (): void => {
                bytes.off('drain', done);
                bytes.off('close', done);
                r();
              };
              bytes.once('drain', done);
              bytes.once('close', done);
            }),
      end: () => {
        if (!bytes.writableEnded) bytes.end();
      },
    };
  }

  /** Starts a stream of JPEG images pushed one by one with `pushJpeg`. */
  startJpeg(options: { live?: boolean } = {}): void {
    const live = options.live ?? true;
    const input = this.beginInput({ kind: 'input_video', format: 'jpeg', live }, 'jpeg', live);
    input.decodeDone = false;
  }

  /**
   * One JPEG of a `startJpeg` input, captured at `ptsMs`. Resolves once it is queued for the model,
   * or dropped (a `dropped` event counts it: `fps-sampling` when an image of its 1/fps interval was
   * already taken, `keep-latest` when a live input outruns the model). A non-live input resolves
   * only once the queue has room, so awaiting each push is the backpressure. Decoding errors reject
   * with WINNOW_ERR_CORRUPT_INPUT.
   */
  async pushJpeg(bytes: Uint8Array, ptsMs: number): Promise<void> {
    this.assertOpen();
    const input = this.input;
    if (!input || input.ended || input.format !== 'jpeg') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no active jpeg input (input_video.start with format jpeg)');
    if (input.endRequested) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'the jpeg input was ended (input_video.end); start a new one');
    if (!Number.isFinite(ptsMs)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `ptsMs must be a finite number, got ${ptsMs}`);
    this.touch();
    // Sampling before decoding: an image that would be skipped costs no decode.
    const pts = this.sample(input, ptsMs, false);
    if (pts === undefined) {
      this.countDropped(1, 'fps-sampling', input);
      return;
    }
    const done = new Promise<void>((resolve, reject) => {
      input.jpegs.push({ bytes, capturePtsMs: ptsMs, ptsMs: pts, settle: (e) => (e === undefined ? resolve() : reject(e)) });
    });
    if (input.live && input.jpegs.length > this.limits.maxQueuedFrames) {
      // Decoding cannot keep up: the oldest undecoded image goes (keep-latest), memory stays bounded.
      input.jpegs.shift()!.settle();
      this.countDropped(1, 'keep-latest', input);
    }
    if (!input.jpegDecoding) {
      input.jpegDecoding = true;
      input.jpegWorker = this.decodeJpegs(input);
    }
    return done;
  }

  /**
   * Decodes queued JPEGs one at a time, in order, into model-sized RGB frames. Clears
   * `jpegDecoding` in the same tick it finds the queue empty: a push arriving between the last
   * shift and the promise settling must start a new loop, not wait for one that has exited.
   */
  private async decodeJpegs(input: InputState): Promise<void> {
    try {
      for (;;) {
        const job = input.jpegs.shift();
        if (!job) return;
        if (input.ended || this.closing) {
          this.countDropped(1, 'discard-on-close', input);
          job.settle();
          continue;
        }
        input.limbo++;
        try {
          await this.decodeOne(input, job);
        } finally {
          input.limbo--;
        }
        this.maybeEnded(input);
      }
    } finally {
      input.jpegDecoding = false;
    }
  }

  /** Decodes one JPEG into a model-sized RGB frame and queues it (a bad JPEG rejects its push). */
  private async decodeOne(input: InputState, job: PendingJpeg): Promise<void> {
    const size = this.engine.inputSize;
    const fit = this.cfg.resize === 'pad' ? 'contain' : this.cfg.resize === 'stretch' ? 'fill' : 'cover';
    let img: { data: Buffer; info: { width: number; height: number } };
    try {
      img = await decodeJpeg(job.bytes, this.limits.maxInputPixels, job.capturePtsMs)
        .then((pipeline) =>
          pipeline
            .removeAlpha()
            .resize(size.width, size.height, { fit, background: { r: 127, g: 127, b: 127 }, kernel: 'cubic' })
            .raw()
            .toBuffer({ resolveWithObject: true }),
        );
    } catch (e) {
      job.settle(
        e instanceof WinnowError
          ? e
          : new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `cannot decode the JPEG at ${job.capturePtsMs} ms: ${(e as Error).message}`, { cause: e, details: { ptsMs: job.capturePtsMs } }),
      );
      return;
    }
    await this.enqueueWhenRoom(input, { index: 0, ptsMs: job.ptsMs, width: img.info.width, height: img.info.height, data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.length) }, 'timeline');
    job.settle();
  }

  /**
   * Pushes RGB frames (any size; the encoder fits them) from an iterable, e.g. frames decoded by the
   * host application. Not live by default: waits for queue room instead of dropping.
   */
  async pushFrames(frames: Iterable<Frame> | AsyncIterable<Frame>, options: { live?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const live = options.live ?? false;
    const input = this.beginInput({ kind: 'input_video', format: 'frames', live }, 'frames', live);
    try {
      for await (const f of frames as AsyncIterable<Frame>) {
        if (options.signal?.aborted || input.ended) break;
        if (f.data.length !== f.width * f.height * 3) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame ${f.index}: data is not width × height × 3 bytes`);
        input.limbo++;
        try {
          await this.enqueueWhenRoom(input, f, 'sample');
        } finally {
          input.limbo--;
          this.maybeEnded(input);
        }
      }
    } catch (e) {
      this.finishInput(input, 'error', toWinnowError(e));
      throw e;
    }
    this.endInput();
  }

  /**
   * Decodes a file path or URL on the server side (no access checks here: the WebSocket server
   * applies its allow-lists before calling this). Live URLs reconnect and drop frames they cannot
   * keep up with; files pause instead.
   */
  openSource(source: { url: string } | { path: string } | ConfinedSource, options: { live?: boolean } = {}): SourceDescription {
    const confined = isConfinedSource(source) ? source : undefined;
    const url = confined ? confined.url : 'url' in source ? source.url : undefined;
    const named = source as { url?: string; path?: string };
    const target: string | ConfinedSource = confined ?? named.url ?? named.path ?? '';
    const liveGuess = url !== undefined && /^(rtsps?|rtmps?|srt|udp|rtp):/i.test(url);
    const live = options.live ?? liveGuess;
    const desc: SourceDescription =
      url !== undefined ? { kind: 'url', url: confined ? confined.label : redactUrl(url), live } : { kind: 'path', path: confined ? confined.label : (source as { path: string }).path, live };
    const input = this.beginInput(desc, 'source', live);
    try {
      this.subscribeFfmpeg(input, target, { live });
    } catch (e) {
      this.finishInput(input, 'error', toWinnowError(e));
      throw e;
    }
    return desc;
  }

  /** Ends the current input: pushed bytes/JPEGs are finished (their frames still get processed). */
  endInput(): void {
    const input = this.input;
    if (!input || input.ended || input.endRequested) return;
    input.endRequested = true;
    this.touch();
    if (input.bytes) input.bytes.end();
    else if (input.format === 'jpeg' || input.format === 'frames') {
      void (async () => {
        while (input.jpegDecoding) await input.jpegWorker;
        input.decodeDone = true;
        this.maybeEnded(input);
      })();
    } else {
      this.closeSource();
    }
  }

  /** Stops the current input now (ffmpeg killed, queued frames of it discarded and counted). */
  closeSource(): void {
    const input = this.input;
    if (!input || input.ended) return;
    this.finishInput(input, 'closed');
  }

  private stopInput(input: InputState): void {
    input.sub?.unsubscribe();
    input.bytes?.destroy();
    input.ack$?.complete();
    for (const w of input.roomWaiters.splice(0)) w();
    const waiting = input.jpegs.splice(0);
    if (waiting.length > 0) this.countDropped(waiting.length, 'discard-on-close', input);
    for (const j of waiting) j.settle();
  }

  /**
   * The input produces no more frames. Closed: its queued frames are discarded (counted). End or
   * error: frames already queued still reach the context. Either way source.ended follows the last
   * frame of the input that was in the model or being decoded, so its counts are final.
   */
  private finishInput(input: InputState, reason: SourceEnded['reason'], error?: WinnowError): void {
    if (input.ended) return;
    input.ended = true;
    input.endReason = { reason, ...(error ? { error } : {}) };
    this.stopInput(input);
    if (reason === 'closed') {
      let discarded = 0;
      for (let i = this.queue.length - 1; i >= 0; i--) {
        if (this.queue[i].input !== input) continue;
        this.queue.splice(i, 1);
        input.outstanding--;
        discarded++;
      }
      if (discarded > 0) this.countDropped(discarded, 'discard-on-close', input);
    }
    this.emitEnded(input);
  }

  /** Emits source.ended once the input is ended and none of its frames is queued, in the model or in limbo (`force`: now). */
  private emitEnded(input: InputState, force = false): void {
    if (input.endEmitted || !input.endReason) return;
    if (!force && (input.outstanding > 0 || input.limbo > 0)) return;
    input.endEmitted = true;
    // The drop counts go out first: a client that stops listening at source.ended has them all.
    this.flushDropped();
    const { reason, error } = input.endReason;
    this.events.emit('source.ended', { source: input.desc, frames: input.processed, dropped: input.dropped, reason, ...(error ? { error } : {}) });
  }

  private maybeEnded(input: InputState): void {
    if (input.outstanding !== 0 || input.limbo !== 0) return;
    if (!input.ended && input.decodeDone && input.jpegs.length === 0 && !input.jpegDecoding) this.finishInput(input, 'end');
    else if (input.ended) this.emitEnded(input);
  }

  private countDropped(n: number, policy: DropPolicy, input: InputState | undefined): void {
    this.dropped += n;
    this.droppedByPolicy[policy] += n;
    this.droppedUnreported[policy] += n;
    if (input) input.dropped += n;
    // Coalesced: at most one event per policy per 200 ms, so a flood of drops is not a flood of messages.
    if (this.dropTimer || this.closing) return;
    this.dropTimer = setTimeout(() => this.flushDropped(), 200);
  }

  /** Reports drops not reported yet (one event per policy). */
  private flushDropped(): void {
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = undefined;
    for (const policy of DROP_POLICIES) {
      const count = this.droppedUnreported[policy];
      if (count === 0) continue;
      this.droppedUnreported[policy] = 0;
      this.events.emit('dropped', { count, total: this.dropped, policy });
    }
  }

  /**
   * fps sampling by capture time for inputs ffmpeg does not sample (JPEGs, RGB frames): at most one
   * frame per 1/fps interval, none before the input's first. `sampled`: ffmpeg already sampled it,
   * only map its pts. Returns the session-timeline pts, or undefined to skip the frame.
   */
  private sample(input: InputState, ptsMs: number, sampled: boolean): number | undefined {
    if (input.firstPts === undefined) input.firstPts = ptsMs;
    const rel = ptsMs - input.firstPts;
    if (!sampled) {
      if (rel < 0) return undefined;
      const bucket = Math.floor((rel * this.cfg.fps) / 1000 + 1e-9);
      if (bucket <= input.lastBucket) return undefined;
      input.lastBucket = bucket;
    }
    return input.ptsOffset + Math.max(0, rel);
  }

  /** `timing`: see `enqueue`. Non-live inputs wait for queue room; frames of an input that ends meanwhile are counted as discarded. */
  private async enqueueWhenRoom(input: InputState, f: Frame, timing: 'sample' | 'timeline'): Promise<void> {
    while (!input.live && !input.ended && !this.closing && this.queue.length >= this.limits.maxQueuedFrames) {
      await new Promise<void>((r) => input.roomWaiters.push(r));
    }
    this.enqueue(input, f, timing);
  }

  /**
   * Queues a frame for the model. `timing`: `sample` applies fps sampling to a capture time,
   * `sampled` maps a pts ffmpeg already sampled, `timeline` is a pts already on the session timeline.
   * Every frame that enters here is accounted for: queued (then processed or dropped), or counted
   * as dropped right away.
   */
  private enqueue(input: InputState, f: Frame, timing: 'sample' | 'sampled' | 'timeline'): void {
    if (this.closing || input.ended) {
      this.countDropped(1, 'discard-on-close', input);
      input.ack$?.next();
      return;
    }
    const pts = timing === 'timeline' ? f.ptsMs : this.sample(input, f.ptsMs, timing === 'sampled');
    if (pts === undefined) {
      this.countDropped(1, 'fps-sampling', input);
      return;
    }
    this.touch();
    input.received++;
    input.outstanding++;
    if (input.live && this.queue.length >= this.limits.maxQueuedFrames) {
      const old = this.queue.shift()!;
      old.input.outstanding--;
      old.input.ack$?.next();
      this.countDropped(1, 'keep-latest', old.input);
      if (old.input !== input) this.maybeEnded(old.input);
    }
    const frame: Frame = { index: this.nextIndex++, ptsMs: pts, width: f.width, height: f.height, data: f.data };
    this.queue.push({ frame, input, enqueuedAt: performance.now() });
    this.events.emit('queued', { index: frame.index, ptsMs: frame.ptsMs });
    this.engine.scheduler.wake();
  }

  // ---- scheduler client -----------------------------------------------------------------------------

  /** @internal */
  wantsAnswerTurn(): boolean {
    return !this.closing && (this.active !== undefined || this.jobs.length > 0);
  }

  /** @internal */
  takeFrame(): Frame | undefined {
    if (this.closing || this.inFlight) return undefined;
    const q = this.queue.shift();
    if (!q) return undefined;
    this.inFlight = q;
    // A queue slot freed: a waiting non-live producer may go on.
    const w = q.input.roomWaiters.shift();
    w?.();
    return q.frame;
  }

  /** `inContext`: the frame reached the context (else the model failed on it and an error was emitted). */
  private settleFrame(q: QueuedFrame, inContext: boolean): void {
    this.inFlight = undefined;
    if (q.discarded) return;
    q.input.outstanding--;
    if (inContext) q.input.processed++;
    q.input.ack$?.next();
    this.maybeEnded(q.input);
  }

  /** @internal */
  async consumeEncoded(encoded: EncodedFrame): Promise<void> {
    const q = this.inFlight;
    if (!q) return;
    let inContext = false;
    try {
      if (this.closing) return;
      const pruned = await this.pruner.prune({ ...this.engine.finishVideo(encoded, this.tracker), sourceId: q.input.id });
      const r = await this.ctx.appendFrame(pruned);
      // close() counted this frame as discarded while it was in the model.
      if (q.discarded) return;
      const kept = pruned.kept.length;
      const total = pruned.gridH * pruned.gridW;
      this.window.push({ kept, total });
      this.keptInWindow += kept;
      this.totalInWindow += total;
      this.framesProcessed++;
      inContext = true;
      this.lastPts = q.frame.ptsMs;
      this.events.emit('frame', {
        index: q.frame.index,
        ptsMs: q.frame.ptsMs,
        kept,
        total,
        latencyMs: Math.round((performance.now() - q.enqueuedAt) * 10) / 10,
        prefillMs: r.prefillMs,
      });
      this.checkWatches(q.frame.ptsMs);
    } catch (e) {
      if (!this.closing) this.events.emit('error', toWinnowError(e, 'WINNOW_ERR_INFERENCE'));
    } finally {
      this.settleFrame(q, inContext);
    }
  }

  /** @internal */
  frameFailed(_frame: Frame, error: unknown): void {
    const q = this.inFlight;
    if (!q) return;
    if (!this.closing) this.events.emit('error', toWinnowError(error, 'WINNOW_ERR_INFERENCE'));
    this.settleFrame(q, false);
  }

  // ---- questions -------------------------------------------------------------------------------------

  /**
   * Asks about the frames processed so far (the newest is "now"). Questions are answered one at a
   * time per session, in order; frames keep queueing meanwhile.
   */
  ask(question: string, options: AskOptions = {}): Answer {
    this.assertOpen();
    this.touch();
    this.checkQuestion(question, 'the question');
    const pending = this.jobs.filter((j) => j.kind === 'response').length + (this.active?.kind === 'response' ? 1 : 0);
    if (pending >= this.limits.maxPendingResponses) {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${pending} responses are already pending; the limit maxPendingResponses is ${this.limits.maxPendingResponses}`, {
        retryable: true,
        details: { limit: 'maxPendingResponses', max: this.limits.maxPendingResponses },
      });
    }
    const maxNewTokens = options.maxNewTokens ?? this.cfg.generation.maxNewTokens;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxNewTokens must be a positive integer');
    if (maxNewTokens > this.limits.maxNewTokens) {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `maxNewTokens ${maxNewTokens} exceeds the server limit ${this.limits.maxNewTokens}`, {
        details: { limit: 'maxNewTokens', value: maxNewTokens, max: this.limits.maxNewTokens },
      });
    }
    const job = this.newJob('response', question, maxNewTokens, options.temperature ?? this.cfg.generation.temperature, options.onDelta);
    if (options.signal) {
      if (options.signal.aborted) job.ac.abort();
      else options.signal.addEventListener('abort', () => this.cancelJob(job), { once: true });
    }
    this.jobs.push(job);
    this.engine.scheduler.wake();
    return this.answerOf(job);
  }

  /** Cancels a response by id, or the one being generated. Returns whether one was found. */
  cancel(responseId?: string): boolean {
    const job = responseId === undefined ? (this.active?.kind === 'response' ? this.active : this.jobs.find((j) => j.kind === 'response')) : [this.active, ...this.jobs].find((j) => j?.id === responseId);
    if (!job || job.finished) return false;
    this.cancelJob(job);
    return true;
  }

  private newJob(kind: Job['kind'], question: string, maxNewTokens: number, temperature: number, onDelta?: (d: string) => void): Job {
    let resolve!: (d: AnswerDone) => void;
    const done = new Promise<AnswerDone>((r) => (resolve = r));
    return {
      id: `resp_${(++responseCounter).toString(36)}_${randomUUID().slice(0, 6)}`,
      question,
      kind,
      maxNewTokens,
      temperature,
      // A fresh seed per answer: with the library's fixed default every sampled answer to the same
      // question on the same context would be the same one.
      seed: randomInt(0, 2 ** 31 - 1),
      createdAt: performance.now(),
      ac: new AbortController(),
      text: '',
      deltas: 0,
      usage: { kept: 0, total: 0, ptsMs: 0, frames: 0 },
      finished: false,
      ...(onDelta ? { onDelta } : {}),
      buffer: [],
      waiters: [],
      resolve,
      done,
    };
  }

  private answerOf(job: Job): Answer {
    const cancel = (): void => this.cancelJob(job);
    return {
      id: job.id,
      question: job.question,
      done: job.done,
      cancel,
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<string>> => {
          for (;;) {
            const d = job.buffer.shift();
            if (d !== undefined) return { value: d, done: false };
            if (job.finished) return { value: undefined, done: true };
            await new Promise<void>((r) => job.waiters.push(r));
          }
        },
        // Leaving a for-await loop early means the rest of the answer is not wanted.
        return: async (): Promise<IteratorResult<string>> => {
          cancel();
          return { value: undefined, done: true };
        },
      }),
    };
  }

  private cancelJob(job: Job): void {
    if (job.finished) return;
    job.ac.abort();
    const i = this.jobs.indexOf(job);
    if (i >= 0) {
      this.jobs.splice(i, 1);
      this.finishJob(job, 'cancelled', null);
    } else {
      // Active: the scheduler's next turn sees the abort and finishes it.
      this.engine.scheduler.wake();
    }
  }

  private finishJob(job: Job, status: AnswerDone['status'], result: AnswerResult | null, error?: WinnowError): void {
    if (job.finished) return;
    job.finished = true;
    if (this.active === job) this.active = undefined;
    const now = performance.now();
    const round = (x: number): number => Math.round(x * 10) / 10;
    const done: AnswerDone = {
      id: job.id,
      status,
      text: job.text.trim(),
      stopReason: result?.stopReason ?? null,
      usage: {
        visualTokensKept: job.usage.kept,
        visualTokensTotal: job.usage.total,
        promptTokens: result ? result.contextTokens + result.questionTokens : 0,
        outputTokens: result ? result.generatedTokens : job.deltas,
      },
      timings: {
        ttftMs: job.firstDeltaAt !== undefined ? round(job.firstDeltaAt - job.createdAt) : result ? round((job.startedAt ?? now) - job.createdAt + result.ttftMs) : -1,
        totalMs: round(now - job.createdAt),
        queueMs: round((job.startedAt ?? now) - job.createdAt),
      },
      ...(error ? { error } : {}),
    };
    for (const w of job.waiters.splice(0)) w();
    if (result) this.events.emit('prefilled', { kind: job.kind, prefillMs: result.prefillMs, questionTokens: result.questionTokens });
    if (job.kind === 'watch' && job.watchId) {
      const w = this.watches.get(job.watchId);
      if (w) w.pending = false;
      if (status === 'completed' && !this.closing) this.emitWatch(job, done.text, w);
    }
    job.resolve(done);
  }

  private emitWatch(job: Job, answer: string, w: WatchState | undefined): void {
    const result: WatchResult = { id: job.watchId!, question: job.question, answer, ptsMs: job.usage.ptsMs, frames: job.usage.frames };
    this.events.emit('watch', result);
    if (!w?.spec.webhook) return;
    const changed = w.lastAnswer !== answer;
    w.lastAnswer = answer;
    if ((w.spec.notify ?? 'always') === 'change' && !changed) return;
    this.webhooks.send(w.spec.webhook, { type: 'watch.result', session_id: this.id, ...result });
  }

  private checkWatches(ptsMs: number): void {
    for (const w of this.watches.values()) {
      if (w.pending) continue;
      if (w.lastPts !== undefined && ptsMs - w.lastPts < w.spec.everySeconds * 1000) continue;
      w.lastPts = ptsMs;
      w.pending = true;
      const job = this.newJob('watch', w.spec.question, this.cfg.generation.maxNewTokens, 0);
      job.watchId = w.spec.id;
      this.jobs.push(job);
    }
  }

  /** @internal */
  async runAnswerTurn(maxDeltas: number): Promise<void> {
    if (this.closing) return;
    const job = this.active ?? this.jobs.shift();
    if (!job) return;
    this.active = job;
    try {
      if (job.ac.signal.aborted) {
        if (job.gen) await job.gen.return(undefined as never).catch(() => undefined);
        this.finishJob(job, 'cancelled', null);
        return;
      }
      if (!job.gen) {
        job.startedAt = performance.now();
        job.usage = { kept: this.keptInWindow, total: this.totalInWindow, ptsMs: this.lastPts ?? 0, frames: this.window.length };
        job.gen = this.ctx.askStream(job.question, { signal: job.ac.signal, maxNewTokens: job.maxNewTokens, temperature: job.temperature, seed: job.seed });
      }
      for (let i = 0; i < maxDeltas; i++) {
        const r = await job.gen.next();
        if (r.done) {
          this.finishJob(job, 'completed', r.value);
          return;
        }
        if (job.firstDeltaAt === undefined) job.firstDeltaAt = performance.now();
        job.text += r.value;
        job.deltas++;
        if (job.kind === 'response') {
          job.buffer.push(r.value);
          for (const w of job.waiters.splice(0)) w();
          job.onDelta?.(r.value);
        }
        if (job.ac.signal.aborted) break;
      }
    } catch (e) {
      const err = toWinnowError(e, 'WINNOW_ERR_INFERENCE');
      if (err.code === 'WINNOW_ERR_ABORTED' || job.ac.signal.aborted) this.finishJob(job, 'cancelled', null);
      else {
        this.finishJob(job, 'failed', null, err);
      }
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------

  /** Waits until every queued frame and question is done (tests, batch tools). */
  async drain(signal?: AbortSignal): Promise<void> {
    while (!this.closing && (this.queue.length || this.inFlight || this.active || this.jobs.length)) {
      if (signal?.aborted) throw toWinnowError(signal.reason ?? new Error('aborted'), 'WINNOW_ERR_ABORTED');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Closes the session: answers in flight are cancelled (their `done` resolves with status
   * `cancelled`), the input stops (ffmpeg killed and waited for), the KV cache is released.
   * Idempotent; resolves when everything is released.
   */
  close(reason = 'closed'): Promise<void> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<void> {
    const jobs = [...(this.active ? [this.active] : []), ...this.jobs];
    this.jobs.length = 0;
    for (const j of jobs) j.ac.abort();
    const input = this.input;
    let exited: Promise<void> = Promise.resolve();
    if (input && input.pids.size > 0) exited = new Promise<void>((r) => input.exitWaiters.push(r));
    // Whatever is queued or in the model never reaches a context now: count it, so the last
    // source.ended and the drop totals are exact.
    for (const q of [...this.queue.splice(0), ...(this.inFlight && !this.inFlight.discarded ? [this.inFlight] : [])]) {
      q.discarded = true;
      q.input.outstanding--;
      this.countDropped(1, 'discard-on-close', q.input);
    }
    if (input) {
      if (!input.ended) this.finishInput(input, 'closed');
      // A JPEG still decoding is counted when it gets here; the session does not wait for it.
      this.emitEnded(input, true);
    }
    // Listeners get every drop before `closed` (and none after: countDropped arms no timer once closing).
    this.flushDropped();
    this.engine.scheduler.remove(this);
    for (const j of jobs) {
      if (j.gen) await j.gen.return(undefined as never).catch(() => undefined);
      this.finishJob(j, 'cancelled', null);
    }
    this.active = undefined;
    // ffmpeg gets SIGTERM then SIGKILL after the ingest grace period; wait for it (bounded).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 5_000)))]);
    clearTimeout(timer);
    await this.ctx.close();
    await this.pruner.close();
    if (this.ownsWebhooks) this.webhooks.close();
    this.events.emit('closed', { reason });
    if (this.ownsEngine) await this.engine.close();
  }
}

/**
 * The library entry point: a session over a shared engine (`engine`) or its own (loaded from
 * `model` / `codebook`, closed with the session).
 *
 * ```ts
 * const session = await createSession({ model: 'models/winnow-tiny' });
 * session.openSource({ path: 'clip.mp4' });
 * for await (const delta of session.ask('did a red square appear?')) process.stdout.write(delta);
 * await session.close();
 * ```
 */
export async function createSession(options: SessionOptions = {}): Promise<Session> {
  if (options.engine) return new Session(options.engine, false, options);
  const engine = await WinnowEngine.load({ ...options, ...(options.signal ? { signal: options.signal } : {}) });
  try {
    return new Session(engine, true, options);
  } catch (e) {
    await engine.close();
    throw e;
  }
}

