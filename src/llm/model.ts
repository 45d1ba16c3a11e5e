import { access } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../errors.js';
import { loadLanguageModelConfig, type LanguageModelConfig } from './config.js';
import { DecoderRuntime, readDecoderContract, type DecoderContract } from './decoder.js';
import { VideoContext, type VideoContextOptions } from './context.js';
import { TextTokenizer } from './tokenizer.js';

import { DTYPE_SUFFIX, type ModelDtype, type ModelFolder } from '../encode/index.js';

export interface LanguageModelLoadOptions {
  /** Weight variant; picks `onnx/decoder_model_merged{suffix}.onnx` etc. Default fp32. */
  dtype?: ModelDtype;
  /** Threads per ORT session (intra-op). Default: onnxruntime's choice. */
  intraOpNumThreads?: number;
  /** Sessions already created elsewhere (e.g. by src/encode's model folder); they stay owned by the caller. */
  sessions?: { embedTokens: ort.InferenceSession; decoder: ort.InferenceSession };
  signal?: AbortSignal;
}

/**
 * The language half of a model folder: tokenizer, chat template, embed_tokens and the merged
 * decoder. Creates `VideoContext`s, which own KV caches; the model owns the sessions.
 */
export class LanguageModel {
  private closed = false;

  constructor(
    readonly dir: string,
    readonly config: LanguageModelConfig,
    readonly tokenizer: TextTokenizer,
    readonly runtime: DecoderRuntime,
    private readonly ownsSessions: boolean,
  ) {}

  static async load(dir: string, options: LanguageModelLoadOptions = {}): Promise<LanguageModel> {
    const { signal } = options;
    throwIfAborted(signal);
    const config = await loadLanguageModelConfig(dir);
    const tokenizer = await TextTokenizer.load(dir);
    throwIfAborted(signal);
    let embed: ort.InferenceSession;
    let decoder: ort.InferenceSession;
    const owns = options.sessions === undefined;
    if (options.sessions) {
      embed = options.sessions.embedTokens;
      decoder = options.sessions.decoder;
    } else {
      const suffix = DTYPE_SUFFIX[options.dtype ?? 'fp32'];
      if (suffix === undefined) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown dtype ${String(options.dtype)}`);
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
      };
      const open = async (name: string): Promise<ort.InferenceSession> => {
        const path = join(dir, 'onnx', `${name}${suffix}.onnx`);
        try {
          await access(path);
        } catch (e) {
          throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `missing ${path}`, { cause: e, details: { path } });
        }
        try {
          return await ort.InferenceSession.create(path, sessionOptions);
        } catch (e) {
          throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `onnxruntime cannot load ${path}: ${(e as Error).message}`, { cause: e, details: { path } });
        }
      };
      embed = await open('embed_tokens');
      try {
        decoder = await open('decoder_model_merged');
      } catch (e) {
        await embed.release();
        throw e;
      }
    }
    let contract: DecoderContract;
    try {
      contract = readDecoderContract(embed, decoder, config);
      throwIfAborted(signal);
    } catch (e) {
      if (owns) await Promise.all([embed.release(), decoder.release()]);
      throw e;
    }
    return new LanguageModel(dir, config, tokenizer, new DecoderRuntime(embed, decoder, contract), owns);
  }

  createContext(options: VideoContextOptions = {}): VideoContext {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the language model is closed');
    return new VideoContext(this.runtime, this.tokenizer, this.config, options);
  }

  /**
   * Uses the embed_tokens / decoder sessions of an opened model folder (shared with the encode
   * stage, so each ONNX file is loaded once). The folder keeps owning them.
   */
  static async fromModelFolder(folder: ModelFolder, options: { signal?: AbortSignal } = {}): Promise<LanguageModel> {
    const [embed, decoder] = await Promise.all([
      folder.session('embed_tokens', options),
      folder.session('decoder_model_merged', options),
    ]);
    return LanguageModel.load(folder.dir, { sessions: { embedTokens: embed.session, decoder: decoder.session }, signal: options.signal });
  }

  /** Idempotent. Contexts made from this model must be closed first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runtime.release();
    if (this.ownsSessions) await Promise.all([this.runtime.embedSession.release(), this.runtime.decoderSession.release()]);
  }
}
