// Parsing of a model folder's JSON files. Unknown keys are kept (HF configs carry many we do not
// need); the keys we rely on are checked here so that a bad folder fails at load, with the file
// and key named, instead of producing wrong tensors later.
import { z } from 'zod';
import { WinnowError } from '../errors.js';

export type PoolingMode = 'avg' | 'bilinear' | 'max';

export interface PoolingSpec {
  /** Down-sampling factor per grid axis; the output grid is ceil(h/stride) × ceil(w/stride). */
  stride: number;
  mode: PoolingMode;
}

const poolingSchema = z.object({
  stride: z.number().int().min(1),
  mode: z.enum(['avg', 'bilinear', 'max']),
});

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

const temporalIdentitySchema = z.looseObject({
  min_patches: z.number().int().min(1),
  gap_frames: z.number().int().min(1),
  max_ordinal: z.number().int().min(1).max(1000),
  class_groups: z.array(z.number().int().min(0)).min(1).max(65536),
  embeddings: z.array(z.array(z.number().finite()).min(1)).min(1),
});

const winnowSectionSchema = z.looseObject({
  visual_position_scheme: z.string().optional(),
  frame_marker: z.string().optional(),
  video_pooling: poolingSchema.optional(),
  caption_prompt: z.string().optional(),
  temporal_identity: temporalIdentitySchema.optional(),
});

const configSchema = z.looseObject({
  model_type: z.string().optional(),
  text_config: z.looseObject({ hidden_size: z.number().int().positive().optional() }).optional(),
  vision_config: z
    .looseObject({
      image_size: z.number().int().positive().optional(),
      patch_size: z.number().int().positive().optional(),
    })
    .optional(),
  image_token_index: z.number().int().optional(),
  image_token_id: z.number().int().optional(),
  hidden_size: z.number().int().positive().optional(),
  winnow: winnowSectionSchema.optional(),
});

const sizeSchema = z.union([
  z.object({ height: z.number().int().positive(), width: z.number().int().positive() }),
  z.object({ shortest_edge: z.number().int().positive() }),
  z.number().int().positive(),
]);

const preprocessorSchema = z.looseObject({
  do_resize: z.boolean().optional(),
  size: sizeSchema.optional(),
  resample: z.number().int().min(0).max(5).optional(),
  do_pad: z.boolean().optional(),
  pad_mode: z.enum(['fit', 'square']).optional(),
  do_center_crop: z.boolean().optional(),
  crop_size: z
    .union([z.object({ height: z.number().int().positive(), width: z.number().int().positive() }), z.number().int().positive()])
    .optional(),
  do_rescale: z.boolean().optional(),
  rescale_factor: z.number().positive().optional(),
  do_normalize: z.boolean().optional(),
  image_mean: z.union([z.array(z.number()).length(3), z.number()]).optional(),
  image_std: z.union([z.array(z.number()).length(3), z.number()]).optional(),
});

export type ResizeTarget = { kind: 'exact'; height: number; width: number } | { kind: 'shortest-edge'; shortestEdge: number };

/** sharp kernel names; the PIL resample codes HF configs use map onto them (see RESAMPLE_KERNEL). */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3' | 'lanczos2' | 'mitchell';

/**
 * PIL resample codes (0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING) → sharp
 * kernels. BOX and HAMMING have no sharp equivalent; the nearest-in-spirit kernels are used.
 */
export const RESAMPLE_KERNEL: Readonly<Record<number, ResizeKernel>> = {
  0: 'nearest',
  1: 'lanczos3',
  2: 'linear',
  3: 'cubic',
  4: 'linear',
  5: 'lanczos2',
};

/** What preprocessor_config.json asks for, resolved to explicit values (HF defaults filled in). */
export interface PreprocessPlan {
  resize: ResizeTarget | null;
  kernel: ResizeKernel;
  /**
   * 'fit': scale to fit inside the resize target keeping aspect, pad centred (our models).
   * 'square': LLaVA-1.5 expand2square — pad to a square at the source resolution, then resize.
   */
  pad: 'fit' | 'square' | null;
  /** floor(image_mean · 255) per channel, the colour LLaVA pads with. */
  padColor: readonly [number, number, number];
  centerCrop: { height: number; width: number } | null;
  rescaleFactor: number | null;
  mean: readonly [number, number, number] | null;
  std: readonly [number, number, number] | null;
  /** Tensor size the plan produces: pixel_values is [B, 3, outHeight, outWidth]. */
  outHeight: number;
  outWidth: number;
}

export interface ModelConfig {
  modelType: string | undefined;
  /** The LLM width = the width of the visual tokens (projector inside the vision encoder). */
  hiddenSize: number | undefined;
  imageTokenId: number | undefined;
  visionImageSize: number | undefined;
  visionPatchSize: number | undefined;
  winnow: {
    visualPositionScheme: string | undefined;
    frameMarker: string | undefined;
    videoPooling: PoolingSpec | undefined;
    captionPrompt: string | undefined;
    temporalIdentity: TemporalIdentitySpec | undefined;
  };
  /** The file's full JSON, for stages that need keys this module does not interpret. */
  raw: Readonly<Record<string, unknown>>;
}

function configError(file: string, issue: string, cause?: unknown): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${file}: ${issue}`, { cause, details: { file } });
}

function zodIssues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  const r = configSchema.safeParse(json);
  if (!r.success) throw configError(file, zodIssues(r.error), r.error);
  const c = r.data;
  const w = c.winnow;
  return {
    modelType: c.model_type,
    hiddenSize: c.text_config?.hidden_size ?? c.hidden_size,
    imageTokenId: c.image_token_index ?? c.image_token_id,
    visionImageSize: c.vision_config?.image_size,
    visionPatchSize: c.vision_config?.patch_size,
    winnow: {
      visualPositionScheme: w?.visual_position_scheme,
      frameMarker: w?.frame_marker,
      videoPooling: w?.video_pooling,
      captionPrompt: w?.caption_prompt,
      temporalIdentity: w?.temporal_identity ? temporalIdentity(w.temporal_identity, c.text_config?.hidden_size ?? c.hidden_size, file) : undefined,
    },
    raw: json as Record<string, unknown>,
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

function triple(v: number | number[] | undefined, fallback: readonly [number, number, number]): [number, number, number] {
  if (v === undefined) return [...fallback];
  if (typeof v === 'number') return [v, v, v];
  return [v[0], v[1], v[2]];
}

// CLIP's statistics are HF's defaults for CLIPImageProcessor, the processor LLaVA-style models use.
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export function parsePreprocessorConfig(json: unknown, file = 'preprocessor_config.json'): PreprocessPlan {
  const r = preprocessorSchema.safeParse(json);
  if (!r.success) throw configError(file, zodIssues(r.error), r.error);
  const p = r.data;
  const doResize = p.do_resize ?? true;
  let resize: ResizeTarget | null = null;
  if (doResize) {
    const s = p.size;
    if (s === undefined) throw configError(file, 'do_resize is set but size is missing');
    if (typeof s === 'number') resize = { kind: 'exact', height: s, width: s };
    else if ('shortest_edge' in s) resize = { kind: 'shortest-edge', shortestEdge: s.shortest_edge };
    else resize = { kind: 'exact', height: s.height, width: s.width };
  }
  const mean = triple(p.image_mean, CLIP_MEAN);
  const std = triple(p.image_std, CLIP_STD);
  if (std.some((x) => x === 0)) throw configError(file, 'image_std contains 0');
  const doCrop = p.do_center_crop ?? false;
  let centerCrop: { height: number; width: number } | null = null;
  if (doCrop) {
    const cs = p.crop_size;
    if (cs === undefined) throw configError(file, 'do_center_crop is set but crop_size is missing');
    centerCrop = typeof cs === 'number' ? { height: cs, width: cs } : cs;
  }
  const pad = p.do_pad ? (p.pad_mode ?? 'square') : null;
  if (pad === 'fit' && resize?.kind !== 'exact') {
    throw configError(file, 'pad_mode "fit" needs size {height, width}');
  }
  let outHeight: number;
  let outWidth: number;
  if (centerCrop) {
    outHeight = centerCrop.height;
    outWidth = centerCrop.width;
  } else if (resize?.kind === 'exact') {
    outHeight = resize.height;
    outWidth = resize.width;
  } else {
    // A shortest-edge resize without a crop gives a size that depends on the input; batched
    // tensors need one size, so such a processor cannot be served frame-batched.
    throw configError(file, 'the output size is not fixed: give size {height, width} or do_center_crop with crop_size');
  }
  return {
    resize,
    kernel: RESAMPLE_KERNEL[p.resample ?? 3],
    pad,
    padColor: [Math.floor(mean[0] * 255), Math.floor(mean[1] * 255), Math.floor(mean[2] * 255)],
    centerCrop,
    rescaleFactor: (p.do_rescale ?? true) ? (p.rescale_factor ?? 1 / 255) : null,
    mean: (p.do_normalize ?? true) ? mean : null,
    std: (p.do_normalize ?? true) ? std : null,
    outHeight,
    outWidth,
  };
}
