import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WinnowError } from '../errors.js';

/**
 * How visual tokens get position ids.
 * - `sequential`: 0..T-1 over the sequence actually fed (kept tokens become contiguous, as
 *   LLaVA-style pruning does). The default for models that declare nothing.
 * - `frame-shared`: every visual token of one frame gets the position the first one would have;
 *   the token after the frame continues at +1 (declared by winnow models in config.json).
 */
export type VisualPositionScheme = 'sequential' | 'frame-shared';

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

type Json = Record<string, unknown>;

async function readJson(dir: string, name: string, required: boolean): Promise<Json | null> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `cannot read ${path}`, { cause: e, details: { path } });
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${path} is not valid JSON`, { cause: e, details: { path } });
  }
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Reads a key from the top level or from `text_config` (LLaVA-style nesting). */
function pick(cfg: Json, key: string): unknown {
  if (cfg[key] !== undefined) return cfg[key];
  const text = cfg.text_config;
  if (text && typeof text === 'object') return (text as Json)[key];
  return undefined;
}

export function parseLanguageModelConfig(config: Json, generation: Json | null, dir = '<config>'): LanguageModelConfig {
  const imageTokenId = num(config.image_token_index) ?? num(config.image_token_id);
  if (imageTokenId === null) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${dir}/config.json declares neither image_token_index nor image_token_id`, {
      details: { dir },
    });
  }
  const winnow = (config.winnow && typeof config.winnow === 'object' ? config.winnow : {}) as Json;
  const schemeRaw = winnow.visual_position_scheme;
  let scheme: VisualPositionScheme = 'sequential';
  if (schemeRaw === 'frame-shared') scheme = 'frame-shared';
  else if (schemeRaw !== undefined && schemeRaw !== 'sequential' && schemeRaw !== 'default') {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', `unknown winnow.visual_position_scheme ${JSON.stringify(schemeRaw)}`, {
      details: { dir },
    });
  }
  const gen = generation ?? {};
  const eos = new Set<number>([...ids(pick(config, 'eos_token_id')), ...ids(gen.eos_token_id)]);
  const bos = num(gen.bos_token_id) ?? num(pick(config, 'bos_token_id'));
  const pad = num(gen.pad_token_id) ?? num(pick(config, 'pad_token_id'));
  const heads = num(pick(config, 'num_attention_heads'));
  const hidden = num(pick(config, 'hidden_size'));
  const headDim = num(pick(config, 'head_dim')) ?? (heads !== null && hidden !== null ? hidden / heads : null);
  return {
    imageTokenId,
    bosTokenId: bos,
    eosTokenIds: [...eos],
    padTokenId: pad,
    visualPositionScheme: scheme,
    frameMarker: typeof winnow.frame_marker === 'string' ? winnow.frame_marker : DEFAULT_FRAME_MARKER,
    maxPositionEmbeddings: num(pick(config, 'max_position_embeddings')) ?? 4096,
    numLayers: num(pick(config, 'num_hidden_layers')),
    numKeyValueHeads: num(pick(config, 'num_key_value_heads')) ?? heads,
    headDim,
    hiddenSize: hidden,
    vocabSize: num(pick(config, 'vocab_size')),
    captionPrompt: typeof winnow.caption_prompt === 'string' ? winnow.caption_prompt : null,
    generation: {
      doSample: gen.do_sample === true,
      temperature: num(gen.temperature) ?? 1,
      topK: num(gen.top_k) ?? 0,
      topP: num(gen.top_p) ?? 1,
      maxNewTokens: num(gen.max_new_tokens),
    },
  };
}

export async function loadLanguageModelConfig(dir: string): Promise<LanguageModelConfig> {
  const config = await readJson(dir, 'config.json', true);
  const generation = await readJson(dir, 'generation_config.json', false);
  return parseLanguageModelConfig(config as Json, generation, dir);
}

/** `t={s}s` → `t=12s` for ptsMs 12_400. */
export function formatFrameMarker(template: string, ptsMs: number): string {
  const s = Math.floor(Math.max(0, ptsMs) / 1000);
  return template.replaceAll('{s}', String(s)).replaceAll('{ms}', String(Math.round(ptsMs)));
}
