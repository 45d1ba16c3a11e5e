// Optional last build step (not in the reference): merge near-duplicate prototypes. The global
// clustering makes EVERY member of a kept cluster a prototype, and on a small model whose
// background tokens barely vary that yields thousands of rows that are copies of a few hundred
// (the first winnow-tiny codebook: 6,015 rows, 218 distinct at cosine 0.995). The scoring GEMM
// costs O(P) per token, so copies cost time and buy nothing: the max cosine to a group is within
// a few hundredths of the max to its first member (codebooks/README.md has the measurements).
import { WinnowError, throwIfAborted } from '../../errors.js';

/**
 * Default of the builder's mergeCosine. On the first winnow-tiny codebook (6,015 rows) it kept 89
 * prototypes, with the same frame-question accuracy and 98.3 % of threshold decisions unchanged
 * on held-out stills; the paper's LLaVA-1.5 codebook goes 454 → 407 (codebooks/README.md).
 */
export const DEFAULT_MERGE_COSINE = 0.99;

export interface MergeResult {
  /** Rows kept, ascending: each is the first row of its group (a real token, not an average). */
  keep: number[];
  /** For every input row, the position in `keep` of the row that represents it. */
  groupOf: Int32Array;
}

/**
 * Greedy leader merge in row order: a row joins the first kept row whose cosine similarity to it
 * is ≥ minCosine, else it is kept. Deterministic and order-preserving, so the codebook's listing
 * (cluster by cluster, members in row order) survives in the kept rows. O(P · kept · D).
 */
export function mergeNearDuplicates(rows: Float32Array, count: number, dim: number, minCosine: number, signal?: AbortSignal): MergeResult {
  if (!(minCosine > 0 && minCosine <= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `merge cosine must be in (0, 1], got ${minCosine}`);
  if (rows.length < count * dim) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `rows hold ${rows.length} values, need ${count} × ${dim}`);
  // Unit rows of the kept prototypes only, packed; grows by doubling.
  let leaders = new Float32Array(Math.min(count, 64) * dim);
  const keep: number[] = [];
  const groupOf = new Int32Array(count);
  const unit = new Float32Array(dim);
  for (let r = 0; r < count; r++) {
    if ((r & 1023) === 0) throwIfAborted(signal);
    const base = r * dim;
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += rows[base + k] * rows[base + k];
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let k = 0; k < dim; k++) unit[k] = rows[base + k] * inv;
    let group = -1;
    for (let g = 0; g < keep.length && group < 0; g++) {
      const lb = g * dim;
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += unit[k] * leaders[lb + k];
      if (dot >= minCosine) group = g;
    }
    if (group < 0) {
      group = keep.length;
      if ((group + 1) * dim > leaders.length) {
        const grown = new Float32Array(Math.min(count, 2 * (group + 1)) * dim);
        grown.set(leaders);
        leaders = grown;
      }
      leaders.set(unit, group * dim);
      keep.push(r);
    }
    groupOf[r] = group;
  }
  return { keep, groupOf };
}
