// The three per-token experiments of the reference (docs/codebooks.md, "Building", steps 1-3)
// on one image's projected tokens, every forward pass batched.
import { throwIfAborted } from '../../errors.js';
import { JsdScratch, jsdTopK, topProbability } from './divergence.js';
import type { BatchedForward, SequenceTable } from './forward.js';

export interface ExperimentOptions {
  /** Copies of the token fed in the single-input experiment (the reference's min_single_token_dup_num). Default 1. */
  singleRepeat: number;
  /** Logits softmaxed for the top probability. Default 50. */
  singleTopK: number;
  /** Vocabulary entries (the unablated run's top ones) the JSD compares. Default 10. */
  jsdTopK: number;
  /** Side of the neighbourhood window. Default 3. */
  window: number;
  /** Sequences per decoder call. */
  maxBatchSequences: number;
  /** Tokens (sequences × length) per decoder call. */
  maxBatchTokens: number;
  /**
   * Global level: start each ablated sequence from the unablated run's KV cache at the first row
   * of its window (the tokens before it are identical), instead of from an empty past. Default true.
   */
  reuseGlobalPrefix?: boolean;
}

export interface TokenMeasures {
  /** Single-input experiment: largest softmax probability over the top-k first-token logits. */
  topProb: Float64Array;
  /** Context-level leave-one-out JSD. */
  jsdCtx: Float64Array;
  /** Global-level leave-one-out JSD. */
  jsdGlob: Float64Array;
}

/**
 * The window×window neighbourhood of token i in raster order, shifted inwards at the border (the
 * reference uses rows/columns 0,1,2 for the first row and −2,−1,0 for the last, so the window
 * always holds window² tokens when the grid is large enough). Writes into `out`, returns the count.
 */
export function neighbourhood(i: number, gridH: number, gridW: number, window: number, out: Int32Array): number {
  const r = Math.floor(i / gridW);
  const c = i % gridW;
  const hh = Math.min(window, gridH);
  const ww = Math.min(window, gridW);
  const r0 = Math.min(Math.max(r - Math.floor(window / 2), 0), gridH - hh);
  const c0 = Math.min(Math.max(c - Math.floor(window / 2), 0), gridW - ww);
  let n = 0;
  for (let y = r0; y < r0 + hh; y++) for (let x = c0; x < c0 + ww; x++) out[n++] = y * gridW + x;
  return n;
}

async function runAll(fwd: BatchedForward, table: SequenceTable, count: number, opts: ExperimentOptions, signal: AbortSignal | undefined, onBatch?: (sequences: number) => void): Promise<{ logits: Float32Array; vocab: number }> {
  let maxLen = 0;
  for (let q = 0; q < count; q++) maxLen = Math.max(maxLen, fwd.length(table.counts ? table.counts[q] : table.stride));
  const per = Math.max(1, Math.min(opts.maxBatchSequences, Math.floor(opts.maxBatchTokens / Math.max(1, maxLen))));
  let all: Float32Array | null = null;
  let vocab = 0;
  for (let first = 0; first < count; first += per) {
    throwIfAborted(signal);
    const b = Math.min(per, count - first);
    const r = await fwd.run(table, first, b, signal);
    if (!all) {
      vocab = r.vocab;
      all = new Float32Array(count * vocab);
    }
    all.set(r.logits, first * vocab);
    onBatch?.(b);
  }
  return { logits: all ?? new Float32Array(0), vocab };
}

/**
 * Top probability, context JSD and global JSD of every token of one image.
 * `tokens` is numTokens × D (raster order over gridH × gridW).
 */
export async function measureImage(
  fwd: BatchedForward,
  tokens: Float32Array,
  gridH: number,
  gridW: number,
  opts: ExperimentOptions,
  signal?: AbortSignal,
  onBatch?: (sequences: number) => void,
): Promise<TokenMeasures> {
  const n = gridH * gridW;
  const topProb = new Float64Array(n);
  const jsdCtx = new Float64Array(n);
  const jsdGlob = new Float64Array(n);
  const w = opts.window;
  const win = new Int32Array(w * w);

  // 1. Single input: token i repeated `singleRepeat` times stands in for the image.
  const rep = opts.singleRepeat;
  const single: SequenceTable = { tokens, index: new Int32Array(n * rep), stride: rep };
  for (let i = 0; i < n; i++) single.index.fill(i, i * rep, (i + 1) * rep);
  const s = await runAll(fwd, single, n, opts, signal, onBatch);
  const scratchTop = new Int32Array(Math.min(opts.singleTopK, s.vocab));
  for (let i = 0; i < n; i++) topProb[i] = topProbability(s.logits.subarray(i * s.vocab, (i + 1) * s.vocab), opts.singleTopK, scratchTop);

  // 2. Context level: each distinct window once unablated, then per token its window with the
  // token replaced by the pad embedding.
  const winKey = new Int32Array(n);
  const keyToSeq = new Map<number, number>();
  const wCount = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = neighbourhood(i, gridH, gridW, w, win);
    wCount[i] = c;
    const key = win[0] * (n + 1) + c;
    if (!keyToSeq.has(key)) keyToSeq.set(key, keyToSeq.size);
    winKey[i] = keyToSeq.get(key) as number;
  }
  const stride = w * w;
  const ctxBase: SequenceTable = { tokens, index: new Int32Array(keyToSeq.size * stride).fill(-1), stride, counts: new Int32Array(keyToSeq.size) };
  const ctxAbl: SequenceTable = { tokens, index: new Int32Array(n * stride).fill(-1), stride, counts: wCount };
  for (let i = 0; i < n; i++) {
    const c = neighbourhood(i, gridH, gridW, w, win);
    const q = winKey[i];
    for (let v = 0; v < c; v++) {
      ctxBase.index[q * stride + v] = win[v];
      ctxAbl.index[i * stride + v] = win[v] === i ? -1 : win[v];
    }
    (ctxBase.counts as Int32Array)[q] = c;
  }
  const cb = await runAll(fwd, ctxBase, keyToSeq.size, opts, signal, onBatch);
  const ca = await runAll(fwd, ctxAbl, n, opts, signal, onBatch);
  const js = new JsdScratch(Math.min(opts.jsdTopK, cb.vocab));
  const v = cb.vocab;
  for (let i = 0; i < n; i++) {
    jsdCtx[i] = jsdTopK(cb.logits.subarray(winKey[i] * v, (winKey[i] + 1) * v), ca.logits.subarray(i * v, (i + 1) * v), opts.jsdTopK, js);
  }

  // 3. Global level: all tokens once, then all tokens with token i's window replaced by pad.
  const globBase: SequenceTable = { tokens, index: Int32Array.from({ length: n }, (_, j) => j), stride: n };
  const globAbl: SequenceTable = { tokens, index: new Int32Array(n * n), stride: n };
  for (let i = 0; i < n; i++) {
    const row = globAbl.index.subarray(i * n, (i + 1) * n);
    for (let j = 0; j < n; j++) row[j] = j;
    const c = neighbourhood(i, gridH, gridW, w, win);
    for (let t = 0; t < c; t++) row[win[t]] = -1;
  }
  const gb = await fwd.runKeepingCache(globBase, 0, signal);
  onBatch?.(1);
  const base = gb.logits.subarray(0, v);
  if (gb.cache && opts.reuseGlobalPrefix !== false) {
    // Group tokens by the first grid row of their window: every sequence of a group equals the
    // unablated one up to that row, so it starts from the cache there.
    const groups = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      neighbourhood(i, gridH, gridW, w, win);
      const startRow = Math.floor(win[0] / gridW);
      let g = groups.get(startRow);
      if (!g) groups.set(startRow, (g = []));
      g.push(i);
    }
    const full = fwd.length(n);
    for (const [startRow, members] of groups) {
      const start = fwd.prefixLength + startRow * gridW;
      const per = Math.max(1, Math.min(opts.maxBatchSequences, Math.floor(opts.maxBatchTokens / Math.max(1, full - start))));
      for (let a = 0; a < members.length; a += per) {
        throwIfAborted(signal);
        const seqs = Int32Array.from(members.slice(a, a + per));
        const r = await fwd.runFrom(globAbl, seqs, gb.cache, start, signal);
        for (let k = 0; k < seqs.length; k++) jsdGlob[seqs[k]] = jsdTopK(base, r.logits.subarray(k * v, (k + 1) * v), opts.jsdTopK, js);
        onBatch?.(seqs.length);
      }
    }
  } else {
    const ga = await runAll(fwd, globAbl, n, opts, signal, onBatch);
    for (let i = 0; i < n; i++) jsdGlob[i] = jsdTopK(base, ga.logits.subarray(i * v, (i + 1) * v), opts.jsdTopK, js);
  }

  return { topProb, jsdCtx, jsdGlob };
}

/** Sequences (decoder rows) one image costs, for progress accounting. */
export function sequencesPerImage(gridH: number, gridW: number, window: number): number {
  const n = gridH * gridW;
  const windows = (Math.max(1, gridH - Math.min(window, gridH) + 1)) * Math.max(1, gridW - Math.min(window, gridW) + 1);
  return n /* single */ + windows + n /* context */ + 1 + n /* global */;
}
