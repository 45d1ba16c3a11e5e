// One loaded model shared by every session (the shared runtime); scheduler.ts shares it fairly between them.
import { WinnowError } from '../errors.js';
import type { EncodedFrame, ModelFolder, ObjectTracker } from '../encode/index.js';
import type { Frame } from '../ingest/types.js';
import { FairScheduler } from './scheduler.js';
import type { LanguageModel } from '../llm/index.js';
import type { Codebook, Pruner, StrategyName } from '../prune/index.js';
import { WinnowRuntime, type PictureSize, type PrunerSettings, type RuntimeOptions } from '../runtime/index.js';

export { DEFAULT_MODEL_DIR, DEFAULT_CODEBOOK } from '../runtime/index.js';
export type { PrunerSettings };

import { packageRoot } from '../package-root.js';
export { packageRoot };

/** The runtime's options (model, codebook, execution provider, …) and the scheduler's. */
export interface EngineOptions extends RuntimeOptions {
  /** Most frames (from different sessions) one vision-encoder run takes. Default 8. */
  maxBatchFrames?: number;
  /** Answer text deltas generated per scheduling turn before other sessions get theirs. Default 4. */
  answerDeltasPerTurn?: number;
}

/**
 * The shared half of every session: the runtime (model folder, language model, codebook and its
 * index) and the scheduler. `close()` is idempotent; sessions must be closed first (the server
 * does that).
 */
export class WinnowEngine {
  /** Shares the model between sessions, round-robin (sessions register with it). */
  readonly scheduler: FairScheduler;
  private closed = false;

  constructor(
    readonly runtime: WinnowRuntime,
    options: Pick<EngineOptions, 'maxBatchFrames' | 'answerDeltasPerTurn'> = {},
  ) {
    // The scheduler checks its own settings (positive integers).
    this.scheduler = new FairScheduler((frames) => this.encodeFrames(frames), options.maxBatchFrames ?? 8, options.answerDeltasPerTurn ?? 4);
  }

  static async load(options: EngineOptions = {}): Promise<WinnowEngine> {
    const runtime = await WinnowRuntime.load(options);
    try {
      return new WinnowEngine(runtime, options);
    } catch (e) {
      await runtime.close();
      throw e;
    }
  }

  get folder(): ModelFolder {
    return this.runtime.folder;
  }

  get lm(): LanguageModel {
    return this.runtime.lm;
  }

  get codebook(): Codebook | undefined {
    return this.runtime.codebook;
  }

  /** The provider the model runs on and why ('cpu (auto: CUDA unavailable: …)', 'cuda (requested)', …). */
  get executionProviderReason(): string {
    return this.runtime.executionProviderReason;
  }

  get modelName(): string {
    return this.runtime.modelName;
  }

  /** Model input size; every session input is resized to it before it reaches the encoder. */
  get inputSize(): PictureSize {
    return this.runtime.inputSize;
  }

  /** The strategy a session gets when it does not choose one. */
  get defaultStrategy(): StrategyName {
    return this.runtime.defaultStrategy;
  }

  /** A pruner for one session, sharing the codebook index (its temporal state is its own). */
  createPruner(settings: PrunerSettings): Pruner {
    return this.runtime.createPruner(settings);
  }

  /**
   * One vision-encoder run over frames of any sessions, full grids: each session turns its own
   * frames into video frames (finishVideo), in its own order, with its own tracker.
   */
  private async encodeFrames(frames: Frame[]): Promise<EncodedFrame[]> {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the engine is closed');
    return this.runtime.encodeImages(frames);
  }

  /** A temporal-identity tracker for one session's video, when the model declares one. */
  createTracker(): ObjectTracker | undefined {
    return this.runtime.createTracker();
  }

  /** A session's full-grid frame as a video frame: its tracker's identity, then the model's video pooling. */
  finishVideo(encoded: EncodedFrame, tracker: ObjectTracker | undefined): EncodedFrame {
    return this.runtime.finishVideo(encoded, tracker);
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.scheduler.idle();
    await this.runtime.close();
  }
}
