// Image → pixel_values, exactly as a preprocessor_config.json describes it. The geometric part
// (pad / resize / crop) runs on packed RGB bytes; only the resize goes through sharp. The
// numeric part (rescale, normalize, HWC → CHW) is a pure function so tests can check numbers.
import sharp from 'sharp';
import { WinnowError, throwIfAborted } from '../errors.js';
import type { PreprocessPlan } from './preprocessor-config.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Packed RGB24, width · height · 3 bytes. */
  data: Uint8Array;
}

/**
 * Per-channel lookup table of the normalized value of every byte, computed with float32
 * arithmetic in the order HF image processors use (x·factor rounded to float32, then
 * (x − mean) / std in float32), so results equal numpy's bit for bit.
 */
export function normalizationTable(plan: Pick<PreprocessPlan, 'rescaleFactor' | 'mean' | 'std'>): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = plan.mean ? Math.fround(plan.mean[c]) : 0;
    const std = plan.std ? Math.fround(plan.std[c]) : 1;
    for (let v = 0; v < 256; v++) {
      let x = plan.rescaleFactor === null ? v : Math.fround(v * plan.rescaleFactor);
      if (plan.mean) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + v] = x;
    }
  }
  return lut;
}

/**
 * Writes the normalized CHW planes of an RGB image into `out` starting at `offset`
 * (3 · width · height floats). No allocation besides `lut` when the caller passes one.
 */
export function rgbToNormalizedChw(
  image: RgbImage,
  plan: Pick<PreprocessPlan, 'rescaleFactor' | 'mean' | 'std'>,
  out: Float32Array,
  offset = 0,
  lut: Float32Array = normalizationTable(plan),
): void {
  const { width, height, data } = image;
  const plane = width * height;
  if (data.length < plane * 3) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `RGB buffer holds ${data.length} bytes, ${plane * 3} needed`);
  }
  if (out.length < offset + plane * 3) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `output buffer too small for a ${width}×${height} image at offset ${offset}`);
  }
  const r = offset;
  const g = offset + plane;
  const b = offset + 2 * plane;
  for (let i = 0, j = 0; i < plane; i++, j += 3) {
    out[r + i] = lut[data[j]];
    out[g + i] = lut[256 + data[j + 1]];
    out[b + i] = lut[512 + data[j + 2]];
  }
}

/**
 * Copies `src` into a `dw × dh` canvas filled with `fill`, its top-left corner at (dx, dy).
 * Negative offsets crop; this one routine does centred padding and centre cropping.
 */
export function placeRgb(src: RgbImage, dw: number, dh: number, dx: number, dy: number, fill: readonly [number, number, number]): RgbImage {
  const out = new Uint8Array(dw * dh * 3);
  if (fill[0] !== 0 || fill[1] !== 0 || fill[2] !== 0) {
    for (let i = 0; i < out.length; i += 3) {
      out[i] = fill[0];
      out[i + 1] = fill[1];
      out[i + 2] = fill[2];
    }
  }
  const x0 = Math.max(0, dx);
  const x1 = Math.min(dw, dx + src.width);
  const y0 = Math.max(0, dy);
  const y1 = Math.min(dh, dy + src.height);
  if (x1 > x0) {
    for (let y = y0; y < y1; y++) {
      const s = ((y - dy) * src.width + (x0 - dx)) * 3;
      out.set(src.data.subarray(s, s + (x1 - x0) * 3), (y * dw + x0) * 3);
    }
  }
  return { width: dw, height: dh, data: out };
}

/**
 * Content size when fitting w×h inside tw×th keeping aspect, rounded like ffmpeg's
 * `force_original_aspect_ratio=decrease` (av_rescale rounds to nearest), so a frame that ingest
 * letterboxed with ffmpeg and one letterboxed here have the same content rectangle.
 */
export function fitSize(width: number, height: number, targetWidth: number, targetHeight: number): { width: number; height: number } {
  const w = Math.min(targetWidth, Math.round((targetHeight * width) / height));
  const h = Math.min(targetHeight, Math.round((targetWidth * height) / width));
  return { width: Math.max(1, w), height: Math.max(1, h) };
}

async function resizeRgb(image: RgbImage, width: number, height: number, kernel: PreprocessPlan['kernel']): Promise<RgbImage> {
  if (image.width === width && image.height === height) return image;
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new WinnowError('WINNOW_ERR_INTERNAL', `sharp returned ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`);
  }
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** True when the image already has the model's input size and needs no geometric work. */
export function isModelSized(image: { width: number; height: number }, plan: PreprocessPlan): boolean {
  return image.width === plan.outWidth && image.height === plan.outHeight;
}

/**
 * The geometric part of the plan: pad, resize, crop. Returns the RGB image of the model's
 * input size. Frames that already have that size (ffmpeg scaled them in ingest) pass through
 * untouched: re-running a resize would only blur them.
 */
export async function geometricTransform(image: RgbImage, plan: PreprocessPlan, signal?: AbortSignal): Promise<RgbImage> {
  if (image.width <= 0 || image.height <= 0) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame has no pixels (${image.width}×${image.height})`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `a ${image.width}×${image.height} RGB frame needs ${image.width * image.height * 3} bytes, got ${image.data.length}`);
  }
  if (isModelSized(image, plan)) return image;
  let img = image;
  if (plan.pad === 'square' && img.width !== img.height) {
    // LLaVA-1.5 expand2square: square canvas of the longer side, source pasted centred.
    const side = Math.max(img.width, img.height);
    img = placeRgb(img, side, side, Math.floor((side - img.width) / 2), Math.floor((side - img.height) / 2), plan.padColor);
  }
  const resize = plan.resize;
  if (resize?.kind === 'exact') {
    if (plan.pad === 'fit') {
      const fit = fitSize(img.width, img.height, resize.width, resize.height);
      img = await resizeRgb(img, fit.width, fit.height, plan.kernel);
      if (fit.width !== resize.width || fit.height !== resize.height) {
        img = placeRgb(
          img,
          resize.width,
          resize.height,
          Math.floor((resize.width - fit.width) / 2),
          Math.floor((resize.height - fit.height) / 2),
          plan.padColor,
        );
      }
    } else {
      img = await resizeRgb(img, resize.width, resize.height, plan.kernel);
    }
  } else if (resize?.kind === 'shortest-edge') {
    // HF get_resize_output_image_size(default_to_square=False): the long side is truncated.
    const s = resize.shortestEdge;
    const landscape = img.width >= img.height;
    const short = landscape ? img.height : img.width;
    const long = landscape ? img.width : img.height;
    const newLong = Math.max(1, Math.floor((s * long) / short));
    img = await resizeRgb(img, landscape ? newLong : s, landscape ? s : newLong, plan.kernel);
  }
  throwIfAborted(signal);
  if (plan.centerCrop && (img.width !== plan.centerCrop.width || img.height !== plan.centerCrop.height)) {
    const { width: cw, height: ch } = plan.centerCrop;
    // HF center_crop: top = (h − ch) // 2; a smaller image is zero-padded around the centre.
    img = placeRgb(img, cw, ch, -Math.floor((img.width - cw) / 2), -Math.floor((img.height - ch) / 2), [0, 0, 0]);
  }
  if (img.width !== plan.outWidth || img.height !== plan.outHeight) {
    throw new WinnowError(
      'WINNOW_ERR_MODEL_CONFIG',
      `preprocessing produced ${img.width}×${img.height}, the model takes ${plan.outWidth}×${plan.outHeight}`,
    );
  }
  return img;
}

/** Full preprocessing of one image into `out` at `offset` (3 · outHeight · outWidth floats). */
export async function preprocessInto(
  image: RgbImage,
  plan: PreprocessPlan,
  out: Float32Array,
  offset: number,
  lut: Float32Array,
  signal?: AbortSignal,
): Promise<void> {
  const img = await geometricTransform(image, plan, signal);
  rgbToNormalizedChw(img, plan, out, offset, lut);
}

/** Convenience: a fresh [3, H, W] Float32Array for one image. */
export async function pixelValues(image: RgbImage, plan: PreprocessPlan, signal?: AbortSignal): Promise<Float32Array> {
  const out = new Float32Array(3 * plan.outHeight * plan.outWidth);
  await preprocessInto(image, plan, out, 0, normalizationTable(plan), signal);
  return out;
}
