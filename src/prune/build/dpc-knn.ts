// DPC-KNN (density-peaks clustering with k nearest neighbours), as TCFormer's cluster_dpc_knn,
// which the reference code calls for both of its clustering steps. Distances are computed on the
// fly (two O(n²·D) passes) so memory stays O(n + clusterNum·n), never an n × n matrix: the global
// step clusters every kept token of every image.
import { WinnowError } from '../../errors.js';

export interface DpcKnnOptions {
  /** Neighbours for the density (the point itself counts as its own nearest one, as in torch.topk). Default 5. */
  k?: number;
  /**
   * Tie-breaking noise added to every density: noise[i] for point i when given, else
   * `random() · noiseScale`. Default scale 1e-6 (the reference's), `random` seeded by the caller.
   */
  noise?: Float64Array;
  random?: () => number;
  noiseScale?: number;
}

export interface DpcKnnResult {
  /** Cluster of each point, 0..clusters-1; cluster c is the one of centres[c]. */
  labels: Int32Array;
  /** Centre point indices, by descending ρ·δ. */
  centres: Int32Array;
  density: Float64Array;
  /** Distance to the nearest denser point (the largest pairwise distance for the densest one). */
  delta: Float64Array;
}

function dist(points: Float32Array, dim: number, i: number, j: number, invSqrtD: number): number {
  let s = 0;
  const a = i * dim;
  const b = j * dim;
  for (let t = 0; t < dim; t++) {
    const d = points[a + t] - points[b + t];
    s += d * d;
  }
  return Math.sqrt(s) * invSqrtD;
}

/**
 * Clusters `count` points of width `dim` (row-major in `points`) into min(clusterNum, count)
 * clusters. d_ij = ‖x_i − x_j‖ / √D; ρ_i = exp(−mean of the squared distances to the k nearest
 * points, itself included) + noise; δ_i = distance to the nearest point of higher ρ (the largest
 * pairwise distance for the densest point); centres = the points with the largest ρ·δ; every
 * point joins its nearest centre and every centre its own cluster.
 */
export function dpcKnn(points: Float32Array, count: number, dim: number, clusterNum: number, options: DpcKnnOptions = {}): DpcKnnResult {
  const k = options.k ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `k must be a positive integer, got ${k}`);
  if (!Number.isInteger(clusterNum) || clusterNum < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `clusterNum must be a positive integer, got ${clusterNum}`);
  if (points.length < count * dim) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `points hold ${points.length} values, need ${count} × ${dim}`);
  if (options.noise && options.noise.length < count) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'noise must have one value per point');
  const n = count;
  const kk = Math.min(k, n);
  const invSqrtD = 1 / Math.sqrt(dim);
  const density = new Float64Array(n);
  const delta = new Float64Array(n);
  if (n === 0) return { labels: new Int32Array(0), centres: new Int32Array(0), density, delta };

  // Pass 1: k smallest distances per row (insertion into a sorted buffer of size k) and the max.
  const best = new Float64Array(kk);
  let maxDist = 0;
  for (let i = 0; i < n; i++) {
    best.fill(Infinity);
    for (let j = 0; j < n; j++) {
      const d = i === j ? 0 : dist(points, dim, i, j, invSqrtD);
      if (d > maxDist) maxDist = d;
      if (d < best[kk - 1]) {
        let p = kk - 1;
        while (p > 0 && best[p - 1] > d) {
          best[p] = best[p - 1];
          p--;
        }
        best[p] = d;
      }
    }
    let s = 0;
    for (let t = 0; t < kk; t++) s += best[t] * best[t];
    density[i] = Math.exp(-s / kk);
  }
  const scale = options.noiseScale ?? 1e-6;
  for (let i = 0; i < n; i++) {
    density[i] += options.noise ? options.noise[i] : options.random ? options.random() * scale : 0;
  }

  // Pass 2: δ. Masked entries count as maxDist, as the reference's dist·mask + max·(1−mask).
  for (let i = 0; i < n; i++) {
    let m = maxDist;
    const di = density[i];
    for (let j = 0; j < n; j++) {
      if (density[j] > di) {
        const d = dist(points, dim, i, j, invSqrtD);
        if (d < m) m = d;
      }
    }
    delta[i] = m;
  }

  // Centres: top clusters by ρ·δ (stable on ties: lower index first).
  const c = Math.min(clusterNum, n);
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => density[b] * delta[b] - density[a] * delta[a] || a - b);
  const centres = Int32Array.from(order.slice(0, c));

  // Assignment: nearest centre (first on ties, as argmin), then centres own themselves.
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let bestC = 0;
    let bestD = Infinity;
    for (let t = 0; t < c; t++) {
      const d = dist(points, dim, i, centres[t], invSqrtD);
      if (d < bestD) {
        bestD = d;
        bestC = t;
      }
    }
    labels[i] = bestC;
  }
  for (let t = 0; t < c; t++) labels[centres[t]] = t;
  return { labels, centres, density, delta };
}

/** A small seeded generator (mulberry32) for the tie-breaking noise. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a run seed with a stream number (image index, stage) into an independent 32-bit seed. */
export function deriveSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream + 1) >>> 0, 0x85ebca77)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  return h >>> 0;
}
