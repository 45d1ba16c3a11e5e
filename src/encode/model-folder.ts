// A model folder in the transformers.js / onnx-community layout, shared by the encode and LLM
// stages: which files it has (per dtype), its config files parsed and checked once, ONNX sessions
// created once per component (the vision encoder at load, the others on first use) and one
// idempotent close() that waits for running inferences and releases every session. Opening the
// files and the contract checks live in src/model; the vision encoder's I/O in ./vision.ts.
import { join } from 'node:path';
import { WinnowError, abortError, throwIfAborted } from '../errors.js';
import { MODEL_COMPONENTS, OnnxSessionOpener, componentPath, fileExists, missingFileError, openFolderComponent } from '../model/index.js';
import { loadModelConfigFiles, readModelJson } from '../model/index.js';
import type { ComponentSession, ExecutionProviderName, GenerationConfig, ModelComponent, ModelConfig, ModelDtype, OnnxSessionOptions } from '../model/index.js';
import { parsePreprocessorConfig, type PreprocessPlan } from './preprocessor-config.js';
import { VisionEncoder, type VisionEncoderInfo, type VisionOutput } from './vision.js';

export interface LoadModelOptions extends OnnxSessionOptions {
  /** One dtype for every component, or per component (missing ones: fp32). Default 'fp32'. */
  dtype?: ModelDtype | Partial<Record<ModelComponent, ModelDtype>>;
  /**
   * Components whose files must be present. Default: all three. The tokenizer files are required
   * when embed_tokens or decoder_model_merged is. Only the vision encoder is opened at load.
   */
  components?: readonly ModelComponent[];
  /** Run one inference through the vision encoder at load so the first frame is not slow. Default true. */
  warmUp?: boolean;
  signal?: AbortSignal;
}

export interface ModelFiles {
  config: string;
  preprocessorConfig: string;
  generationConfig: string | undefined;
  tokenizer: string | undefined;
  tokenizerConfig: string | undefined;
  components: Readonly<Partial<Record<ModelComponent, string>>>;
}

function dtypeFor(opt: LoadModelOptions['dtype'], component: ModelComponent): ModelDtype {
  if (opt === undefined) return 'fp32';
  if (typeof opt === 'string') return opt;
  return opt[component] ?? 'fp32';
}

interface Resolved {
  dir: string;
  config: ModelConfig;
  preprocess: PreprocessPlan;
  generationConfig: GenerationConfig | undefined;
  files: ModelFiles;
  dtypes: Readonly<Record<ModelComponent, ModelDtype>>;
  options: LoadModelOptions;
}

export class ModelFolder {
  readonly dir: string;
  /** config.json, parsed once: the LLM takes its settings from here too (LanguageModel.fromModelFolder). */
  readonly config: ModelConfig;
  readonly preprocess: PreprocessPlan;
  /** generation_config.json, parsed; undefined when the folder has none. */
  readonly generationConfig: GenerationConfig | undefined;
  readonly files: ModelFiles;
  readonly dtypes: Readonly<Record<ModelComponent, ModelDtype>>;
  readonly #opener: OnnxSessionOpener;
  #sessions = new Map<ModelComponent, Promise<ComponentSession>>();
  #vision: VisionEncoder | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Reads and checks the folder, opens the vision encoder (validating its contract) and warms
   * it up. Fails with WINNOW_ERR_MODEL_MISSING_FILE / _MODEL_CONFIG / _MODEL_CONTRACT /
   * _EXECUTION_PROVIDER.
   */
  static async load(dir: string, options: LoadModelOptions = {}): Promise<ModelFolder> {
    const { signal } = options;
    throwIfAborted(signal);
    const components = options.components ?? MODEL_COMPONENTS;
    const { config, generation: generationConfig } = await loadModelConfigFiles(dir);
    const preprocess = parsePreprocessorConfig(await readModelJson(dir, 'preprocessor_config.json', true), join(dir, 'preprocessor_config.json'));
    const dtypes = {} as Record<ModelComponent, ModelDtype>;
    const componentFiles: Partial<Record<ModelComponent, string>> = {};
    for (const c of MODEL_COMPONENTS) {
      dtypes[c] = dtypeFor(options.dtype, c);
      const rel = componentPath(c, dtypes[c]);
      const p = join(dir, rel);
      if (await fileExists(p)) componentFiles[c] = p;
      else if (components.includes(c)) throw missingFileError(dir, rel, `${c} at dtype ${dtypes[c]}`);
    }
    const needsTokenizer = components.includes('embed_tokens') || components.includes('decoder_model_merged');
    const tokenizer = join(dir, 'tokenizer.json');
    const tokenizerConfig = join(dir, 'tokenizer_config.json');
    const hasTok = await fileExists(tokenizer);
    const hasTokCfg = await fileExists(tokenizerConfig);
    if (needsTokenizer && !hasTok) throw missingFileError(dir, 'tokenizer.json', 'required by the language model');
    if (needsTokenizer && !hasTokCfg) throw missingFileError(dir, 'tokenizer_config.json', 'required by the language model');
    throwIfAborted(signal);
    const model = new ModelFolder({
      dir,
      config,
      preprocess,
      generationConfig,
      files: {
        config: join(dir, 'config.json'),
        preprocessorConfig: join(dir, 'preprocessor_config.json'),
        generationConfig: generationConfig === undefined ? undefined : join(dir, 'generation_config.json'),
        tokenizer: hasTok ? tokenizer : undefined,
        tokenizerConfig: hasTokCfg ? tokenizerConfig : undefined,
        components: componentFiles,
      },
      dtypes,
      options,
    });
    try {
      if (components.includes('vision_encoder')) {
        const component = await model.session('vision_encoder', { signal });
        model.#vision = await VisionEncoder.open(component, config, preprocess, options.warmUp ?? true, signal);
      } else if (components.length) await model.session(components[0], { signal });
    } catch (e) {
      await model.close();
      throw e;
    }
    return model;
  }

  /** Prefer `ModelFolder.load`; the constructor only stores what load resolved. */
  constructor(resolved: Resolved) {
    this.dir = resolved.dir;
    this.config = resolved.config;
    this.preprocess = resolved.preprocess;
    this.generationConfig = resolved.generationConfig;
    this.files = resolved.files;
    this.dtypes = resolved.dtypes;
    this.#opener = new OnnxSessionOpener(resolved.options);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The provider the sessions run on; known once the first session is open (always, after load). */
  get executionProvider(): ExecutionProviderName {
    return this.#opener.provider ?? 'cpu';
  }

  /** Why that provider: e.g. "cpu (auto: CUDA unavailable: …)". */
  get executionProviderReason(): string {
    return this.#opener.reason;
  }

  get vision(): VisionEncoderInfo {
    if (!this.#vision) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'this model was loaded without its vision encoder');
    return this.#vision.info;
  }

  /**
   * The created session of one component, opened and validated on first call and shared after.
   * The LLM stage gets embed_tokens / decoder_model_merged through here.
   */
  session(component: ModelComponent, opts: { signal?: AbortSignal } = {}): Promise<ComponentSession> {
    if (this.closed) return Promise.reject(new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} is closed`));
    let p = this.#sessions.get(component);
    if (!p) {
      p = this.#create(component);
      this.#sessions.set(component, p);
      // A failed open must not stay cached: the next call retries (e.g. after fixing a file).
      p.catch(() => {
        if (this.#sessions.get(component) === p) this.#sessions.delete(component);
      });
    }
    const signal = opts.signal;
    if (!signal) return p;
    throwIfAborted(signal);
    // Aborting the wait does not abort the creation: other callers may be waiting for it too.
    return new Promise<ComponentSession>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      p!.then(
        (s) => {
          signal.removeEventListener('abort', onAbort);
          resolve(s);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  async #create(component: ModelComponent): Promise<ComponentSession> {
    const opened = await openFolderComponent(this.dir, component, this.dtypes[component], this.#opener);
    if (this.closed) {
      await opened.session.release();
      throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} closed while opening ${component}`);
    }
    return opened;
  }

  /**
   * Runs the vision encoder on `batch` images laid out [batch, 3, H, W] at the start of
   * `pixels`. Every onnxruntime tensor is disposed before this resolves or rejects; the
   * returned arrays are copies the caller owns.
   */
  async runVision(pixels: Float32Array, batch: number, signal?: AbortSignal): Promise<VisionOutput> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} is closed`);
    if (!this.#vision) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'this model was loaded without its vision encoder');
    return this.#vision.run(pixels, batch, signal);
  }

  /** Number of vision-encoder runs in progress (0 after close resolves). */
  get inflightRuns(): number {
    return this.#vision?.inflightRuns ?? 0;
  }

  /**
   * Waits for running inferences, then releases every session. Idempotent: later calls
   * return the same promise.
   */
  close(): Promise<void> {
    if (!this.#closing) this.#closing = this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    await this.#vision?.idle();
    this.#vision = undefined;
    const opened = await Promise.allSettled([...this.#sessions.values()]);
    this.#sessions.clear();
    await Promise.allSettled(opened.map((r) => (r.status === 'fulfilled' ? r.value.session.release() : undefined)));
  }
}

/** Same as `ModelFolder.load`. */
export function loadModel(dir: string, options: LoadModelOptions = {}): Promise<ModelFolder> {
  return ModelFolder.load(dir, options);
}
