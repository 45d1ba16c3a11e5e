// The two per-token measures of the reference code, on first-token logits:
// - top probability: softmax over the top-k (50) logits, its largest value;
// - JSD: both runs' logits restricted to the unablated run's top-k (10) vocabulary entries,
//   softmaxed, and 0.5·(KL_mean(M‖P) + KL_mean(M‖Q)) with M = (P+Q)/2. "KL_mean" averages, not
//   sums, over the k entries and, like torch's F.kl_div(log P, M), measures KL(M‖P).

/** Indices of the `k` largest values (descending; lower index first on ties), written into `out`. */
export function topKIndices(values: ArrayLike<number>, k: number, out: Int32Array = new Int32Array(Math.min(k, values.length))): Int32Array {
  const n = values.length;
  const kk = Math.min(k, n, out.length);
  let filled = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (filled < kk) {
      let p = filled++;
      while (p > 0 && values[out[p - 1]] < v) {
        out[p] = out[p - 1];
        p--;
      }
      out[p] = i;
    } else if (v > values[out[kk - 1]]) {
      let p = kk - 1;
      while (p > 0 && values[out[p - 1]] < v) {
        out[p] = out[p - 1];
        p--;
      }
      out[p] = i;
    }
  }
  return kk === out.length ? out : out.subarray(0, kk);
}

/** max softmax(top-k logits) = 1 / Σ_j exp(l_j − l_max) over the k largest logits. */
export function topProbability(logits: ArrayLike<number>, k = 50, scratch?: Int32Array): number {
  const idx = topKIndices(logits, k, scratch);
  const max = logits[idx[0]];
  let s = 0;
  for (let j = 0; j < idx.length; j++) s += Math.exp(logits[idx[j]] - max);
  return 1 / s;
}

function logSoftmaxAt(logits: ArrayLike<number>, idx: Int32Array, out: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < idx.length; j++) max = Math.max(max, logits[idx[j]]);
  let s = 0;
  for (let j = 0; j < idx.length; j++) s += Math.exp(logits[idx[j]] - max);
  const lse = max + Math.log(s);
  for (let j = 0; j < idx.length; j++) out[j] = logits[idx[j]] - lse;
}

/** Reusable scratch for jsdTopK (no allocation per token on the hot path). */
export class JsdScratch {
  readonly idx: Int32Array;
  readonly logP: Float64Array;
  readonly logQ: Float64Array;
  constructor(readonly k: number) {
    this.idx = new Int32Array(k);
    this.logP = new Float64Array(k);
    this.logQ = new Float64Array(k);
  }
}

/**
 * Jensen–Shannon divergence of the reference between the unablated (`base`) and ablated (`ref`)
 * first-token logits, on the base run's top-k entries.
 */
export function jsdTopK(base: ArrayLike<number>, ref: ArrayLike<number>, k = 10, scratch: JsdScratch = new JsdScratch(Math.min(k, base.length))): number {
  const idx = topKIndices(base, k, scratch.idx);
  const n = idx.length;
  const lp = scratch.logP;
  const lq = scratch.logQ;
  logSoftmaxAt(base, idx, lp);
  logSoftmaxAt(ref, idx, lq);
  let kl1 = 0;
  let kl2 = 0;
  for (let j = 0; j < n; j++) {
    const m = 0.5 * (Math.exp(lp[j]) + Math.exp(lq[j]));
    if (m <= 0) continue; // F.kl_div's 0·log 0 = 0
    const lm = Math.log(m);
    kl1 += m * (lm - lp[j]);
    kl2 += m * (lm - lq[j]);
  }
  return 0.5 * (kl1 / n + kl2 / n);
}
