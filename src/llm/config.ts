// What the language-model runtime needs from a model folder's config.json and
// generation_config.json, with its defaults filled in. The files are parsed by src/model/config.ts
// (one schema for every stage); a loaded ModelFolder hands its parse over, so nothing is read twice.
import { join } from 'node:path';
import { WinnowError } from '../errors.js';
import {
  loadModelConfigFiles,
  parseGenerationConfig,
  parseModelConfig,
  type GenerationConfig,
  type ModelConfig,
  type VisualPositionScheme,
} from '../model/index.js';

export type { VisualPositionScheme };

/** What the runtime needs from config.json + generation_config.json, normalised. */
export interface LanguageModelConfig {
  imageTokenId: number;
  bosTokenId: number | null;
  /** Every id that ends an answer (config + generation_config, deduplicated). */
  eosTokenIds: number[];
  padTokenId: number | null;
  visualPositionScheme: VisualPositionScheme;
  /** Text put before each frame's visual tokens; `{s}` = whole seconds of the frame's ptsMs. */
  frameMarker: string;
  /** Largest position id + 1 the model was built for (bounds the context). */
  maxPositionEmbeddings: number;
  numLayers: number | null;
  numKeyValueHeads: number | null;
  headDim: number | null;
  hiddenSize: number | null;
  vocabSize: number | null;
  /** The model's default prompt for captions (winnow models), if any. */
  captionPrompt: string | null;
  /** Sampling defaults from generation_config.json (greedy when absent). */
  generation: { doSample: boolean; temperature: number; topK: number; topP: number; maxNewTokens: number | null };
}

export const DEFAULT_FRAME_MARKER = 't={s}s';

/** Models that declare no context length get this many positions. */
const DEFAULT_MAX_POSITION_EMBEDDINGS = 4096;

/**
 * The runtime's view of a parsed config.json (+ generation_config.json). Fails with
 * WINNOW_ERR_MODEL_CONFIG when the model has no image token.
 */
export function languageModelConfig(model: ModelConfig, generation: GenerationConfig | undefined, file = 'config.json'): LanguageModelConfig {
  if (model.imageTokenId === undefined) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${file} declares neither image_token_index nor image_token_id`, { details: { file } });
  }
  const t = model.text;
  const heads = t.numAttentionHeads ?? null;
  const hidden = model.hiddenSize ?? null;
  const gen = generation;
  return {
    imageTokenId: model.imageTokenId,
    bosTokenId: gen?.bosTokenId ?? t.bosTokenId ?? null,
    eosTokenIds: [...new Set([...t.eosTokenIds, ...(gen?.eosTokenIds ?? [])])],
    padTokenId: gen?.padTokenId ?? t.padTokenId ?? null,
    visualPositionScheme: model.winnow.visualPositionScheme ?? 'sequential',
    frameMarker: model.winnow.frameMarker ?? DEFAULT_FRAME_MARKER,
    maxPositionEmbeddings: t.maxPositionEmbeddings ?? DEFAULT_MAX_POSITION_EMBEDDINGS,
    numLayers: t.numLayers ?? null,
    numKeyValueHeads: t.numKeyValueHeads ?? heads,
    headDim: t.headDim ?? (heads !== null && hidden !== null ? hidden / heads : null),
    hiddenSize: hidden,
    vocabSize: t.vocabSize ?? null,
    captionPrompt: model.winnow.captionPrompt ?? null,
    generation: {
      doSample: gen?.doSample ?? false,
      temperature: gen?.temperature ?? 1,
      topK: gen?.topK ?? 0,
      topP: gen?.topP ?? 1,
      maxNewTokens: gen?.maxNewTokens ?? null,
    },
  };
}

/** From the files' JSON (already read): the same schema and defaults as a loaded folder. */
export function parseLanguageModelConfig(config: unknown, generation: unknown, dir = '<config>'): LanguageModelConfig {
  const file = join(dir, 'config.json');
  const gen = generation === null || generation === undefined ? undefined : parseGenerationConfig(generation, join(dir, 'generation_config.json'));
  return languageModelConfig(parseModelConfig(config, file), gen, file);
}

/** Reads config.json and generation_config.json of `dir`; for callers that have no loaded ModelFolder. */
export async function loadLanguageModelConfig(dir: string): Promise<LanguageModelConfig> {
  const { config, generation } = await loadModelConfigFiles(dir);
  return languageModelConfig(config, generation, join(dir, 'config.json'));
}
