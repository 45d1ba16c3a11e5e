// Steps 4-6 of building a codebook (docs/codebooks.md, "Building"): low-information tokens, the per-image small-cluster
// rule, and the global distinct-image rule, as the reference's dpcknn script applies them.
import { deriveSeed, dpcKnn, seededRandom } from './dpc-knn.js';

export interface SelectionOptions {
  /** Weight of the context-level JSD. Default 1. */
  kCtx: number;
  /** Weight of the global-level JSD. Default 16. */
  kGlob: number;
  /** Low-information iff kCtx·JSD_ctx + kGlob·JSD_glob < tauJsd … Default 2e-3. */
  tauJsd: number;
  /** … and top probability < tauP. Default 0.15. */
  tauP: number;
  /** Per-image DPC-KNN clusters. Default 8. */
  imageClusters: number;
  /** Only clusters of at most this many tokens contribute their low-information tokens. Default 8. */
  clusterSizeThreshold: number;
  /** Global DPC-KNN clusters. Default 64. */
  globalClusters: number;
  /** A global cluster is kept iff its members come from more than this many distinct images. Default 64. */
  minDistinctImages: number;
  /** DPC-KNN neighbours. Default 5. */
  knn: number;
  /** Seeds DPC-KNN's tie-breaking noise. */
  seed: number;
}

export function weightedJsd(ctx: number, glob: number, o: Pick<SelectionOptions, 'kCtx' | 'kGlob'>): number {
  return o.kCtx * ctx + o.kGlob * glob;
}

export function lowInformation(topProb: ArrayLike<number>, jsdCtx: ArrayLike<number>, jsdGlob: ArrayLike<number>, o: SelectionOptions): number[] {
  const out: number[] = [];
  for (let i = 0; i < topProb.length; i++) {
    if (weightedJsd(jsdCtx[i], jsdGlob[i], o) < o.tauJsd && topProb[i] < o.tauP) out.push(i);
  }
  return out;
}

/**
 * Step 5: DPC-KNN over all of the image's tokens; from clusters of at most clusterSizeThreshold
 * members keep the low-information ones. Noise is seeded per image (seed, image index) so a
 * resumed build draws exactly what an uninterrupted one would.
 */
export function selectImageTokens(tokens: Float32Array, count: number, dim: number, low: readonly number[], imageIndex: number, o: SelectionOptions): { selected: number[]; labels: Int32Array } {
  const random = seededRandom(deriveSeed(o.seed, 2 * imageIndex + 1));
  const { labels } = dpcKnn(tokens, count, dim, o.imageClusters, { k: o.knn, random });
  const size = new Int32Array(Math.max(1, o.imageClusters));
  for (let i = 0; i < count; i++) size[labels[i]]++;
  const selected = low.filter((i) => size[labels[i]] <= o.clusterSizeThreshold);
  return { selected, labels };
}

export interface GlobalSelection {
  /** Row indices (into the pooled selected rows) that become prototypes, in the reference's order. */
  rows: number[];
  /** Clusters formed and kept, with their distinct-image counts. */
  clusters: { size: number; distinctImages: number; kept: boolean }[];
}

/**
 * Step 6: DPC-KNN over every selected token of every image into globalClusters clusters; keep the
 * clusters whose members come from more than minDistinctImages distinct images. Prototypes are
 * listed cluster by cluster in order of first appearance, members in row order (as the reference
 * builds its dict).
 */
export function selectPrototypes(rows: Float32Array, count: number, dim: number, imageOfRow: readonly string[], o: SelectionOptions): GlobalSelection {
  if (count === 0) return { rows: [], clusters: [] };
  const random = seededRandom(deriveSeed(o.seed, 0));
  const { labels } = dpcKnn(rows, count, dim, o.globalClusters, { k: o.knn, random });
  const order: number[] = [];
  const members = new Map<number, number[]>();
  for (let r = 0; r < count; r++) {
    const c = labels[r];
    let m = members.get(c);
    if (!m) {
      m = [];
      members.set(c, m);
      order.push(c);
    }
    m.push(r);
  }
  const out: number[] = [];
  const clusters: GlobalSelection['clusters'] = [];
  for (const c of order) {
    const m = members.get(c) as number[];
    const distinct = new Set(m.map((r) => imageOfRow[r])).size;
    const kept = distinct > o.minDistinctImages;
    clusters.push({ size: m.length, distinctImages: distinct, kept });
    if (kept) out.push(...m);
  }
  return { rows: out, clusters };
}

/** Quantiles of a sample (nearest-rank on the sorted values). */
export function quantiles(values: ArrayLike<number>, qs: readonly number[] = [0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1]): Record<string, number> {
  const a = Float64Array.from(values as ArrayLike<number>).sort();
  const out: Record<string, number> = {};
  for (const q of qs) out[`p${Math.round(q * 100)}`] = a.length ? a[Math.min(a.length - 1, Math.max(0, Math.round(q * (a.length - 1))))] : NaN;
  return out;
}
