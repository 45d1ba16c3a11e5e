// Nearest-prototype search: for every token of a frame, the maximum cosine similarity to the
// codebook and the prototype reaching it. Backends:
//  - exact/ort: MatMul + row max/arg-max fused in one onnxruntime graph (MLAS GEMM), the
//               default; several frames go through in one run; see bench/prune.
//  - exact/js:  a register-blocked 4×4 scalar loop, for when onnxruntime is unwanted.
//  - hnsw:      hnswlib-node, cosine space; approximate, wins only for very large codebooks.
import type * as Ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../errors.js';
import { buildCosineModel, buildMaxCosineModel } from './onnx-cosine.js';

export type IndexBackend = 'exact' | 'hnsw' | 'auto';
export type ExactKernel = 'ort' | 'js';

export interface HnswOptions {
  /** Graph degree. Default 16. */
  m?: number;
  /** Build-time candidate list size. Default 200. */
  efConstruction?: number;
  /**
   * Query-time candidate list size. Default 128: on the default model's 6,015-prototype codebook
   * (many near-duplicate background prototypes) ef 64 agreed with exact on only 98.7 % of threshold
   * keep decisions for real tokens, ef 128 on 100 % (test/prune/default-codebook.test.ts).
   */
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
   * 40 000 000 (about 10 000 prototypes of width 4096): bench/prune measured the crossing at
   * ≈ 43 M on this machine (LLaVA-sized frames, 1 thread: exact 433 ms vs HNSW 580 ms at 33.6 M,
   * 892 ms vs 585 ms at 67 M).
   */
  autoHnswMinElements?: number;
  /**
   * Exact/ort: the most similarity-matrix elements one max-similarity run may produce. Larger
   * inputs (several frames at once) are scored in runs of max(1, floor(this / P)) rows: one run
   * per batch for small codebooks, while a large codebook's N×P block stays cache-sized instead
   * of costing a fresh multi-megabyte allocation per run. Default 1 048 576 (4 MB).
   */
  maxBlockElements?: number;
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

/** Default for PrototypeIndexOptions.maxBlockElements: a 4 MB float32 similarity block. */
export const DEFAULT_MAX_BLOCK_ELEMENTS = 1 << 20;

/**
 * Exact scorer on onnxruntime's GEMM (MLAS). Two sessions share the baked-in normalised
 * codebook: one returns only each row's max similarity and its arg-max (the N×P block stays
 * inside onnxruntime, no copy-out, no JS scan), one returns the whole matrix for double-softmax.
 * Outputs are written straight into caller-owned / reused buffers.
 */
export class OrtExactIndex implements PrototypeIndex {
  readonly backend = 'exact' as const;
  readonly kernel = 'ort' as const;
  private closed = false;
  /** Rows per max-similarity run, so the N×P intermediate stays cache-sized however many frames come at once. */
  private readonly rowsPerRun: number;
  private matrix = new Float32Array(0);

  private constructor(
    private readonly ort: typeof Ort,
    private readonly maxSession: Ort.InferenceSession,
    private readonly matrixSession: Ort.InferenceSession,
    readonly count: number,
    readonly dim: number,
    maxBlockElements: number,
  ) {
    this.rowsPerRun = Math.max(1, Math.floor(maxBlockElements / count));
  }

  static async create(
    prototypes: Float32Array,
    count: number,
    dim: number,
    options: { threads?: number; maxBlockElements?: number; signal?: AbortSignal } = {},
  ): Promise<OrtExactIndex> {
    throwIfAborted(options.signal);
    const maxBlockElements = options.maxBlockElements ?? DEFAULT_MAX_BLOCK_ELEMENTS;
    if (!Number.isInteger(maxBlockElements) || maxBlockElements < 1) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxBlockElements must be a positive integer, got ${maxBlockElements}`);
    }
    const ort = await import('onnxruntime-node');
    // Normalised once here; every run reuses the transposed copy baked into both models.
    const cn = normalizeRows(prototypes, count, dim);
    const ct = new Float32Array(dim * count);
    for (let p = 0; p < count; p++) for (let k = 0; k < dim; k++) ct[k * count + p] = cn[p * dim + k];
    const sessionOptions: Ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    };
    const sessions: Ort.InferenceSession[] = [];
    try {
      sessions.push(await ort.InferenceSession.create(buildMaxCosineModel(ct, dim, count), sessionOptions));
      sessions.push(await ort.InferenceSession.create(buildCosineModel(ct, dim, count), sessionOptions));
    } catch (e) {
      await Promise.all(sessions.map((s) => s.release()));
      throw new WinnowError('WINNOW_ERR_INFERENCE', 'could not create the cosine-scoring session', { cause: e });
    }
    const index = new OrtExactIndex(ort, sessions[0], sessions[1], count, dim, maxBlockElements);
    // One warm-up run of each so the first frame does not pay for kernel selection.
    const one = new Float32Array(dim);
    await index.score(one, 1, { maxSim: new Float32Array(1), argMax: new Int32Array(1) });
    await index.similarityMatrix(one, 1);
    return index;
  }

  async score(tokens: Float32Array, numTokens: number, out: ScoreBuffers, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'prototype index is closed');
    checkInput(tokens, numTokens, this.dim, out);
    const D = this.dim;
    const { Tensor } = this.ort;
    for (let r0 = 0; r0 < numTokens; r0 += this.rowsPerRun) {
      const rows = Math.min(this.rowsPerRun, numTokens - r0);
      const x = new Tensor('float32', tokens.subarray(r0 * D, (r0 + rows) * D), [rows, D]);
      const fetches = {
        maxSim: new Tensor('float32', out.maxSim.subarray(r0, r0 + rows), [rows, 1]),
        argMax: new Tensor('int32', out.argMax.subarray(r0, r0 + rows), [rows, 1]),
      };
      try {
        await this.maxSession.run({ X: x }, fetches);
      } catch (e) {
        throw new WinnowError('WINNOW_ERR_INFERENCE', 'cosine scoring failed', { cause: e });
      }
      throwIfAborted(signal);
    }
  }

  async similarityMatrix(tokens: Float32Array, numTokens: number, signal?: AbortSignal): Promise<Float32Array> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'prototype index is closed');
    checkInput(tokens, numTokens, this.dim);
    if (numTokens === 0) return new Float32Array(0);
    const n = numTokens * this.count;
    if (this.matrix.length < n) this.matrix = new Float32Array(n);
    const S = this.matrix.subarray(0, n);
    const { Tensor } = this.ort;
    try {
      await this.matrixSession.run(
        { X: new Tensor('float32', tokens.subarray(0, numTokens * this.dim), [numTokens, this.dim]) },
        { S: new Tensor('float32', S, [numTokens, this.count]) },
      );
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', 'cosine scoring failed', { cause: e });
    }
    throwIfAborted(signal);
    return S;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.maxSession.release(), this.matrixSession.release()]);
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
    index.setEf(options.ef ?? 128);
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
      : await OrtExactIndex.create(prototypes, count, dim, { threads: options.threads, maxBlockElements: options.maxBlockElements, signal: options.signal });
  let backend = options.backend ?? 'auto';
  if (backend === 'auto') backend = count * dim > (options.autoHnswMinElements ?? 40_000_000) ? 'hnsw' : 'exact';
  if (backend === 'exact') return exact;
  return HnswIndex.create(prototypes, count, dim, { ...options.hnsw, exact, signal: options.signal });
}
