// Opening a model folder's ONNX files as onnxruntime sessions, for every stage (the vision
// encoder, embed_tokens, the decoder): the file a dtype variant lives in, the execution provider
// (decided once per model, with a reason a user can read) and the typed errors for a file that is
// missing or that onnxruntime cannot load. Both src/encode's ModelFolder and src/llm's
// LanguageModel open their sessions here, so they choose providers and fail the same way.
import { readdirSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { WinnowError } from '../errors.js';

export type ModelDtype = 'fp32' | 'fp16' | 'quantized' | 'q4' | 'q4f16';
export type ModelComponent = 'vision_encoder' | 'embed_tokens' | 'decoder_model_merged';
export type ExecutionProviderOption = 'cpu' | 'cuda' | 'auto';
export type ExecutionProviderName = 'cpu' | 'cuda';

export const MODEL_COMPONENTS: readonly ModelComponent[] = ['vision_encoder', 'embed_tokens', 'decoder_model_merged'];

/** File-name suffix per dtype, as transformers.js names its exports. */
export const DTYPE_SUFFIX: Readonly<Record<ModelDtype, string>> = {
  fp32: '',
  fp16: '_fp16',
  quantized: '_quantized',
  q4: '_q4',
  q4f16: '_q4f16',
};

export interface OnnxSessionOptions {
  /** Default 'auto': CUDA when onnxruntime can create it, else CPU (the opener's `reason` says which). */
  executionProvider?: ExecutionProviderOption;
  /** onnxruntime intra-op threads; default: onnxruntime's choice (one per core). */
  intraOpThreads?: number;
  /** onnxruntime inter-op threads; default: onnxruntime's choice. */
  interOpThreads?: number;
}

/** Where `component` at `dtype` lives, relative to the model folder: `onnx/<component><suffix>.onnx`. */
export function componentPath(component: ModelComponent, dtype: ModelDtype): string {
  // Own-key lookup: a dtype from user input must not reach Object.prototype.
  if (!Object.hasOwn(DTYPE_SUFFIX, dtype)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown dtype ${String(dtype)} (one of ${Object.keys(DTYPE_SUFFIX).join(', ')})`, {
      details: { dtype: String(dtype) },
    });
  }
  return `onnx/${component}${DTYPE_SUFFIX[dtype]}.onnx`;
}

/** `file` (relative to `dir`) is not there; `why` says who needs it. */
export function missingFileError(dir: string, file: string, why: string): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `model folder ${dir} has no ${file} (${why})`, {
    details: { dir, file: join(dir, file) },
  });
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether onnxruntime-node ships its CUDA provider library here. Without it a CUDA session
 * cannot be created, and trying anyway makes onnxruntime print an error through its global
 * logger, which per-session log levels do not silence. undefined: cannot tell, so try.
 */
function cudaProviderInstalled(): boolean | undefined {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const bin = join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    return readdirSync(bin).some((f) => f.includes('onnxruntime_providers_cuda'));
  } catch {
    return undefined;
  }
}

/**
 * Opens the ONNX files of one model. The first file opened decides the execution provider (with
 * 'auto', CUDA if it can be created, else CPU) and every later file uses the same one, so the
 * components of a model never straddle devices.
 */
export class OnnxSessionOpener {
  readonly #options: OnnxSessionOptions;
  #provider: ExecutionProviderName | undefined;
  #reason = '';
  /** The first open, while it decides the provider: concurrent opens wait for its decision. */
  #deciding: Promise<unknown> | undefined;

  constructor(options: OnnxSessionOptions = {}) {
    this.#options = options;
  }

  /** The provider sessions run on, once the first file is open. */
  get provider(): ExecutionProviderName | undefined {
    return this.#provider;
  }

  /** Why that provider: e.g. "cpu (auto: CUDA unavailable: …)". Empty before the first open. */
  get reason(): string {
    return this.#reason;
  }

  /**
   * Creates a session for `file`. Fails with WINNOW_ERR_MODEL_MISSING_FILE (the file or its
   * external weights are absent), WINNOW_ERR_MODEL_CONTRACT (onnxruntime cannot load it) or
   * WINNOW_ERR_EXECUTION_PROVIDER (CUDA requested and unavailable).
   */
  async open(file: string): Promise<{ session: ort.InferenceSession; provider: ExecutionProviderName }> {
    if (!(await fileExists(file))) {
      throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `${file} does not exist`, { details: { file } });
    }
    if (this.#provider === undefined && this.#deciding !== undefined) await this.#deciding.catch(() => undefined);
    if (this.#provider !== undefined) return { session: await this.#create(file, this.#provider), provider: this.#provider };
    const p = this.#decide(file);
    this.#deciding = p;
    try {
      return await p;
    } finally {
      if (this.#deciding === p) this.#deciding = undefined;
    }
  }

  async #decide(file: string): Promise<{ session: ort.InferenceSession; provider: ExecutionProviderName }> {
    const wanted = this.#options.executionProvider ?? 'auto';
    if (wanted === 'cpu') {
      const session = await this.#create(file, 'cpu');
      this.#settle('cpu', 'cpu (requested)');
      return { session, provider: 'cpu' };
    }
    const installed = cudaProviderInstalled();
    if (installed === false) {
      const why = 'onnxruntime-node has no CUDA provider library installed';
      if (wanted === 'cuda') {
        throw new WinnowError('WINNOW_ERR_EXECUTION_PROVIDER', `the CUDA execution provider is unavailable: ${why}`, { details: { requested: 'cuda', file } });
      }
      const session = await this.#create(file, 'cpu');
      this.#settle('cpu', `cpu (auto: CUDA unavailable: ${why})`);
      return { session, provider: 'cpu' };
    }
    try {
      // Log level 4 (fatal only): a missing CUDA library is an expected outcome under 'auto'.
      const session = await ort.InferenceSession.create(file, {
        ...this.#base(),
        executionProviders: ['cuda'],
        ...(wanted === 'auto' ? { logSeverityLevel: 4 as const } : {}),
      });
      this.#settle('cuda', `cuda (${wanted === 'auto' ? 'auto: CUDA available' : 'requested'})`);
      return { session, provider: 'cuda' };
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      if (wanted === 'cuda') {
        throw new WinnowError('WINNOW_ERR_EXECUTION_PROVIDER', `the CUDA execution provider is unavailable: ${why}`, {
          cause: e,
          details: { requested: 'cuda', file },
        });
      }
      const session = await this.#create(file, 'cpu');
      this.#settle('cpu', `cpu (auto: CUDA unavailable: ${why})`);
      return { session, provider: 'cpu' };
    }
  }

  #settle(provider: ExecutionProviderName, reason: string): void {
    this.#provider ??= provider;
    if (!this.#reason) this.#reason = reason;
  }

  #base(): ort.InferenceSession.SessionOptions {
    const o = this.#options;
    return {
      graphOptimizationLevel: 'all',
      ...(o.intraOpThreads !== undefined ? { intraOpNumThreads: o.intraOpThreads } : {}),
      ...(o.interOpThreads !== undefined ? { interOpNumThreads: o.interOpThreads } : {}),
    };
  }

  async #create(file: string, provider: ExecutionProviderName): Promise<ort.InferenceSession> {
    try {
      return await ort.InferenceSession.create(file, { ...this.#base(), executionProviders: [provider] });
    } catch (e) {
      // A weights file (`*.onnx_data`) the model refers to is missing: name it, as for any missing file.
      const missing = /External data path does not exist: "([^"]+)"/.exec(e instanceof Error ? e.message : '');
      if (missing) {
        throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `${file} keeps its weights in ${missing[1]}, which does not exist`, {
          cause: e,
          details: { file: missing[1], model: file },
        });
      }
      // onnxruntime reports both unreadable and malformed models this way.
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `onnxruntime cannot load ${file}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
        details: { file },
      });
    }
  }
}
