// Test vision encoders with the default model's I/O contract (or a deliberately wrong one), built
// with the shared ONNX writer.
import { buildModel, seededWeights, type ElemType, type Node, type ValueInfo } from '../../shared/index.js';

/**
 * A vision encoder with the default model's contract: pixel_values [B,3,S,S] → patchify Conv
 * (kernel = stride = patch) → image_features [B,(S/patch)²,D] and cls_similarity [B,(S/patch)²]
 * (mean over D, standing in for the real [CLS] similarity).
 */
export function patchEncoder(opts: {
  imageSize?: number;
  /** Height when the input is not square (imageSize is then the width). */
  imageHeight?: number;
  patch?: number;
  dim?: number;
  withCls?: boolean;
  inputName?: string;
  featuresName?: string;
  staticDim?: boolean;
  /** float16 input and outputs (as fp16 / q4f16 exports have), float32 inside via Cast. */
  float16?: boolean;
  /** Keep the convolution weights in this external-data file (bytes: `patchEncoderWeights`). */
  externalWeights?: string;
}): Uint8Array {
  const S = opts.imageSize ?? 112;
  const P = opts.patch ?? 8;
  const D = opts.dim ?? 32;
  const SH = opts.imageHeight ?? S;
  const tokens = (SH / P) * (S / P);
  const inputName = opts.inputName ?? 'pixel_values';
  const featuresName = opts.featuresName ?? 'image_features';
  const f16 = opts.float16 === true;
  const io: ElemType = f16 ? 'float16' : 'float32';
  const convIn = f16 ? 'px32' : inputName;
  const featsOut = f16 ? 'feats32' : featuresName;
  const nodes: Node[] = [];
  if (f16) nodes.push({ op: 'Cast', inputs: [inputName], outputs: ['px32'], attrs: { to: 1 } });
  nodes.push(
    { op: 'Conv', inputs: [convIn, 'W', 'Bias'], outputs: ['conv'], attrs: { kernel_shape: [P, P], strides: [P, P] } },
    { op: 'Reshape', inputs: ['conv', 'shape'], outputs: ['flat'] },
    { op: 'Transpose', inputs: ['flat'], outputs: [featsOut], attrs: { perm: [0, 2, 1] } },
  );
  if (f16) nodes.push({ op: 'Cast', inputs: ['feats32'], outputs: [featuresName], attrs: { to: 10 } });
  const outputs: ValueInfo[] = [{ name: featuresName, type: io, shape: ['batch', tokens, opts.staticDim === false ? 'dim' : D] }];
  if (opts.withCls !== false) {
    nodes.push({ op: 'ReduceMean', inputs: [featsOut], outputs: [f16 ? 'cls32' : 'cls_similarity'], attrs: { axes: [2], keepdims: 0 } });
    if (f16) nodes.push({ op: 'Cast', inputs: ['cls32'], outputs: ['cls_similarity'], attrs: { to: 10 } });
    outputs.push({ name: 'cls_similarity', type: io, shape: ['batch', tokens] });
  }
  return buildModel({
    nodes,
    inputs: [{ name: inputName, type: io, shape: ['batch', 3, SH, S] }],
    outputs,
    initializers: [
      { name: 'W', dims: [D, 3, P, P], data: patchEncoderWeights(opts), ...(opts.externalWeights ? { external: { location: opts.externalWeights, offset: 0 } } : {}) },
      { name: 'Bias', dims: [D], data: seededWeights(D, 11) },
      { name: 'shape', dims: [3], data: BigInt64Array.from([0n, BigInt(D), -1n]) },
    ],
  });
}

/** The convolution weights of `patchEncoder` (what its external-data file holds). */
export function patchEncoderWeights(opts: { patch?: number; dim?: number } = {}): Float32Array {
  const P = opts.patch ?? 8;
  const D = opts.dim ?? 32;
  return seededWeights(D * 3 * P * P, 7);
}
