// Fixtures for the prune tests: paths to the released codebooks (read from the workspace's
// ../shared, never copied), a seeded Gaussian generator, encoded frames and codebooks built from
// it, and an independent float64 plain-loop reference.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { seededRandom } from '../../src/prune/build/dpc-knn.js';
import type { Codebook } from '../../src/prune/codebook.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { repoRoot } from '../shared/index.js';

export const seedDir = resolve(repoRoot, '..', 'shared', 'seed-codebooks');
export const LLAVA15_PT = resolve(seedDir, 'llava15-454.pt');
export const LLAVAOV_PT = resolve(seedDir, 'llavaov-45.pt');
export const haveSeeds = existsSync(LLAVA15_PT) && existsSync(LLAVAOV_PT);

/** Seeded test data from the same generator the codebook builder uses for its tie-breaking noise. */
export const rng = seededRandom;

export function gaussian(seed: number): () => number {
  const u = rng(seed);
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/** An encoded frame of `tokens` on a gridH×gridW grid (no pixels), `index` 100 ms apart. */
export function frame(tokens: Float32Array, gridH: number, gridW: number, dim: number, index = 0, sourceId?: string): EncodedFrame {
  return { frame: { index, ptsMs: index * 100, width: 0, height: 0, data: new Uint8Array(0) }, tokens, numTokens: gridH * gridW, dim, gridH, gridW, ...(sourceId ? { sourceId } : {}) };
}

/** A codebook of `P` Gaussian prototypes of width `D`. */
export function synthCodebook(P: number, D: number, seed: number): Codebook {
  const g = gaussian(seed);
  return { prototypes: Float32Array.from({ length: P * D }, g), count: P, dim: D, dtype: 'F32', extraMetadata: {} };
}

/**
 * Token matrices that exercise every rule: pure noise tokens (low similarity) and noisy copies
 * of prototypes at several noise levels so cosine similarities straddle the thresholds.
 */
export function makeTokens(protos: Float32Array, P: number, D: number, L: number, seed: number, noiseScale: number): Float32Array {
  const g = gaussian(seed);
  const u = rng(seed + 1);
  const out = new Float32Array(L * D);
  for (let i = 0; i < L; i++) {
    const kind = u();
    if (kind < 0.3) {
      for (let k = 0; k < D; k++) out[i * D + k] = g() * noiseScale;
    } else {
      const p = Math.floor(u() * P);
      const sigma = noiseScale * [0.2, 0.5, 0.8, 1.0, 1.3, 2.0, 3.0][Math.floor(u() * 7)];
      for (let k = 0; k < D; k++) out[i * D + k] = protos[p * D + k] + g() * sigma;
    }
  }
  return out;
}

/** Independent reference: float64 cosine matrix with F.normalize's eps, plain loops. */
export function refCosine(tokens: ArrayLike<number>, L: number, protos: ArrayLike<number>, P: number, D: number): Float64Array {
  const pn = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    let s = 0;
    for (let k = 0; k < D; k++) s += protos[p * D + k] * protos[p * D + k];
    pn[p] = Math.max(Math.sqrt(s), 1e-12);
  }
  const S = new Float64Array(L * P);
  for (let i = 0; i < L; i++) {
    let s = 0;
    for (let k = 0; k < D; k++) s += tokens[i * D + k] * tokens[i * D + k];
    const tn = Math.max(Math.sqrt(s), 1e-12);
    for (let p = 0; p < P; p++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += tokens[i * D + k] * protos[p * D + k];
      S[i * P + p] = d / (tn * pn[p]);
    }
  }
  return S;
}

export function refMax(S: Float64Array, L: number, P: number): Float64Array {
  const m = new Float64Array(L);
  for (let i = 0; i < L; i++) {
    let best = -Infinity;
    for (let p = 0; p < P; p++) best = Math.max(best, S[i * P + p]);
    m[i] = best;
  }
  return m;
}

/** Python's round() (banker's rounding), written independently of src/prune/strategies.ts. */
export function pythonRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function refThreshold(s: Float64Array, tau: number): number[] {
  const kept: number[] = [];
  s.forEach((v, i) => {
    if (v < tau) kept.push(i);
  });
  return kept;
}

export function refRatio(s: Float64Array, r: number): number[] {
  const idx = Array.from(s, (_, i) => i);
  idx.sort((a, b) => s[a] - s[b] || a - b);
  return idx.slice(0, pythonRound(s.length * r)).sort((a, b) => a - b);
}

/** Per-token double-softmax scores, three plain passes per row, float64. */
export function refDoubleSoftmaxScores(S: ArrayLike<number>, L: number, P: number): number[] {
  const A1 = new Float64Array(L * P);
  for (let p = 0; p < P; p++) {
    let m = -Infinity;
    for (let i = 0; i < L; i++) m = Math.max(m, S[i * P + p]);
    let z = 0;
    for (let i = 0; i < L; i++) z += Math.exp(S[i * P + p] - m);
    for (let i = 0; i < L; i++) A1[i * P + p] = Math.exp(S[i * P + p] - m) / z;
  }
  const score: number[] = [];
  for (let i = 0; i < L; i++) {
    let m = -Infinity;
    for (let p = 0; p < P; p++) m = Math.max(m, S[i * P + p]);
    let z = 0;
    for (let p = 0; p < P; p++) z += Math.exp(S[i * P + p] - m);
    let best = -Infinity;
    for (let p = 0; p < P; p++) best = Math.max(best, A1[i * P + p] * (Math.exp(S[i * P + p] - m) / z));
    score.push(best);
  }
  return score;
}

export function refDoubleSoftmax(S: ArrayLike<number>, L: number, P: number, r: number): number[] {
  const score = refDoubleSoftmaxScores(S, L, P);
  const k = pythonRound(L * (1 - r));
  const desc = [...score].sort((a, b) => b - a);
  const kth = desc[k - 1];
  const kept: number[] = [];
  score.forEach((v, i) => {
    if (v < kth) kept.push(i);
  });
  return kept;
}
