// One loaded model shared by every session, and the scheduler that shares it fairly. The machine
// has a handful of cores and onnxruntime already uses them all for one run, so model work is
// serialised: each scheduling round visits the sessions round-robin, takes at most one frame from
// each (encoded together in one vision-encoder batch) or one slice of an answer, and never takes a
// session's frames out of order.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, toArray } from 'rxjs';
import { WinnowError, throwIfAborted } from '../errors.js';
import { ModelFolder, ObjectTracker, encode, finishVideoFrame, videoPooling, type EncodedFrame, type ExecutionProviderOption } from '../encode/index.js';
import type { Frame } from '../ingest/types.js';
import { LanguageModel } from '../llm/index.js';
import { Pruner, checkCodebookEncoder, createPrototypeIndex, loadCodebook, type Codebook, type EncoderCheckPolicy, type PrototypeIndex, type StrategyName } from '../prune/index.js';

export const DEFAULT_MODEL_DIR = 'models/winnow-tiny';
export const DEFAULT_CODEBOOK = 'codebooks/winnow-tiny.safetensors';

import { packageRoot } from '../package-root.js';
export { packageRoot };

export interface EngineOptions {
  /** Model folder. Default: the bundled models/winnow-tiny. */
  model?: string;
  /**
   * Codebook (.safetensors / .pt path or a loaded Codebook) for the codebook strategies. Default: the
   * bundled codebooks/winnow-tiny.safetensors when present and `model` is the default; else none
   * (sessions then default to strategy `none`).
   */
  codebook?: string | Codebook;
  /**
   * A codebook built for another vision encoder (its recorded sha256 differs from the model's
   * `onnx/vision_encoder*.onnx`): 'error' (WINNOW_ERR_CODEBOOK_MISMATCH, the default), 'warn'
   * (`onWarning`, then prune anyway) or 'off'.
   */
  codebookCheck?: EncoderCheckPolicy;
  /** Non-fatal problems found while loading (a codebook mismatch under `codebookCheck: 'warn'`). */
  onWarning?: (error: WinnowError) => void;
  /** onnxruntime intra-op threads per session. Default: onnxruntime's choice. */
  threads?: number;
  /**
   * Where the model runs: 'cpu', 'cuda' (fails with WINNOW_ERR_EXECUTION_PROVIDER when onnxruntime
   * cannot create it) or 'auto' (CUDA when available, else CPU; `executionProviderReason` says which).
   * Default 'auto'.
   */
  executionProvider?: ExecutionProviderOption;
  /** Most frames (from different sessions) one vision-encoder run takes. Default 8. */
  maxBatchFrames?: number;
  /** Answer text deltas generated per scheduling turn before other sessions get theirs. Default 4. */
  answerDeltasPerTurn?: number;
  signal?: AbortSignal;
}

/** What the scheduler needs from a session. Implemented by Session; not part of the public API. */
export interface SchedulerClient {
  /** True when the session has an answer to start or continue (its frames wait meanwhile). */
  wantsAnswerTurn(): boolean;
  /** The next queued frame, in order, or undefined. */
  takeFrame(): Frame | undefined;
  /** Prunes and appends one encoded frame. Must not throw. */
  consumeEncoded(encoded: EncodedFrame): Promise<void>;
  /** The frame could not be encoded. Must not throw. */
  frameFailed(frame: Frame, error: unknown): void;
  /** Generates the next slice of the current answer. Must not throw. */
  runAnswerTurn(maxDeltas: number): Promise<void>;
}

/** Fair round-robin over sessions; see the file comment. */
export class FairScheduler {
  private readonly clients: SchedulerClient[] = [];
  private cursor = 0;
  private running = false;
  private again = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly encodeBatch: (frames: Frame[]) => Promise<EncodedFrame[]>,
    private readonly maxBatchFrames: number,
    private readonly answerDeltasPerTurn: number,
  ) {}

  add(client: SchedulerClient): void {
    if (!this.clients.includes(client)) this.clients.push(client);
  }

  remove(client: SchedulerClient): void {
    const i = this.clients.indexOf(client);
    if (i < 0) return;
    this.clients.splice(i, 1);
    if (this.cursor > i) this.cursor--;
    if (this.cursor >= this.clients.length) this.cursor = 0;
  }

  /** Some client has new work. */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  /** Resolves when no work is running or queued. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  get sessionCount(): number {
    return this.clients.length;
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        const did = await this.round();
        if (!did && !this.again) break;
        // Let socket I/O (new frames, cancels, pings) in between rounds.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  private async round(): Promise<boolean> {
    const n = this.clients.length;
    if (n === 0) return false;
    const frames: { client: SchedulerClient; frame: Frame }[] = [];
    const answerers: SchedulerClient[] = [];
    let visited = 0;
    for (; visited < n && frames.length < this.maxBatchFrames; visited++) {
      const c = this.clients[(this.cursor + visited) % n];
      if (c.wantsAnswerTurn()) answerers.push(c);
      else {
        const f = c.takeFrame();
        if (f) frames.push({ client: c, frame: f });
      }
    }
    this.cursor = n ? (this.cursor + visited) % n : 0;
    if (frames.length) {
      let encoded: EncodedFrame[] | undefined;
      try {
        encoded = await this.encodeBatch(frames.map((x) => x.frame));
      } catch (e) {
        for (const x of frames) x.client.frameFailed(x.frame, e);
      }
      if (encoded) for (let i = 0; i < frames.length; i++) await frames[i].client.consumeEncoded(encoded[i]);
    }
    for (const a of answerers) await a.runAnswerTurn(this.answerDeltasPerTurn);
    return frames.length > 0 || answerers.length > 0;
  }
}

/** A non-owning view of a shared prototype index: sessions' pruners may close it freely. */
function borrowed(index: PrototypeIndex): PrototypeIndex {
  return {
    get backend() {
      return index.backend;
    },
    get kernel() {
      return index.kernel;
    },
    get count() {
      return index.count;
    },
    get dim() {
      return index.dim;
    },
    score: (t, n, out, s) => index.score(t, n, out, s),
    similarityMatrix: (t, n, s) => index.similarityMatrix(t, n, s),
    close: async () => undefined,
  };
}

export interface PrunerSettings {
  strategy?: StrategyName;
  tau?: number;
  ratio?: number;
  temporal?: number;
  minKeep?: number;
}

/**
 * The shared half of every session: the model folder (vision encoder), the language model on the
 * folder's decoder sessions, the codebook and its index, and the scheduler. `close()` is
 * idempotent; sessions must be closed first (the server does that).
 */
export class WinnowEngine {
  readonly scheduler: FairScheduler;
  private closed = false;

  constructor(
    readonly folder: ModelFolder,
    readonly lm: LanguageModel,
    readonly codebook: Codebook | undefined,
    private readonly index: PrototypeIndex | undefined,
    options: Pick<EngineOptions, 'maxBatchFrames' | 'answerDeltasPerTurn'> = {},
  ) {
    const maxBatch = options.maxBatchFrames ?? 8;
    const deltas = options.answerDeltasPerTurn ?? 4;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxBatchFrames must be a positive integer');
    if (!Number.isInteger(deltas) || deltas < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'answerDeltasPerTurn must be a positive integer');
    this.scheduler = new FairScheduler((frames) => this.encodeFrames(frames), maxBatch, deltas);
  }

  static async load(options: EngineOptions = {}): Promise<WinnowEngine> {
    const { signal } = options;
    throwIfAborted(signal);
    const root = packageRoot();
    const modelDir = options.model ? resolve(options.model) : join(root, DEFAULT_MODEL_DIR);
    let codebook: Codebook | undefined;
    if (typeof options.codebook === 'string') codebook = await loadCodebook(resolve(options.codebook), { signal });
    else if (options.codebook) codebook = options.codebook;
    else if (!options.model && existsSync(join(root, DEFAULT_CODEBOOK))) codebook = await loadCodebook(join(root, DEFAULT_CODEBOOK), { signal });
    const folder = await ModelFolder.load(modelDir, {
      signal,
      executionProvider: options.executionProvider ?? 'auto',
      ...(options.threads ? { intraOpThreads: options.threads } : {}),
    });
    let lm: LanguageModel | undefined;
    let index: PrototypeIndex | undefined;
    try {
      lm = await LanguageModel.fromModelFolder(folder, { signal });
      const encoderFile = folder.files.components.vision_encoder;
      if (codebook && encoderFile) await checkCodebookEncoder(codebook, encoderFile, { policy: options.codebookCheck, onWarning: options.onWarning, signal });
      if (codebook) index = await createPrototypeIndex(codebook.prototypes, codebook.count, codebook.dim, { signal });
      return new WinnowEngine(folder, lm, codebook, index, options);
    } catch (e) {
      await index?.close();
      await lm?.close();
      await folder.close();
      throw e;
    }
  }

  /** The provider the model runs on and why ('cpu (auto: CUDA unavailable: …)', 'cuda (requested)', …). */
  get executionProviderReason(): string {
    return this.folder.executionProviderReason;
  }

  get modelName(): string {
    return this.folder.dir.split(/[\\/]/).filter(Boolean).pop() ?? this.folder.dir;
  }

  /** Model input size; ingest resizes to it with ffmpeg so the encoder's own resize is a no-op. */
  get inputSize(): { width: number; height: number } {
    return { width: this.folder.vision.imageWidth, height: this.folder.vision.imageHeight };
  }

  /** The strategy a session gets when it does not choose one. */
  get defaultStrategy(): StrategyName {
    return this.codebook?.defaults?.strategy ?? 'none';
  }

  /** A pruner for one session, sharing the codebook index (its temporal state is its own). */
  createPruner(settings: PrunerSettings): Pruner {
    const strategy = settings.strategy ?? this.defaultStrategy;
    return new Pruner(this.codebook, this.index ? borrowed(this.index) : undefined, {
      strategy,
      ...(settings.tau !== undefined ? { tau: settings.tau } : {}),
      ...(settings.ratio !== undefined ? { ratio: settings.ratio } : {}),
      ...(settings.temporal !== undefined ? { temporal: { tau: settings.temporal } } : {}),
      ...(settings.minKeep !== undefined ? { minKeep: settings.minKeep } : {}),
    });
  }

  /**
   * One vision-encoder run over frames of any sessions, full grids: each session turns its own
   * frames into video frames (finishVideo), in its own order, with its own tracker.
   */
  private async encodeFrames(frames: Frame[]): Promise<EncodedFrame[]> {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the engine is closed');
    return lastValueFrom(
      from(frames).pipe(encode(this.folder, { video: false, batchSize: frames.length, maxWaitMs: 0, maxInFlightBatches: 1, maxQueuedFrames: frames.length }), toArray()),
    );
  }

  /** A temporal-identity tracker for one session's video, when the model declares one. */
  createTracker(): ObjectTracker | undefined {
    const spec = this.folder.config.winnow.temporalIdentity;
    return spec ? new ObjectTracker(spec) : undefined;
  }

  /** A session's full-grid frame as a video frame: its tracker's identity, then the model's video pooling. */
  finishVideo(encoded: EncodedFrame, tracker: ObjectTracker | undefined): EncodedFrame {
    return finishVideoFrame(encoded, tracker, videoPooling(this.folder));
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.scheduler.idle();
    await this.index?.close().catch(() => undefined);
    await this.lm.close().catch(() => undefined);
    await this.folder.close();
  }
}
