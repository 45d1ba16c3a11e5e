// The schema of a model folder's config.json (vision, text and winnow sections) and
// generation_config.json, read once when a folder loads. The encode stage and the language model
// both take their settings from this parse. Unknown keys are kept (HF configs carry many we do not
// need); the keys we rely on are checked here so that a bad folder fails at load, with the file
// and key named, instead of producing wrong tensors later.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { WinnowError } from '../errors.js';
import { missingFileError } from './onnx-session.js';

export type PoolingMode = 'avg' | 'bilinear' | 'max';

export interface PoolingSpec {
  /** Down-sampling factor per grid axis; the output grid is ceil(h/stride) × ceil(w/stride). */
  stride: number;
  mode: PoolingMode;
}

/**
 * How visual tokens get position ids.
 * - `sequential`: 0..T-1 over the sequence actually fed (kept tokens become contiguous, as
 *   LLaVA-style pruning does). The default for models that declare nothing.
 * - `frame-shared`: every visual token of one frame gets the position the first one would have;
 *   the token after the frame continues at +1 (declared by winnow models in config.json).
 */
export type VisualPositionScheme = 'sequential' | 'frame-shared';

/**
 * Temporal identity of a video's objects (config.json `winnow.temporal_identity`): the vision
 * encoder also outputs each patch's class (`patch_classes`), a tracker numbers the objects of each
 * class group in order of appearance, and each object token gets its ordinal's embedding added to
 * its features before video pooling. See src/encode/tracker.ts.
 */
export interface TemporalIdentitySpec {
  /** Tokens a class needs in a frame to count as present (a lone token is usually a misread edge). */
  minPatches: number;
  /** Frames a class must be absent before its return counts as a new object. */
  gapFrames: number;
  /** Ordinals go 1..maxOrdinal; later objects share the last one. */
  maxOrdinal: number;
  /** Group (e.g. shape) of each class id; 0 = never tracked (background). */
  classGroups: Int32Array;
  /** maxOrdinal × dim, row k−1 for ordinal k, row-major. */
  embeddings: Float32Array;
  dim: number;
}

/** The text model's keys, from `text_config` where it has them, else from the top level (LLaVA nests them, plain LMs do not). */
export interface TextModelConfig {
  numLayers: number | undefined;
  numAttentionHeads: number | undefined;
  numKeyValueHeads: number | undefined;
  headDim: number | undefined;
  vocabSize: number | undefined;
  maxPositionEmbeddings: number | undefined;
  bosTokenId: number | undefined;
  /** eos_token_id as a list (HF allows one id or several). */
  eosTokenIds: number[];
  padTokenId: number | undefined;
}

export interface ModelConfig {
  modelType: string | undefined;
  /** The LLM width = the width of the visual tokens (projector inside the vision encoder). */
  hiddenSize: number | undefined;
  imageTokenId: number | undefined;
  visionImageSize: number | undefined;
  visionPatchSize: number | undefined;
  text: TextModelConfig;
  winnow: {
    /** 'default' in the file reads as 'sequential'; undefined when the file says nothing. */
    visualPositionScheme: VisualPositionScheme | undefined;
    frameMarker: string | undefined;
    videoPooling: PoolingSpec | undefined;
    captionPrompt: string | undefined;
    temporalIdentity: TemporalIdentitySpec | undefined;
  };
  /** The file's full JSON, for stages that need keys this module does not interpret. */
  raw: Readonly<Record<string, unknown>>;
}

/** generation_config.json: the model's decoding defaults. */
export interface GenerationConfig {
  bosTokenId: number | undefined;
  eosTokenIds: number[];
  padTokenId: number | undefined;
  doSample: boolean;
  temperature: number | undefined;
  topK: number | undefined;
  topP: number | undefined;
  maxNewTokens: number | undefined;
  raw: Readonly<Record<string, unknown>>;
}

const poolingSchema = z.object({
  stride: z.number().int().min(1),
  mode: z.enum(['avg', 'bilinear', 'max']),
});

const temporalIdentitySchema = z.looseObject({
  min_patches: z.number().int().min(1),
  gap_frames: z.number().int().min(1),
  max_ordinal: z.number().int().min(1).max(1000),
  class_groups: z.array(z.number().int().min(0)).min(1).max(65536),
  embeddings: z.array(z.array(z.number().finite()).min(1)).min(1),
});

const winnowSectionSchema = z.looseObject({
  visual_position_scheme: z.enum(['sequential', 'frame-shared', 'default']).optional(),
  frame_marker: z.string().optional(),
  video_pooling: poolingSchema.optional(),
  caption_prompt: z.string().optional(),
  temporal_identity: temporalIdentitySchema.optional(),
});

// HF writes null for keys a model leaves unset.
const size = z.number().int().positive().nullish();
const tokenId = z.number().int().nullish();
const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();

/** Keys of the text model: at the top level of a plain LM's config, under text_config in LLaVA's. */
const textKeys = {
  hidden_size: size,
  num_hidden_layers: size,
  num_attention_heads: size,
  num_key_value_heads: size,
  head_dim: size,
  vocab_size: size,
  max_position_embeddings: size,
  bos_token_id: tokenId,
  eos_token_id: tokenIds,
  pad_token_id: tokenId,
};

const configSchema = z.looseObject({
  model_type: z.string().optional(),
  ...textKeys,
  text_config: z.looseObject(textKeys).optional(),
  vision_config: z.looseObject({ image_size: size, patch_size: size }).optional(),
  image_token_index: z.number().int().optional(),
  image_token_id: z.number().int().optional(),
  winnow: winnowSectionSchema.optional(),
});

const generationSchema = z.looseObject({
  bos_token_id: tokenId,
  eos_token_id: tokenIds,
  pad_token_id: tokenId,
  do_sample: z.boolean().nullish(),
  temperature: z.number().nonnegative().nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  top_p: z.number().positive().max(1).nullish(),
  max_new_tokens: size,
});

export function configError(file: string, issue: string, cause?: unknown): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${file}: ${issue}`, { cause, details: { file } });
}

export function zodIssues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/**
 * One JSON file of a model folder, parsed; undefined when it is optional and absent. Fails with
 * WINNOW_ERR_MODEL_MISSING_FILE, WINNOW_ERR_IO or WINNOW_ERR_MODEL_CONFIG (not JSON).
 */
export async function readModelJson(dir: string, name: string, required: boolean): Promise<unknown> {
  const p = join(dir, name);
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw missingFileError(dir, name, 'required by every model folder');
    }
    throw new WinnowError('WINNOW_ERR_IO', `cannot read ${p}`, { cause: e, details: { file: p } });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw configError(p, 'not valid JSON', e);
  }
}

const idList = (v: number | number[] | null | undefined): number[] => (v === null || v === undefined ? [] : typeof v === 'number' ? [v] : v);
const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;
/** text_config's value where it has one, else the top level's. */
const first = <T>(nested: T | null | undefined, top: T | null | undefined): T | undefined => nested ?? top ?? undefined;

export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  const r = configSchema.safeParse(json);
  if (!r.success) throw configError(file, zodIssues(r.error), r.error);
  const c = r.data;
  const t = c.text_config ?? {};
  const hiddenSize = first(t.hidden_size, c.hidden_size);
  const w = c.winnow;
  const scheme = w?.visual_position_scheme;
  return {
    modelType: c.model_type,
    hiddenSize,
    imageTokenId: c.image_token_index ?? c.image_token_id,
    visionImageSize: opt(c.vision_config?.image_size),
    visionPatchSize: opt(c.vision_config?.patch_size),
    text: {
      numLayers: first(t.num_hidden_layers, c.num_hidden_layers),
      numAttentionHeads: first(t.num_attention_heads, c.num_attention_heads),
      numKeyValueHeads: first(t.num_key_value_heads, c.num_key_value_heads),
      headDim: first(t.head_dim, c.head_dim),
      vocabSize: first(t.vocab_size, c.vocab_size),
      maxPositionEmbeddings: first(t.max_position_embeddings, c.max_position_embeddings),
      bosTokenId: first(t.bos_token_id, c.bos_token_id),
      eosTokenIds: idList(first(t.eos_token_id, c.eos_token_id)),
      padTokenId: first(t.pad_token_id, c.pad_token_id),
    },
    winnow: {
      visualPositionScheme: scheme === 'default' ? 'sequential' : scheme,
      frameMarker: w?.frame_marker,
      videoPooling: w?.video_pooling,
      captionPrompt: w?.caption_prompt,
      temporalIdentity: w?.temporal_identity ? temporalIdentity(w.temporal_identity, hiddenSize, file) : undefined,
    },
    raw: json as Record<string, unknown>,
  };
}

export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  const r = generationSchema.safeParse(json);
  if (!r.success) throw configError(file, zodIssues(r.error), r.error);
  const g = r.data;
  return {
    bosTokenId: opt(g.bos_token_id),
    eosTokenIds: idList(g.eos_token_id),
    padTokenId: opt(g.pad_token_id),
    doSample: g.do_sample === true,
    temperature: opt(g.temperature),
    topK: opt(g.top_k),
    topP: opt(g.top_p),
    maxNewTokens: opt(g.max_new_tokens),
    raw: json as Record<string, unknown>,
  };
}

/** config.json and generation_config.json (optional) of `dir`, parsed. */
export async function loadModelConfigFiles(dir: string): Promise<{ config: ModelConfig; generation: GenerationConfig | undefined }> {
  const rawConfig = await readModelJson(dir, 'config.json', true);
  const rawGeneration = await readModelJson(dir, 'generation_config.json', false);
  return {
    config: parseModelConfig(rawConfig, join(dir, 'config.json')),
    generation: rawGeneration === undefined ? undefined : parseGenerationConfig(rawGeneration, join(dir, 'generation_config.json')),
  };
}

function temporalIdentity(t: z.infer<typeof temporalIdentitySchema>, hiddenSize: number | undefined, file: string): TemporalIdentitySpec {
  const dim = t.embeddings[0].length;
  if (t.embeddings.length !== t.max_ordinal || t.embeddings.some((row) => row.length !== dim)) {
    throw configError(file, `winnow.temporal_identity.embeddings must be ${t.max_ordinal} rows (max_ordinal) of one width`);
  }
  if (hiddenSize !== undefined && dim !== hiddenSize) {
    throw configError(file, `winnow.temporal_identity.embeddings width ${dim} ≠ text_config.hidden_size ${hiddenSize}`);
  }
  return {
    minPatches: t.min_patches,
    gapFrames: t.gap_frames,
    maxOrdinal: t.max_ordinal,
    classGroups: Int32Array.from(t.class_groups),
    embeddings: Float32Array.from(t.embeddings.flat()),
    dim,
  };
}
