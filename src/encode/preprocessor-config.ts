// preprocessor_config.json: how a frame becomes pixel_values (resize, pad, crop, rescale,
// normalise), resolved to explicit values with HF's defaults filled in. config.json and
// generation_config.json are read by src/model/config.ts.
import { z } from 'zod';
import { configError, zodIssues } from '../model/config.js';

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
