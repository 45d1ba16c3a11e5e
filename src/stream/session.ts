// One video-QA session: an input (pushed container bytes, JPEGs, RGB frames, or a server-side
// file/URL), a bounded frame queue, a pruner and a VideoContext, questions answered on the frames
// so far, and standing questions. The WebSocket server is a thin translation of this class; the
// library API (`createSession`) is this class. The parts live in ./session/: config, events,
// inputs and their feeds, the frame queue, drop accounting, answers and standing questions; this
// file wires them together and owns the frame path (queue → model → context).
import { randomUUID } from 'node:crypto';
import { WinnowError, toWinnowError } from '../errors.js';
import type { EncodedFrame, ObjectTracker } from '../encode/index.js';
import type { ConfinedSource } from '../ingest/index.js';
import type { Frame } from '../ingest/types.js';
import { TypedEmitter, type Unsubscribe } from '../util/emitter.js';
import { WinnowEngine } from './engine.js';
import { resolveLimits, type StreamLimits } from './limits.js';
import type { DropPolicy, SourceDescription, VideoFormat } from './protocol.js';
import type { SchedulerClient } from './scheduler.js';
import { WebhookSender } from './webhook.js';
import { AnswerQueue, type Answer, type AskOptions } from './session/answers.js';
import { checkQuestion, checkUpdate, defaultConfig, mergeConfig, type SessionConfig, type SessionConfigUpdate, type SessionOptions } from './session/config.js';
import { DropLedger } from './session/drops.js';
import type { SessionContext, SessionEngine, SessionPruner } from './session/engine-needs.js';
import type { SessionEvents } from './session/events.js';
import type { VideoInput } from './session/ffmpeg-feed.js';
import { FrameQueue, type QueuedFrame } from './session/frame-queue.js';
import { SessionInputs } from './session/inputs.js';
import { StandingQuestions } from './session/watches.js';

export type { Answer, AskOptions } from './session/answers.js';
export type { SessionConfig, SessionConfigUpdate, SessionOptions } from './session/config.js';
export type { SessionContext, SessionEngine, SessionPruner } from './session/engine-needs.js';
export type { AnswerDone, FrameProcessed, SessionEvents, SourceEnded, WatchResult } from './session/events.js';
export type { VideoInput } from './session/ffmpeg-feed.js';

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

/** How long close() waits for the input's ffmpeg to exit (it gets SIGTERM, then SIGKILL after ingest's grace). */
const FFMPEG_EXIT_WAIT_MS = 5_000;

/**
 * Use `createSession` (loads or borrows the engine). `close()` is idempotent and cascades: answers
 * are cancelled with a final `done`, ffmpeg is killed, the KV cache is released.
 */
export class Session {
  readonly id: string;
  readonly limits: StreamLimits;
  private readonly events = new TypedEmitter<SessionEvents>();
  private cfg: SessionConfig;
  private pruner: SessionPruner;
  private ctx: SessionContext;
  /** Temporal identity of the objects in this session's context (models that declare one). */
  private tracker: ObjectTracker | undefined;
  private readonly queue: FrameQueue;
  private readonly drops: DropLedger;
  private readonly inputs: SessionInputs;
  private readonly answers: AnswerQueue;
  private readonly watches: StandingQuestions;
  private readonly webhooks: WebhookSender;
  private readonly ownsWebhooks: boolean;
  private framesProcessed = 0;
  private lastPtsMs: number | undefined;
  private closing: Promise<void> | undefined;
  private lastActivity = Date.now();
  /**
   * @internal What the scheduler calls: an adapter, so the scheduler-facing methods stay private
   * and out of the public type.
   */
  private readonly schedulerClient: SchedulerClient = {
    wantsAnswerTurn: () => this.wantsAnswerTurn(),
    takeFrame: () => this.takeFrame(),
    consumeEncoded: (encoded) => this.consumeEncoded(encoded),
    frameFailed: (frame, error) => this.frameFailed(frame, error),
    runAnswerTurn: (maxDeltas) => this.runAnswerTurn(maxDeltas),
  };

  constructor(
    readonly engine: SessionEngine,
    private readonly ownsEngine: boolean,
    options: SessionOptions = {},
  ) {
    this.id = options.id ?? `sess_${randomUUID()}`;
    this.limits = resolveLimits(options.limits);
    this.cfg = defaultConfig(this.limits, engine);
    this.ownsWebhooks = options.webhooks === undefined;
    this.webhooks = options.webhooks ?? new WebhookSender();
    const update = options.config ?? {};
    checkUpdate(update, { limits: this.limits, engine, current: this.cfg, contextStarted: false });
    this.cfg = mergeConfig(this.cfg, update);
    this.pruner = engine.createPruner(this.cfg.pruning);
    this.ctx = this.newContext();
    this.queue = new FrameQueue(this.limits.maxQueuedFrames);
    const isClosing = (): boolean => this.closing !== undefined;
    this.drops = new DropLedger((e) => this.events.emit('dropped', e), isClosing);
    this.inputs = new SessionInputs({
      events: this.events,
      drops: this.drops,
      queue: this.queue,
      limits: this.limits,
      engine,
      ffmpeg: { ffmpegPath: options.ffmpegPath, env: options.env, sourcePolicy: options.sourcePolicy },
      config: () => this.cfg,
      closing: isClosing,
      lastPtsMs: () => this.lastPtsMs,
      assertOpen: () => this.assertOpen(),
      touch: () => this.touch(),
    });
    this.watches = new StandingQuestions(this.id, this.webhooks, (r) => this.events.emit('watch', r));
    this.watches.set(this.cfg.watch);
    this.answers = new AnswerQueue({
      limits: this.limits,
      wake: () => engine.scheduler.wake(),
      closing: isClosing,
      context: () => this.ctx,
      basis: () => {
        const s = this.ctx.stats;
        return { kept: s.visualTokens, total: s.visualTokensTotal, ptsMs: this.lastPtsMs ?? 0, frames: s.frames };
      },
      prefilled: (e) => this.events.emit('prefilled', e),
      watchDone: (id, r) => this.watches.done(id, r && { question: r.question, answer: r.answer, ptsMs: r.basis.ptsMs, frames: r.basis.frames }),
    });
    engine.scheduler.add(this.schedulerClient);
  }

  on<K extends keyof SessionEvents>(event: K, listener: (e: SessionEvents[K]) => void): Unsubscribe {
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
      framesDropped: this.drops.total,
      droppedByPolicy: this.drops.perPolicy,
      visualTokensKept: s.visualTokens,
      visualTokensTotal: s.visualTokensTotal,
      contextTokens: s.tokens,
      evictedFrames: s.evictedFrames,
      ffmpegPids: [...(this.inputs.latest?.pids ?? [])],
      pendingResponses: this.answers.pending,
    };
  }

  /** Whether an input (pushed video, frames or a source) is active. */
  get inputActive(): boolean {
    return this.inputs.active !== undefined;
  }

  /** Whether the active input drops frames it cannot keep up with (keep-latest) rather than pausing. */
  get inputLive(): boolean {
    return this.inputs.active?.live ?? false;
  }

  get inputFormat(): VideoFormat | 'frames' | 'source' | undefined {
    return this.inputs.active?.format;
  }

  // ---- configuration ----------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closing) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `session ${this.id} is closed`);
  }

  private newContext(): SessionContext {
    // The objects' numbering belongs to the context: a new context starts counting afresh.
    this.tracker = this.engine.createTracker();
    const ctx = this.engine.lm.createContext({ maxContextTokens: this.cfg.maxContextTokens });
    ctx.on('evicted', (e) => this.events.emit('evicted', { frames: e.frames, tokens: e.tokens, remainingFrames: e.remainingFrames, oldestPtsMs: e.oldestPtsMs }));
    return ctx;
  }

  /**
   * Changes settings. fps and resize apply to the next input; pruning to the next frame;
   * maxContextTokens only before the first frame; watch replaces the standing questions.
   */
  update(u: SessionConfigUpdate): Readonly<SessionConfig> {
    this.assertOpen();
    this.touch();
    const s = this.ctx.stats;
    checkUpdate(u, { limits: this.limits, engine: this.engine, current: this.cfg, contextStarted: s.frames > 0 || s.evictedFrames > 0 });
    const prev = this.cfg;
    this.cfg = mergeConfig(this.cfg, u);
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
    if (u.watch) this.watches.set(u.watch);
    return this.cfg;
  }

  // ---- inputs (see session/inputs.ts) -------------------------------------------------------------

  /**
   * Starts a pushed container stream (mp4 | webm | mpegts | mjpeg); write its bytes to the returned
   * input. Live (default): frames the model cannot keep up with are dropped, newest kept.
   * Not live: nothing is dropped; `write` returns false while the buffer is full.
   */
  startVideo(format: Exclude<VideoFormat, 'jpeg'>, options: { live?: boolean } = {}): VideoInput {
    return this.inputs.startVideo(format, options);
  }

  /** Starts a stream of JPEG images pushed one by one with `pushJpeg`. */
  startJpeg(options: { live?: boolean } = {}): void {
    this.inputs.startJpeg(options);
  }

  /**
   * One JPEG of a `startJpeg` input, captured at `ptsMs`. Resolves once it is queued for the model,
   * or dropped (a `dropped` event counts it: `fps-sampling` when an image of its 1/fps interval was
   * already taken, `keep-latest` when a live input outruns the model). A non-live input resolves
   * only once the queue has room, so awaiting each push is the backpressure. Decoding errors reject
   * with WINNOW_ERR_CORRUPT_INPUT.
   */
  pushJpeg(bytes: Uint8Array, ptsMs: number): Promise<void> {
    return this.inputs.pushJpeg(bytes, ptsMs);
  }

  /**
   * Pushes RGB frames (any size; the encoder fits them) from an iterable, e.g. frames decoded by the
   * host application. Not live by default: waits for queue room instead of dropping.
   */
  pushFrames(frames: Iterable<Frame> | AsyncIterable<Frame>, options: { live?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    return this.inputs.pushFrames(frames, options);
  }

  /**
   * Decodes a file path or URL on the server side (no access checks here unless the session has a
   * `sourcePolicy`: the WebSocket server confines sources before calling this). Live URLs reconnect
   * and drop frames they cannot keep up with; files pause instead.
   */
  openSource(source: { url: string } | { path: string } | ConfinedSource, options: { live?: boolean } = {}): SourceDescription {
    return this.inputs.openSource(source, options);
  }

  /** Ends the current input: pushed bytes/JPEGs are finished (their frames still get processed). */
  endInput(): void {
    this.inputs.end();
  }

  /** Stops the current input now (ffmpeg killed, queued frames of it discarded and counted). */
  closeSource(): void {
    this.inputs.closeSource();
  }

  // ---- scheduler client: the frame path and answer turns --------------------------------------------

  /** @internal */
  private wantsAnswerTurn(): boolean {
    return !this.closing && this.answers.busy;
  }

  /** @internal */
  private takeFrame(): Frame | undefined {
    if (this.closing) return undefined;
    return this.queue.take()?.frame;
  }

  /** `inContext`: the frame reached the context (else the model failed on it and an error was emitted). */
  private settleFrame(q: QueuedFrame, inContext: boolean): void {
    this.queue.release();
    if (q.discarded) return;
    q.input.outstanding--;
    if (inContext) q.input.processed++;
    q.input.ack();
    this.inputs.maybeEnded(q.input);
  }

  /** @internal */
  private async consumeEncoded(encoded: EncodedFrame): Promise<void> {
    const q = this.queue.inFlight;
    if (!q) return;
    let inContext = false;
    try {
      if (this.closing) return;
      const pruned = await this.pruner.prune({ ...this.engine.finishVideo(encoded, this.tracker), sourceId: q.input.id });
      const kept = pruned.kept.length;
      const total = pruned.gridH * pruned.gridW;
      const r = await this.ctx.appendFrame({ ...pruned, totalTokens: total });
      // close() counted this frame as discarded while it was in the model.
      if (q.discarded) return;
      this.framesProcessed++;
      inContext = true;
      this.lastPtsMs = q.frame.ptsMs;
      this.events.emit('frame', {
        index: q.frame.index,
        ptsMs: q.frame.ptsMs,
        kept,
        total,
        latencyMs: Math.round((performance.now() - q.enqueuedAt) * 10) / 10,
        prefillMs: r.prefillMs,
      });
      for (const w of this.watches.due(q.frame.ptsMs)) this.answers.askWatch(w.id, w.question, this.cfg.generation.maxNewTokens);
    } catch (e) {
      if (!this.closing) this.events.emit('error', toWinnowError(e, 'WINNOW_ERR_INFERENCE'));
    } finally {
      this.settleFrame(q, inContext);
    }
  }

  /** @internal */
  private frameFailed(_frame: Frame, error: unknown): void {
    const q = this.queue.inFlight;
    if (!q) return;
    if (!this.closing) this.events.emit('error', toWinnowError(error, 'WINNOW_ERR_INFERENCE'));
    this.settleFrame(q, false);
  }

  /** @internal */
  private async runAnswerTurn(maxDeltas: number): Promise<void> {
    if (this.closing) return;
    await this.answers.runTurn(maxDeltas);
  }

  // ---- questions (see session/answers.ts) -----------------------------------------------------------

  /**
   * Asks about the frames processed so far (the newest is "now"). Questions are answered one at a
   * time per session, in order; frames keep queueing meanwhile.
   */
  ask(question: string, options: AskOptions = {}): Answer {
    this.assertOpen();
    this.touch();
    checkQuestion(question, 'the question', this.limits);
    return this.answers.ask(question, options, this.cfg.generation);
  }

  /** Cancels a response by id, or the one being generated. Returns whether one was found. */
  cancel(responseId?: string): boolean {
    return this.answers.cancel(responseId);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------

  /** Waits until every queued frame and question is done (tests, batch tools). */
  async drain(signal?: AbortSignal): Promise<void> {
    while (!this.closing && (this.queue.busy || this.answers.busy)) {
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
    this.answers.abortAll();
    const input = this.inputs.latest;
    const exited = input && input.pids.size > 0 ? input.exited.wait() : Promise.resolve();
    // Whatever is queued or in the model never reaches a context now: count it, so the last
    // source.ended and the drop totals are exact.
    for (const q of this.queue.discardAll()) {
      q.input.outstanding--;
      this.drops.count(1, 'discard-on-close', q.input);
    }
    if (input) {
      if (!input.ended) this.inputs.finish(input, 'closed');
      // A JPEG still decoding is counted when it gets here; the session does not wait for it.
      this.inputs.emitEnded(input, true);
    }
    // Listeners get every drop before `closed` (and none after: the ledger arms no timer once closing).
    this.drops.flush();
    this.engine.scheduler.remove(this.schedulerClient);
    await this.answers.finishAborted();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, FFMPEG_EXIT_WAIT_MS)))]);
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
