// LanguageModel: the language half of a model folder (tokenizer, chat template, embed_tokens and
// the merged decoder). Its sessions come from the same opener as the vision encoder's
// (src/model/onnx-session.ts), so it gets the same execution-provider choice and errors; loaded
// through a ModelFolder, it shares that folder's sessions and its parse of config.json.
import type * as ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../errors.js';
import { OnnxSessionOpener, openFolderComponent, type OnnxSessionOptions } from '../model/index.js';
import type { ComponentSession, ExecutionProviderName, GenerationConfig, ModelComponent, ModelConfig, ModelDtype } from '../model/index.js';
import { languageModelConfig, loadLanguageModelConfig, type LanguageModelConfig } from './config.js';
import { DecoderRuntime, readDecoderContract, type DecoderContract } from './decoder.js';
import { VideoContext, type VideoContextOptions } from './context.js';
import { TextTokenizer } from './tokenizer.js';

export interface LanguageModelLoadOptions extends OnnxSessionOptions {
  /** Weight variant; picks `onnx/decoder_model_merged{suffix}.onnx` etc. Default fp32. */
  dtype?: ModelDtype;
  /** Sessions already created elsewhere; they stay owned by the caller. */
  sessions?: { embedTokens: ort.InferenceSession; decoder: ort.InferenceSession };
  signal?: AbortSignal;
}

/** What `fromModelFolder` needs from a loaded model folder (src/encode's ModelFolder). */
export interface LanguageModelSource {
  readonly dir: string;
  /** config.json as the folder parsed it. */
  readonly config: ModelConfig;
  readonly generationConfig: GenerationConfig | undefined;
  readonly files: { readonly config: string };
  readonly executionProvider: ExecutionProviderName;
  readonly executionProviderReason: string;
  session(component: ModelComponent, options?: { signal?: AbortSignal }): Promise<ComponentSession>;
}

/**
 * Creates `VideoContext`s, which own KV caches; the model owns the sessions (unless they were
 * handed in).
 */
export class LanguageModel {
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly config: LanguageModelConfig,
    readonly tokenizer: TextTokenizer,
    readonly runtime: DecoderRuntime,
    /** Where the sessions run; undefined when the caller handed them in. */
    readonly executionProvider: ExecutionProviderName | undefined,
    /** Why that provider (e.g. "cpu (auto: CUDA unavailable: …)"); '' when unknown. */
    readonly executionProviderReason: string,
    private readonly ownsSessions: boolean,
  ) {}

  /**
   * Loads the language half of the model folder `dir`. Fails with WINNOW_ERR_MODEL_MISSING_FILE,
   * _MODEL_CONFIG, _MODEL_CONTRACT or _EXECUTION_PROVIDER.
   */
  static async load(dir: string, options: LanguageModelLoadOptions = {}): Promise<LanguageModel> {
    const { signal } = options;
    throwIfAborted(signal);
    const config = await loadLanguageModelConfig(dir);
    const tokenizer = await TextTokenizer.load(dir);
    throwIfAborted(signal);
    if (options.sessions) {
      const { embedTokens, decoder } = options.sessions;
      return LanguageModel.assemble(dir, config, tokenizer, embedTokens, decoder, { provider: undefined, reason: '', owns: false }, signal);
    }
    const dtype = options.dtype ?? 'fp32';
    const opener = new OnnxSessionOpener(options);
    const open = (component: ModelComponent): Promise<ComponentSession> => openFolderComponent(dir, component, dtype, opener);
    const embed = await open('embed_tokens');
    let decoder: ComponentSession;
    try {
      decoder = await open('decoder_model_merged');
    } catch (e) {
      await embed.session.release();
      throw e;
    }
    return LanguageModel.assemble(dir, config, tokenizer, embed.session, decoder.session, { provider: opener.provider, reason: opener.reason, owns: true }, signal);
  }

  /**
   * Uses the embed_tokens / decoder sessions and the config.json parse of an opened model folder
   * (shared with the encode stage, so each file is read and each ONNX file loaded once). The
   * folder keeps owning the sessions.
   */
  static async fromModelFolder(folder: LanguageModelSource, options: { signal?: AbortSignal } = {}): Promise<LanguageModel> {
    const { signal } = options;
    throwIfAborted(signal);
    const config = languageModelConfig(folder.config, folder.generationConfig, folder.files.config);
    const [tokenizer, embed, decoder] = await Promise.all([
      TextTokenizer.load(folder.dir),
      folder.session('embed_tokens', options),
      folder.session('decoder_model_merged', options),
    ]);
    const provider = { provider: folder.executionProvider, reason: folder.executionProviderReason, owns: false };
    return LanguageModel.assemble(folder.dir, config, tokenizer, embed.session, decoder.session, provider, signal);
  }

  /** Checks the decoder pair against the config; releases owned sessions when that fails. */
  private static async assemble(
    dir: string,
    config: LanguageModelConfig,
    tokenizer: TextTokenizer,
    embed: ort.InferenceSession,
    decoder: ort.InferenceSession,
    how: { provider: ExecutionProviderName | undefined; reason: string; owns: boolean },
    signal: AbortSignal | undefined,
  ): Promise<LanguageModel> {
    let contract: DecoderContract;
    try {
      contract = readDecoderContract(embed, decoder, config);
      throwIfAborted(signal);
    } catch (e) {
      if (how.owns) await Promise.all([embed.release(), decoder.release()]);
      throw e;
    }
    return new LanguageModel(dir, config, tokenizer, new DecoderRuntime(embed, decoder, contract), how.provider, how.reason, how.owns);
  }

  createContext(options: VideoContextOptions = {}): VideoContext {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the language model is closed');
    return new VideoContext(this.runtime, this.tokenizer, this.config, options);
  }

  /** Idempotent. Contexts made from this model must be closed first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runtime.release();
    if (this.ownsSessions) await Promise.all([this.runtime.embedSession.release(), this.runtime.decoderSession.release()]);
  }
}
