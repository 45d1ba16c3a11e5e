// Token-selection rules, each a pure function returning kept indices in ascending (original)
// order. Semantics mirror the reference implementation (docs/pruning.md, "The method"), including
// Python's round-half-to-even in round(L·r) and the strict "<" comparisons.
import { WinnowError } from '../errors.js';

/** Python 3's round(): ties go to the even neighbour (round(364.5) === 364). */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function checkRatio(ratio: number | undefined, name: string): number {
  if (ratio === undefined || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} needs a ratio in [0, 1], got ${String(ratio)}`);
  }
  return ratio;
}

function fromMask(mask: Uint8Array, n: number): Int32Array {
  let count = 0;
  for (let i = 0; i < n; i++) count += mask[i];
  const out = new Int32Array(count);
  let j = 0;
  for (let i = 0; i < n; i++) if (mask[i]) out[j++] = i;
  return out;
}

/** Indices of the k smallest values (ties broken by lower index), returned ascending by index. */
export function lowestK(values: ArrayLike<number>, n: number, k: number): Int32Array {
  const kk = Math.max(0, Math.min(n, k));
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // NaN sorts last so a token without a score is never preferred.
  order.sort((a, b) => {
    const va = values[a];
    const vb = values[b];
    if (va === vb) return a - b;
    if (Number.isNaN(va)) return 1;
    if (Number.isNaN(vb)) return -1;
    return va < vb ? -1 : 1;
  });
  return order.subarray(0, kk).sort();
}

/** `high_info_patch`: keep token i iff s_i < τ. */
export function thresholdStrategy(scores: ArrayLike<number>, numTokens: number, tau: number): Int32Array {
  if (!Number.isFinite(tau)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `threshold needs a finite tau, got ${tau}`);
  const mask = new Uint8Array(numTokens);
  for (let i = 0; i < numTokens; i++) mask[i] = scores[i] < tau ? 1 : 0;
  return fromMask(mask, numTokens);
}

/** `high_info_patch_fix_num`: keep the round(L·r) tokens with the lowest s_i (ties: lower index first). */
export function ratioStrategy(scores: ArrayLike<number>, numTokens: number, ratio: number): Int32Array {
  return lowestK(scores, numTokens, pyRound(numTokens * checkRatio(ratio, 'ratio')));
}

/**
 * `high_info_patch_double_smx`: A = softmax(S, over tokens) ⊙ softmax(S, over prototypes),
 * score_i = max_p A_ip; with k = round(L·(1−r)) and t = the k-th largest score (counting
 * duplicates, as torch.topk does), keep i iff score_i < t. Tokens tied with t are dropped, so
 * at most L−k are kept. k = 0 (r = 1) keeps everything.
 * @param sim L×P cosine matrix, row-major.
 * @param outScores optional per-token double-softmax scores (length ≥ L).
 * @param scratch optional reusable buffer of at least L·P + P values (callers scoring many
 *   frames pass one so the L×P exponentials are not reallocated per frame).
 */
export function doubleSoftmaxStrategy(
  sim: ArrayLike<number>,
  numTokens: number,
  numPrototypes: number,
  ratio: number,
  outScores?: Float64Array,
  scratch?: Float64Array,
): Int32Array {
  const r = checkRatio(ratio, 'double-softmax');
  const L = numTokens;
  const P = numPrototypes;
  if (L === 0) return new Int32Array(0);
  const need = L * P + P;
  const buf = scratch && scratch.length >= need ? scratch : new Float64Array(need);
  // Every exponential is computed once and kept (e1: over tokens, e2: one row over prototypes);
  // the arithmetic per element is the same expression as the plain three-pass form, in float64.
  const e1 = buf.subarray(0, L * P);
  const e2 = buf.subarray(L * P, L * P + P);
  // Softmax over tokens (per prototype column): column max and partition sums.
  const colMax = new Float64Array(P).fill(-Infinity);
  for (let i = 0; i < L; i++) for (let p = 0; p < P; p++) if (sim[i * P + p] > colMax[p]) colMax[p] = sim[i * P + p];
  const colSum = new Float64Array(P);
  for (let i = 0; i < L; i++) {
    const b = i * P;
    for (let p = 0; p < P; p++) {
      const e = Math.exp(sim[b + p] - colMax[p]);
      e1[b + p] = e;
      colSum[p] += e;
    }
  }
  const score = outScores ?? new Float64Array(L);
  for (let i = 0; i < L; i++) {
    const b = i * P;
    let rowMax = -Infinity;
    for (let p = 0; p < P; p++) if (sim[b + p] > rowMax) rowMax = sim[b + p];
    let rowSum = 0;
    for (let p = 0; p < P; p++) {
      const e = Math.exp(sim[b + p] - rowMax);
      e2[p] = e;
      rowSum += e;
    }
    let best = -Infinity;
    for (let p = 0; p < P; p++) {
      const a = (e1[b + p] / colSum[p]) * (e2[p] / rowSum);
      if (a > best) best = a;
    }
    score[i] = best;
  }
  const k = pyRound(L * (1 - r));
  if (k <= 0) return Int32Array.from({ length: L }, (_, i) => i);
  const sorted = Float64Array.from(score.subarray(0, L)).sort();
  const kth = sorted[L - k];
  const mask = new Uint8Array(L);
  for (let i = 0; i < L; i++) mask[i] = score[i] < kth ? 1 : 0;
  return fromMask(mask, L);
}

/** A small, fast, well-mixed 32-bit PRNG (mulberry32); deterministic for a given seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `random_patch`: keep `count` tokens uniformly at random (partial Fisher–Yates), seeded. */
export function randomStrategy(numTokens: number, count: number, seed: number): Int32Array {
  const k = Math.max(0, Math.min(numTokens, Math.floor(count)));
  const rnd = mulberry32(seed);
  const perm = new Int32Array(numTokens);
  for (let i = 0; i < numTokens; i++) perm[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (numTokens - i));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm.subarray(0, k).sort();
}

/**
 * Uniform spatial subsampling: picks an hs×ws sub-grid (aspect kept, hs·ws ≈ count) of the
 * gridH×gridW grid, at cell centres. Returns exactly min(count, L) tokens by topping up /
 * trimming along the raster order of the remaining cells only when the sub-grid cannot match.
 */
export function poolStrategy(gridH: number, gridW: number, count: number): Int32Array {
  const L = gridH * gridW;
  const k = Math.max(0, Math.min(L, Math.floor(count)));
  if (k === 0) return new Int32Array(0);
  if (k === L) return Int32Array.from({ length: L }, (_, i) => i);
  let hs = Math.max(1, Math.min(gridH, Math.round(Math.sqrt((k * gridH) / gridW))));
  let ws = Math.max(1, Math.min(gridW, Math.floor(k / hs)));
  if (hs * ws > k) hs = Math.max(1, Math.floor(k / ws));
  const mask = new Uint8Array(L);
  let chosen = 0;
  for (let r = 0; r < hs; r++) {
    const y = Math.floor(((r + 0.5) * gridH) / hs);
    for (let c = 0; c < ws; c++) {
      const x = Math.floor(((c + 0.5) * gridW) / ws);
      if (!mask[y * gridW + x]) {
        mask[y * gridW + x] = 1;
        chosen++;
      }
    }
  }
  // Spread the few leftover picks evenly over the unchosen cells.
  const rest = k - chosen;
  if (rest > 0) {
    const free: number[] = [];
    for (let i = 0; i < L; i++) if (!mask[i]) free.push(i);
    for (let j = 0; j < rest; j++) mask[free[Math.floor(((j + 0.5) * free.length) / rest)]] = 1;
  }
  return fromMask(mask, L);
}

/** `low_sim_patch` / `high_sim_patch`: keep round(L·r) tokens with the lowest / highest [CLS] similarity. */
export function clsStrategy(clsSimilarity: ArrayLike<number>, numTokens: number, ratio: number, mode: 'low' | 'high'): Int32Array {
  const k = pyRound(numTokens * checkRatio(ratio, 'cls'));
  if (mode === 'low') return lowestK(clsSimilarity, numTokens, k);
  const neg = new Float64Array(numTokens);
  for (let i = 0; i < numTokens; i++) neg[i] = -clsSimilarity[i];
  return lowestK(neg, numTokens, k);
}

export function noneStrategy(numTokens: number): Int32Array {
  return Int32Array.from({ length: numTokens }, (_, i) => i);
}
