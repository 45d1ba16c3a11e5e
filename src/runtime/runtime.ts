// The loaded pipeline every entry point shares (`winnow ask`, server sessions, `winnow eval`,
// `winnow viz`): defaults resolved once, the model folder, the language model on its decoder
// sessions, and the checked codebook with its prototype index, each loaded once. Pruners,
// trackers and video contexts are per use and cheap; the heavy parts live here.
import type { Observable } from 'rxjs';
import { WinnowError, throwIfAborted } from '../errors.js';
import { ModelFolder, ObjectTracker, finishVideoFrame, modelInputSize, offlineDecodeResize, videoPooling, type PictureSize, type EncodedFrame, type ExecutionProviderOption, type ModelComponent } from '../encode/index.js';
import type { Frame, VideoSource } from '../ingest/index.js';
import { LanguageModel, type VideoContext } from '../llm/index.js';
import { CODEBOOK_STRATEGIES, Pruner, loadPruningCodebook, sharedIndexView, type Codebook, type EncoderCheckPolicy, type PrototypeIndex, type StrategyName } from '../prune/index.js';
import { describeNoCodebook, resolveModel, type NoCodebookReason } from './defaults.js';
import { encodeImages, encodeSource, prefillSource, type EncodeSourceOptions, type PrefillOptions, type PrefillResult } from './frames.js';

export interface RuntimeOptions {
  /** Model folder. Default: the bundled models/winnow-tiny. */
  model?: string;
  /**
   * Codebook (.safetensors / .pt path, or a loaded Codebook). Default: the bundled one when `model`
   * is the default and it is installed; else none, and pruning defaults to strategy `none`
   * (said once through `log`).
   */
  codebook?: string | Codebook;
  /** A codebook built for another vision encoder: 'error' (WINNOW_ERR_CODEBOOK_MISMATCH, default), 'warn' (`onWarning`) or 'off'. */
  codebookCheck?: EncoderCheckPolicy;
  /** Non-fatal problems found while loading (a codebook mismatch under `codebookCheck: 'warn'`). */
  onWarning?: (error: WinnowError) => void;
  /** Human-readable notes (no codebook, so no pruning by default). */
  log?: (line: string) => void;
  /** onnxruntime intra-op threads per session. Default: onnxruntime's choice. */
  threads?: number;
  /** 'cpu', 'cuda' (WINNOW_ERR_EXECUTION_PROVIDER when unavailable) or 'auto' (default: CUDA if available). */
  executionProvider?: ExecutionProviderOption;
  signal?: AbortSignal;
}

/** One use's pruning settings; unset fields take the codebook's defaults. */
export interface PrunerSettings {
  strategy?: StrategyName;
  tau?: number;
  ratio?: number;
  /** Temporal filter threshold τt; off when unset. */
  temporal?: number;
  minKeep?: number;
  /** Seed of the `random` strategy. Default 0. */
  seed?: number;
}

interface LoadedParts {
  folder: ModelFolder;
  lm: LanguageModel | undefined;
  codebook: Codebook | undefined;
  index: PrototypeIndex | undefined;
  noCodebookReason: NoCodebookReason | undefined;
}

async function loadParts(options: RuntimeOptions, components: readonly ModelComponent[] | undefined): Promise<LoadedParts> {
  const { signal } = options;
  throwIfAborted(signal);
  const resolved = resolveModel(options);
  if (resolved.noCodebookReason) options.log?.(`note: ${describeNoCodebook(resolved.noCodebookReason)}; pruning defaults to strategy none`);
  const folder = await ModelFolder.load(resolved.modelDir, {
    signal,
    executionProvider: options.executionProvider ?? 'auto',
    ...(components ? { components } : {}),
    ...(options.threads ? { intraOpThreads: options.threads } : {}),
  });
  let lm: LanguageModel | undefined;
  let index: PrototypeIndex | undefined;
  try {
    if (!components) lm = await LanguageModel.fromModelFolder(folder, { signal });
    let codebook: Codebook | undefined;
    if (resolved.codebook) {
      ({ codebook, index } = await loadPruningCodebook(resolved.codebook, {
        visionEncoderFile: folder.files.components.vision_encoder,
        policy: options.codebookCheck,
        onWarning: options.onWarning,
        signal,
      }));
    }
    return { folder, lm, codebook, index, noCodebookReason: resolved.noCodebookReason };
  } catch (e) {
    await index?.close().catch(() => undefined);
    await lm?.close().catch(() => undefined);
    await folder.close();
    throw e;
  }
}

/**
 * The vision half: model folder (encoder), codebook and index. Enough for pictures of what
 * pruning keeps (`winnow viz`); `WinnowRuntime` adds the language model.
 */
export class VisionRuntime {
  private closed = false;

  protected constructor(
    readonly folder: ModelFolder,
    readonly codebook: Codebook | undefined,
    private readonly index: PrototypeIndex | undefined,
    /** Set when there is no codebook: why. */
    readonly noCodebookReason: NoCodebookReason | undefined,
  ) {}

  /** Loads the vision encoder only (no language model). */
  static async loadVision(options: RuntimeOptions = {}): Promise<VisionRuntime> {
    const p = await loadParts(options, ['vision_encoder']);
    return new VisionRuntime(p.folder, p.codebook, p.index, p.noCodebookReason);
  }

  /** The provider the model runs on and why ('cpu (auto: CUDA unavailable: …)', 'cuda (requested)', …). */
  get executionProviderReason(): string {
    return this.folder.executionProviderReason;
  }

  /** The model folder's name (its last path segment). */
  get modelName(): string {
    return this.folder.dir.split(/[\\/]/).filter(Boolean).pop() ?? this.folder.dir;
  }

  /** The encoder's input size (streaming sessions decode to it). */
  get inputSize(): PictureSize {
    return modelInputSize(this.folder);
  }

  /** openVideo's size and resize for offline decoding (see offlineDecodeResize). */
  get offlineDecodeResize(): { size: PictureSize; resize: 'pad' } | undefined {
    return offlineDecodeResize(this.folder);
  }

  /** The strategy a pruner gets when its settings name none. */
  get defaultStrategy(): StrategyName {
    return this.codebook?.defaults?.strategy ?? 'none';
  }

  /** A pruner for one use (a session, a config, a run), sharing the codebook index; its temporal state is its own. */
  createPruner(settings: PrunerSettings = {}): Pruner {
    this.assertOpen();
    const strategy = settings.strategy ?? this.defaultStrategy;
    if (CODEBOOK_STRATEGIES.has(strategy) && !this.codebook) {
      const why = this.noCodebookReason ? describeNoCodebook(this.noCodebookReason) : 'no codebook is loaded';
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `strategy ${strategy} needs a codebook: ${why}`, { details: { strategy } });
    }
    return new Pruner(this.codebook, this.index ? sharedIndexView(this.index) : undefined, {
      strategy,
      ...(settings.tau !== undefined ? { tau: settings.tau } : {}),
      ...(settings.ratio !== undefined ? { ratio: settings.ratio } : {}),
      ...(settings.temporal !== undefined ? { temporal: { tau: settings.temporal } } : {}),
      ...(settings.minKeep !== undefined ? { minKeep: settings.minKeep } : {}),
      ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
    });
  }

  /** A temporal-identity tracker for one video, when the model declares one. */
  createTracker(): ObjectTracker | undefined {
    const spec = this.folder.config.winnow.temporalIdentity;
    return spec ? new ObjectTracker(spec) : undefined;
  }

  /** A full-grid (image-mode) frame as a video frame: its video's tracker identity, then the model's video pooling. */
  finishVideo(encoded: EncodedFrame, tracker: ObjectTracker | undefined): EncodedFrame {
    return finishVideoFrame(encoded, tracker, videoPooling(this.folder));
  }

  /** One vision-encoder run over frames of any videos, full grids (finish each with `finishVideo`). */
  encodeImages(frames: readonly Frame[]): Promise<EncodedFrame[]> {
    this.assertOpen();
    return encodeImages(this.folder, frames);
  }

  /** Decodes and encodes one source the offline way; see encodeSource. */
  encodeSource(source: VideoSource, options: EncodeSourceOptions): Observable<EncodedFrame> {
    this.assertOpen();
    return encodeSource(this, source, options);
  }

  protected assertOpen(): void {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the runtime is closed');
  }

  /** Idempotent. Close every pruner and context made from it first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.closeParts();
  }

  protected async closeParts(): Promise<void> {
    await this.index?.close().catch(() => undefined);
    await this.folder.close();
  }
}

/** The whole pipeline: the vision half and the language model. */
export class WinnowRuntime extends VisionRuntime {
  protected constructor(
    folder: ModelFolder,
    readonly lm: LanguageModel,
    codebook: Codebook | undefined,
    index: PrototypeIndex | undefined,
    noCodebookReason: NoCodebookReason | undefined,
  ) {
    super(folder, codebook, index, noCodebookReason);
  }

  static async load(options: RuntimeOptions = {}): Promise<WinnowRuntime> {
    const p = await loadParts(options, undefined);
    // Every component was loaded, so loadParts opened the language model.
    return new WinnowRuntime(p.folder, p.lm as LanguageModel, p.codebook, p.index, p.noCodebookReason);
  }

  /** Decodes, encodes, prunes and appends every sampled frame of `source` into `ctx`. */
  prefill(source: VideoSource, ctx: VideoContext, pruner: Pruner, options: PrefillOptions): Promise<PrefillResult> {
    this.assertOpen();
    return prefillSource(this, source, ctx, pruner, options);
  }

  protected override async closeParts(): Promise<void> {
    await this.lm.close().catch(() => undefined);
    await super.closeParts();
  }
}
