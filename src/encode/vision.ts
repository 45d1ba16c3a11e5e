// The vision encoder's side of a model folder: what it takes and gives (established from its
// metadata and a warm-up run, checked against preprocessor_config.json and config.json), and one
// run of it over a batch of pixel_values, with every onnxruntime tensor disposed before returning.
import * as ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted, toWinnowError } from '../errors.js';
import { contractError, staticDim, type ComponentSession } from '../model/contract.js';
import type { ModelConfig } from '../model/config.js';
import { f16BitsToF32, f32ToF16Bits } from '../prune/float16.js';
import type { PreprocessPlan } from './preprocessor-config.js';

/** Facts about the vision encoder, established from metadata and the warm-up run. */
export interface VisionEncoderInfo {
  inputType: 'float32' | 'float16';
  imageHeight: number;
  imageWidth: number;
  numTokens: number;
  dim: number;
  gridH: number;
  gridW: number;
  hasClsSimilarity: boolean;
  /** The encoder outputs patch_classes (needed by config.json winnow.temporal_identity). */
  hasPatchClasses: boolean;
}

export interface VisionOutput {
  /** One [numTokens · dim] array per image of the batch, owned by the caller. */
  features: Float32Array[];
  /** One [numTokens] array per image when the encoder outputs cls_similarity. */
  clsSimilarity: Float32Array[] | undefined;
  /** One [numTokens] array of class ids per image when the encoder outputs patch_classes. */
  patchClasses: Int32Array[] | undefined;
}

/**
 * The grid of a token sequence: input size / patch size when that accounts for every token
 * (non-square inputs), else vision_config.image_size / patch_size, else a square.
 */
export function tokenGrid(
  numTokens: number,
  config: ModelConfig,
  input?: { height: number; width: number },
): { gridH: number; gridW: number } | undefined {
  const { visionImageSize: s, visionPatchSize: p } = config;
  if (p && input && input.height % p === 0 && input.width % p === 0 && (input.height / p) * (input.width / p) === numTokens) {
    return { gridH: input.height / p, gridW: input.width / p };
  }
  if (s && p && (s / p) * (s / p) === numTokens) return { gridH: s / p, gridW: s / p };
  const side = Math.round(Math.sqrt(numTokens));
  if (side * side === numTokens) return { gridH: side, gridW: side };
  return undefined;
}

/** An opened, checked vision encoder. Created by ModelFolder, which owns the session. */
export class VisionEncoder {
  readonly #inflight = new Set<Promise<unknown>>();

  private constructor(
    readonly component: ComponentSession,
    readonly info: VisionEncoderInfo,
  ) {}

  /**
   * Checks the encoder against the preprocessor's output size and the model's width, and learns
   * its token count and grid (from a warm-up run when the metadata leaves N or D symbolic).
   */
  static async open(component: ComponentSession, config: ModelConfig, plan: PreprocessPlan, warmUp: boolean, signal?: AbortSignal): Promise<VisionEncoder> {
    const px = component.inputs.get('pixel_values')!;
    const feats = component.outputs.get('image_features')!;
    const h = staticDim(px, 2);
    const w = staticDim(px, 3);
    if ((h !== undefined && h !== plan.outHeight) || (w !== undefined && w !== plan.outWidth)) {
      throw contractError(
        'vision_encoder',
        component.file,
        `pixel_values takes ${h ?? '?'}×${w ?? '?'} but preprocessor_config.json produces ${plan.outHeight}×${plan.outWidth}`,
        { shape: px.shape },
      );
    }
    const dimStatic = staticDim(feats, 2);
    if (dimStatic !== undefined && config.hiddenSize !== undefined && dimStatic !== config.hiddenSize) {
      throw contractError('vision_encoder', component.file, `image_features width ${dimStatic} ≠ text_config.hidden_size ${config.hiddenSize}`, {
        shape: feats.shape,
      });
    }
    const info: VisionEncoderInfo = {
      inputType: px.type === 'float16' ? 'float16' : 'float32',
      imageHeight: plan.outHeight,
      imageWidth: plan.outWidth,
      numTokens: staticDim(feats, 1) ?? 0,
      dim: dimStatic ?? config.hiddenSize ?? 0,
      gridH: 0,
      gridW: 0,
      hasClsSimilarity: component.outputs.has('cls_similarity'),
      hasPatchClasses: component.outputs.has('patch_classes'),
    };
    if (config.winnow.temporalIdentity && !info.hasPatchClasses) {
      throw contractError('vision_encoder', component.file, 'config.json declares winnow.temporal_identity but the encoder has no patch_classes output');
    }
    const encoder = new VisionEncoder(component, info);
    if (warmUp || info.numTokens === 0 || info.dim === 0) {
      // The warm-up doubles as the shape probe when the metadata leaves N or D symbolic.
      const out = await encoder.run(new Float32Array(3 * plan.outHeight * plan.outWidth), 1, signal);
      info.numTokens = out.features[0].length / (info.dim || 1);
      if (!info.dim) {
        throw contractError('vision_encoder', component.file, 'cannot tell the token width: image_features has a symbolic last dim and config.json has no text_config.hidden_size');
      }
    }
    const grid = tokenGrid(info.numTokens, config, { height: plan.outHeight, width: plan.outWidth });
    if (!grid) {
      throw contractError('vision_encoder', component.file, `${info.numTokens} tokens do not form a grid (vision_config image_size/patch_size missing or inconsistent)`);
    }
    info.gridH = grid.gridH;
    info.gridW = grid.gridW;
    return encoder;
  }

  /** Runs in progress. */
  get inflightRuns(): number {
    return this.#inflight.size;
  }

  /** Resolves when every run started so far has ended (however it ended). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /**
   * Runs the encoder on `batch` images laid out [batch, 3, H, W] at the start of `pixels`. Every
   * onnxruntime tensor is disposed before this resolves or rejects; the returned arrays are
   * copies the caller owns.
   */
  async run(pixels: Float32Array, batch: number, signal?: AbortSignal): Promise<VisionOutput> {
    throwIfAborted(signal);
    const { imageHeight: H, imageWidth: W, inputType } = this.info;
    const file = this.component.file;
    const n = batch * 3 * H * W;
    if (batch < 1 || pixels.length < n) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `pixel buffer holds ${pixels.length} floats, ${batch} images need ${n}`);
    }
    const view = pixels.length === n ? pixels : pixels.subarray(0, n);
    const input = inputType === 'float16' ? new ort.Tensor('float16', toF16(view), [batch, 3, H, W]) : new ort.Tensor('float32', view, [batch, 3, H, W]);
    const run = this.component.session.run({ pixel_values: input });
    this.#inflight.add(run);
    let results: ort.InferenceSession.OnnxValueMapType | undefined;
    try {
      results = await run;
    } catch (e) {
      throw toWinnowError(e, 'WINNOW_ERR_INFERENCE');
    } finally {
      this.#inflight.delete(run);
      input.dispose();
    }
    try {
      throwIfAborted(signal);
      const feats = results.image_features;
      if (!feats || feats.dims.length !== 3 || feats.dims[0] !== batch) {
        throw contractError('vision_encoder', file, `image_features came back as [${feats?.dims.join(',') ?? ''}], expected [${batch},N,D]`);
      }
      const per = feats.dims[1] * feats.dims[2];
      if (this.info.dim && feats.dims[2] !== this.info.dim) {
        throw contractError('vision_encoder', file, `image_features width ${feats.dims[2]}, expected ${this.info.dim}`);
      }
      const features: Float32Array[] = [];
      for (let b = 0; b < batch; b++) features.push(toF32Slice(feats.data, b * per, (b + 1) * per));
      // Per-token outputs ([B,N]), split per image.
      const nTok = feats.dims[1];
      const out = results;
      const perToken = <T>(name: string, slice: (data: ort.Tensor['data'], from: number, to: number) => T): T[] | undefined => {
        const t = out[name];
        if (!t) return undefined;
        if (t.dims.length !== 2 || t.dims[0] !== batch || t.dims[1] !== nTok) {
          throw contractError('vision_encoder', file, `${name} came back as [${t.dims.join(',')}], expected [${batch},${nTok}]`);
        }
        return Array.from({ length: batch }, (_, b) => slice(t.data, b * nTok, (b + 1) * nTok));
      };
      return { features, clsSimilarity: perToken('cls_similarity', toF32Slice), patchClasses: perToken('patch_classes', toI32Slice) };
    } finally {
      for (const t of Object.values(results)) t.dispose();
    }
  }
}

function toF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

function toF32Slice(data: ort.Tensor['data'], start: number, end: number): Float32Array {
  if (data instanceof Float32Array) return data.slice(start, end);
  if (data instanceof Uint16Array) {
    const out = new Float32Array(end - start);
    for (let i = start; i < end; i++) out[i - start] = f16BitsToF32(data[i]);
    return out;
  }
  throw new WinnowError('WINNOW_ERR_INFERENCE', 'vision encoder returned a tensor that is neither float32 nor float16');
}

/** Class ids of data[from..to): int64 outputs arrive as a BigInt64Array; the ids are small. */
function toI32Slice(data: ort.Tensor['data'], from: number, to: number): Int32Array {
  const src = data as ArrayLike<number | bigint>;
  const out = new Int32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = Number(src[i]);
  return out;
}
