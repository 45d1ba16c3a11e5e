// Nearest-prototype search: for every token of a frame, the maximum cosine similarity to the
// codebook and the prototype reaching it. Backends:
//  - exact/ort: one MatMul through onnxruntime (MLAS GEMM), the default; see bench/prune.
//  - exact/js:  a register-blocked 4×4 scalar loop, for when onnxruntime is unwanted.
//  - hnsw:      hnswlib-node, cosine space; approximate, wins only for very large codebooks.
import type * as Ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../errors.js';
import { buildCosineModel } from './onnx-cosine.js';

export type IndexBackend = 'exact' | 'hnsw' | 'auto';
export type ExactKernel = 'ort' | 'js';

export interface HnswOptions {
  /** Graph degree. Default 16. */
  m?: number;
  /** Build-time candidate list size. Default 200. */
  efConstruction?: number;
  /** Query-time candidate list size. Default 64 (≥ 99.9 % keep-decision agreement, see bench/prune). */
  ef?: number;
  /** Seed of the level generator, for reproducible graphs. Default 100. */
  randomSeed?: number;
}

export interface PrototypeIndexOptions {
  backend?: IndexBackend;
  /** Kernel of the exact backend. Default 'ort'. */
  exactKernel?: ExactKernel;
  /** onnxruntime intra-op threads for the exact kernel. Default 1 (the encoder owns the other cores). */
  threads?: number;
  hnsw?: HnswOptions;
  /**
   * `auto` switches to HNSW when prototypes × width exceeds this many elements. Default
   * 50 000 000 (about 12 000 prototypes of width 4096): below it the exact GEMM was faster in
   * bench/prune on this machine.
   */
  autoHnswMinElements?: number;
  signal?: AbortSignal;
}

/** Caller-owned output buffers, at least numTokens long. */
export interface ScoreBuffers {
  maxSim: Float32Array;
  argMax: Int32Array;
}

export interface PrototypeIndex {
  readonly backend: 'exact' | 'hnsw';
  readonly kernel: ExactKernel | 'hnsw';
  readonly count: number;
  readonly dim: number;
  /** Fills out.maxSim / out.argMax for the first numTokens rows of `tokens` (N×D row-major). */
  score(tokens: Float32Array, numTokens: number, out: ScoreBuffers, signal?: AbortSignal): Promise<void>;
  /**
   * The full L×P cosine matrix (row-major), needed by double-softmax. Always exact; the
   * returned array is reused by the next call.
   */
  similarityMatrix(tokens: Float32Array, numTokens: number, signal?: AbortSignal): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Unit-normalises rows the way torch.nn.functional.normalize does (eps = 1e-12). */
export function normalizeRows(data: Float32Array, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += data[base + k] * data[base + k];
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let k = 0; k < dim; k++) out[base + k] = data[base + k] * inv;
  }
  return out;
}

function checkInput(tokens: Float32Array, numTokens: number, dim: number, out?: ScoreBuffers): void {
  if (!Number.isInteger(numTokens) || numTokens < 0 || tokens.length < numTokens * dim) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `tokens hold ${tokens.length} values, need ${numTokens} × ${dim}`);
  }
  if (out && (out.maxSim.length < numTokens || out.argMax.length < numTokens)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'score buffers shorter than numTokens');
  }
}

function rowMaxArgMax(s: Float32Array, rows: number, cols: number, out: ScoreBuffers): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let best = -Infinity;
    let arg = 0;
    for (let c = 0; c < cols; c++) {
      const v = s[base + c];
      if (v > best) {
        best = v;
        arg = c;
      }
    }
    out.maxSim[r] = best;
    out.argMax[r] = arg;
  }
}

/** Exact scorer with the plain-JS kernel; synchronous underneath. */
export class JsExactIndex implements PrototypeIndex {
  readonly backend = 'exact' as const;
  readonly kernel = 'js' as const;
  private readonly cn: Float32Array;
  private sim = new Float32Array(0);
  private norms = new Float64Array(0);

  constructor(prototypes: Float32Array, readonly count: number, readonly dim: number) {
    this.cn = normalizeRows(prototypes, count, dim);
  }

  async score(tokens: Float32Array, numTokens: number, out: ScoreBuffers, signal?: AbortSignal): Promise<void> {
    rowMaxArgMax(await this.similarityMatrix(tokens, numTokens, signal), numTokens, this.count, out);
  }

  async similarityMatrix(tokens: Float32Array, numTokens: number, signal?: AbortSignal): Promise<Float32Array> {
    throwIfAborted(signal);
    checkInput(tokens, numTokens, this.dim);
    const L = numTokens;
    const P = this.count;
    const D = this.dim;
    if (this.sim.length < L * P) this.sim = new Float32Array(L * P);
    if (this.norms.length < L) this.norms = new Float64Array(L);
    const sim = this.sim;
    const norms = this.norms;
    for (let i = 0; i < L; i++) {
      let ss = 0;
      const b = i * D;
      for (let k = 0; k < D; k++) ss += tokens[b + k] * tokens[b + k];
      norms[i] = 1 / Math.max(Math.sqrt(ss), 1e-12);
    }
    const C = this.cn;
    // 4 tokens × 4 prototypes per block: 8 loads feed 16 multiply-adds, which keeps V8's
    // scalar pipeline busy instead of waiting on memory.
    const L4 = L - (L % 4);
    const P4 = P - (P % 4);
    for (let i = 0; i < L4; i += 4) {
      const x0 = i * D, x1 = x0 + D, x2 = x1 + D, x3 = x2 + D;
      for (let p = 0; p < P4; p += 4) {
        const c0 = p * D, c1 = c0 + D, c2 = c1 + D, c3 = c2 + D;
        let a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        let a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
        for (let k = 0; k < D; k++) {
          const v0 = tokens[x0 + k], v1 = tokens[x1 + k], v2 = tokens[x2 + k], v3 = tokens[x3 + k];
          const w0 = C[c0 + k], w1 = C[c1 + k], w2 = C[c2 + k], w3 = C[c3 + k];
          a00 += v0 * w0; a01 += v0 * w1; a02 += v0 * w2; a03 += v0 * w3;
          a10 += v1 * w0; a11 += v1 * w1; a12 += v1 * w2; a13 += v1 * w3;
          a20 += v2 * w0; a21 += v2 * w1; a22 += v2 * w2; a23 += v2 * w3;
          a30 += v3 * w0; a31 += v3 * w1; a32 += v3 * w2; a33 += v3 * w3;
        }
        const n0 = norms[i], n1 = norms[i + 1], n2 = norms[i + 2], n3 = norms[i + 3];
        let o = i * P + p;
        sim[o] = a00 * n0; sim[o + 1] = a01 * n0; sim[o + 2] = a02 * n0; sim[o + 3] = a03 * n0;
        o += P;
        sim[o] = a10 * n1; sim[o + 1] = a11 * n1; sim[o + 2] = a12 * n1; sim[o + 3] = a13 * n1;
        o += P;
        sim[o] = a20 * n2; sim[o + 1] = a21 * n2; sim[o + 2] = a22 * n2; sim[o + 3] = a23 * n2;
        o += P;
        sim[o] = a30 * n3; sim[o + 1] = a31 * n3; sim[o + 2] = a32 * n3; sim[o + 3] = a33 * n3;
      }
      for (let p = P4; p < P; p++) this.dotRows(tokens, i, 4, p, sim, norms);
    }
    for (let i = L4; i < L; i++) for (let p = 0; p < P; p++) this.dotRows(tokens, i, 1, p, sim, norms);
    return sim;
  }

  private dotRows(tokens: Float32Array, i0: number, n: number, p: number, sim: Float32Array, norms: Float64Array): void {
    const D = this.dim;
    const c = p * D;
    for (let i = i0; i < i0 + n; i++) {
      const x = i * D;
      let a = 0;
      for (let k = 0; k < D; k++) a += tokens[x + k] * this.cn[c + k];
      sim[i * this.count + p] = a * norms[i];
    }
  }

  async close(): Promise<void> {}
}

/** Exact scorer running one GEMM in onnxruntime. */
export class OrtExactIndex implements PrototypeIndex {
  readonly backend = 'exact' as const;
  readonly kernel = 'ort' as const;
  private closed = false;

  private constructor(
    private readonly ort: typeof Ort,
    private readonly session: Ort.InferenceSession,
    readonly count: number,
    readonly dim: number,
  ) {}

  static async create(prototypes: Float32Array, count: number, dim: number, options: { threads?: number; signal?: AbortSignal } = {}): Promise<OrtExactIndex> {
    throwIfAborted(options.signal);
    const ort = await import('onnxruntime-node');
    const cn = normalizeRows(prototypes, count, dim);
    const ct = new Float32Array(dim * count);
    for (let p = 0; p < count; p++) for (let k = 0; k < dim; k++) ct[k * count + p] = cn[p * dim + k];
    const model = buildCosineModel(ct, dim, count);
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: options.threads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', 'could not create the cosine-scoring session', { cause: e });
    }
    const index = new OrtExactIndex(ort, session, count, dim);
    // One warm-up run so the first frame does not pay for kernel selection.
    await index.similarityMatrix(new Float32Array(dim), 1);
    return index;
  }

  async score(tokens: Float32Array, numTokens: number, out: ScoreBuffers, signal?: AbortSignal): Promise<void> {
    checkInput(tokens, numTokens, this.dim, out);
    if (numTokens === 0) return;
    rowMaxArgMax(await this.similarityMatrix(tokens, numTokens, signal), numTokens, this.count, out);
  }

  async similarityMatrix(tokens: Float32Array, numTokens: number, signal?: AbortSignal): Promise<Float32Array> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'prototype index is closed');
    checkInput(tokens, numTokens, this.dim);
    if (numTokens === 0) return new Float32Array(0);
    const x = new this.ort.Tensor('float32', tokens.subarray(0, numTokens * this.dim), [numTokens, this.dim]);
    let result: Ort.InferenceSession.ReturnType;
    try {
      result = await this.session.run({ X: x });
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', 'cosine scoring failed', { cause: e });
    }
    throwIfAborted(signal);
    const s = result.S;
    const data = s.data as Float32Array;
    s.dispose?.();
    return data;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}

interface HnswLike {
  initIndex(maxElements: number, m?: number, efConstruction?: number, randomSeed?: number): void;
  addPoint(point: number[], label: number): void;
  setEf(ef: number): void;
  searchKnn(query: number[], k: number): { distances: number[]; neighbors: number[] };
}

/** Approximate scorer over an HNSW graph; double-softmax still gets an exact matrix. */
export class HnswIndex implements PrototypeIndex {
  readonly backend = 'hnsw' as const;
  readonly kernel = 'hnsw' as const;
  /** hnswlib-node only takes number[]: one query array reused for every token. */
  private readonly query: number[];

  private constructor(
    private readonly hnsw: HnswLike,
    private readonly exact: PrototypeIndex,
    readonly count: number,
    readonly dim: number,
  ) {
    this.query = new Array<number>(dim).fill(0);
  }

  static async create(prototypes: Float32Array, count: number, dim: number, options: HnswOptions & { exact: PrototypeIndex; signal?: AbortSignal }): Promise<HnswIndex> {
    throwIfAborted(options.signal);
    const { default: hnswlib } = await import('hnswlib-node');
    const index = new hnswlib.HierarchicalNSW('cosine', dim) as unknown as HnswLike;
    index.initIndex(Math.max(1, count), options.m ?? 16, options.efConstruction ?? 200, options.randomSeed ?? 100);
    const row = new Array<number>(dim);
    for (let p = 0; p < count; p++) {
      for (let k = 0; k < dim; k++) row[k] = prototypes[p * dim + k];
      index.addPoint(row, p);
    }
    index.setEf(options.ef ?? 64);
    return new HnswIndex(index, options.exact, count, dim);
  }

  async score(tokens: Float32Array, numTokens: number, out: ScoreBuffers, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    checkInput(tokens, numTokens, this.dim, out);
    const q = this.query;
    const D = this.dim;
    for (let i = 0; i < numTokens; i++) {
      const base = i * D;
      let ss = 0;
      for (let k = 0; k < D; k++) {
        const v = tokens[base + k];
        q[k] = v;
        ss += v * v;
      }
      if (ss === 0) {
        // F.normalize maps a zero vector to zero, whose cosine to anything is 0.
        out.maxSim[i] = 0;
        out.argMax[i] = 0;
        continue;
      }
      const r = this.hnsw.searchKnn(q, 1);
      out.maxSim[i] = 1 - r.distances[0];
      out.argMax[i] = r.neighbors[0];
    }
  }

  similarityMatrix(tokens: Float32Array, numTokens: number, signal?: AbortSignal): Promise<Float32Array> {
    return this.exact.similarityMatrix(tokens, numTokens, signal);
  }

  async close(): Promise<void> {
    await this.exact.close();
  }
}

export async function createPrototypeIndex(prototypes: Float32Array, count: number, dim: number, options: PrototypeIndexOptions = {}): Promise<PrototypeIndex> {
  if (prototypes.length !== count * dim || count < 1 || dim < 1) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `prototypes hold ${prototypes.length} values, expected ${count} × ${dim} with both ≥ 1`);
  }
  const exact: PrototypeIndex =
    (options.exactKernel ?? 'ort') === 'js'
      ? new JsExactIndex(prototypes, count, dim)
      : await OrtExactIndex.create(prototypes, count, dim, { threads: options.threads, signal: options.signal });
  let backend = options.backend ?? 'auto';
  if (backend === 'auto') backend = count * dim > (options.autoHnswMinElements ?? 50_000_000) ? 'hnsw' : 'exact';
  if (backend === 'exact') return exact;
  return HnswIndex.create(prototypes, count, dim, { ...options.hnsw, exact, signal: options.signal });
}
