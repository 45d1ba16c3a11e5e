// Spatial pooling of a token grid (video mode). Tokens are [h·w, D] row-major in raster order;
// the output grid is ceil(h/stride) × ceil(w/stride), also raster order.
import { WinnowError } from '../errors.js';
import type { PoolingSpec } from '../model/config.js';

export interface PooledGrid {
  tokens: Float32Array;
  gridH: number;
  gridW: number;
}

export function pooledGridSize(gridH: number, gridW: number, stride: number): { gridH: number; gridW: number } {
  return { gridH: Math.ceil(gridH / stride), gridW: Math.ceil(gridW / stride) };
}

function check(tokens: Float32Array, gridH: number, gridW: number, dim: number, stride: number): void {
  if (!Number.isInteger(stride) || stride < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `pooling stride must be a positive integer, got ${stride}`);
  if (tokens.length !== gridH * gridW * dim) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `token buffer holds ${tokens.length} values, grid ${gridH}×${gridW}×${dim} needs ${gridH * gridW * dim}`);
  }
}

/**
 * Window pooling (avg or max) with stride × stride windows; windows hanging over the bottom or
 * right edge use the cells that exist (PyTorch avg_pool2d with ceil_mode=True,
 * count_include_pad=False).
 */
function windowPool(tokens: Float32Array, gridH: number, gridW: number, dim: number, stride: number, mode: 'avg' | 'max'): PooledGrid {
  const { gridH: oh, gridW: ow } = pooledGridSize(gridH, gridW, stride);
  const out = new Float32Array(oh * ow * dim);
  // Accumulate in float64: sums of float32 rows would otherwise depend on summation order.
  const acc = new Float64Array(dim);
  for (let oy = 0; oy < oh; oy++) {
    const y0 = oy * stride;
    const y1 = Math.min(gridH, y0 + stride);
    for (let ox = 0; ox < ow; ox++) {
      const x0 = ox * stride;
      const x1 = Math.min(gridW, x0 + stride);
      acc.fill(mode === 'max' ? -Infinity : 0);
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const base = (y * gridW + x) * dim;
          if (mode === 'max') {
            for (let d = 0; d < dim; d++) if (tokens[base + d] > acc[d]) acc[d] = tokens[base + d];
          } else {
            for (let d = 0; d < dim; d++) acc[d] += tokens[base + d];
          }
        }
      }
      const o = (oy * ow + ox) * dim;
      const count = mode === 'max' ? 1 : (y1 - y0) * (x1 - x0);
      for (let d = 0; d < dim; d++) out[o + d] = acc[d] / count;
    }
  }
  return { tokens: out, gridH: oh, gridW: ow };
}

/**
 * Source coordinate of output cell `i` for PyTorch's bilinear interpolation with
 * align_corners=False and an explicit output size: (i + 0.5)·in/out − 0.5, clamped at 0.
 */
function sourceIndex(i: number, inSize: number, outSize: number): { i0: number; i1: number; w1: number } {
  const src = Math.max(0, ((i + 0.5) * inSize) / outSize - 0.5);
  const i0 = Math.min(Math.floor(src), inSize - 1);
  const i1 = Math.min(i0 + 1, inSize - 1);
  return { i0, i1, w1: src - i0 };
}

/**
 * LLaVA-OneVision's video pooling: F.interpolate(grid, size=(ceil(h/s), ceil(w/s)),
 * mode='bilinear') with align_corners=False. For an even grid and stride 2 this equals 2×2 avg.
 */
function bilinearPool(tokens: Float32Array, gridH: number, gridW: number, dim: number, stride: number): PooledGrid {
  const { gridH: oh, gridW: ow } = pooledGridSize(gridH, gridW, stride);
  const out = new Float32Array(oh * ow * dim);
  const xs = Array.from({ length: ow }, (_, x) => sourceIndex(x, gridW, ow));
  for (let oy = 0; oy < oh; oy++) {
    const { i0: y0, i1: y1, w1: wy } = sourceIndex(oy, gridH, oh);
    for (let ox = 0; ox < ow; ox++) {
      const { i0: x0, i1: x1, w1: wx } = xs[ox];
      const w00 = (1 - wy) * (1 - wx);
      const w01 = (1 - wy) * wx;
      const w10 = wy * (1 - wx);
      const w11 = wy * wx;
      const a = (y0 * gridW + x0) * dim;
      const b = (y0 * gridW + x1) * dim;
      const c = (y1 * gridW + x0) * dim;
      const e = (y1 * gridW + x1) * dim;
      const o = (oy * ow + ox) * dim;
      for (let d = 0; d < dim; d++) {
        out[o + d] = w00 * tokens[a + d] + w01 * tokens[b + d] + w10 * tokens[c + d] + w11 * tokens[e + d];
      }
    }
  }
  return { tokens: out, gridH: oh, gridW: ow };
}

/** Pools a [gridH·gridW, dim] token grid. stride 1 returns a copy of the input grid. */
export function poolTokenGrid(tokens: Float32Array, gridH: number, gridW: number, dim: number, spec: PoolingSpec): PooledGrid {
  check(tokens, gridH, gridW, dim, spec.stride);
  if (spec.stride === 1) return { tokens: tokens.slice(), gridH, gridW };
  switch (spec.mode) {
    case 'avg':
    case 'max':
      return windowPool(tokens, gridH, gridW, dim, spec.stride, spec.mode);
    case 'bilinear':
      return bilinearPool(tokens, gridH, gridW, dim, spec.stride);
    default: {
      const never: never = spec.mode;
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown pooling mode ${String(never)}`);
    }
  }
}
