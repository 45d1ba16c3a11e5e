// Prune benchmark: exact (onnxruntime GEMM, plain-JS 4×4 kernel) vs HNSW on
//  - a LLaVA-1.5-sized frame: 576 × 4096 tokens vs the released 454-prototype codebook;
//  - a default-model frame: 196 × 128 tokens vs the shipped codebooks/winnow-tiny.safetensors,
//    and vs the same codebook with near-duplicates merged (what `winnow codebook build` writes
//    by default); 200 synthetic prototypes only when no codebook is shipped.
// Then the exact/HNSW crossing for the `auto` backend on larger LLaVA-sized codebooks.
// Prints ms/frame (median of N; wall and CPU time), the CPU-time ratio to the exact/ort path, the
// exact/ort path with 8 frames per run, and HNSW's keep-decision agreement with exact
// (threshold rule). Run:
//   node --import tsx bench/prune/prune.bench.ts [--quick] [--llava-codebook FILE]
// The LLaVA-sized scenarios need the released 454-prototype codebook (llava15-454.pt), which is not
// in this repository: by default it is looked for in ../shared/seed-codebooks/ next to the checkout;
// without it they are skipped (said so) and the default-model scenario still runs.
// --quick: fewer timed runs and a crossover measured on 1024 and 4096 prototypes only.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCodebook } from '../../src/prune/codebook.js';
import { createPrototypeIndex, type PrototypeIndex } from '../../src/prune/prototype-index.js';
import { doubleSoftmaxStrategy } from '../../src/prune/strategies.js';
import { DEFAULT_MERGE_COSINE, mergeNearDuplicates } from '../../src/prune/build/merge.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const llavaArg = process.argv.indexOf('--llava-codebook');
const seed = llavaArg > 0 ? resolve(process.argv[llavaArg + 1]) : resolve(root, '..', 'shared', 'seed-codebooks', 'llava15-454.pt');
const quick = process.argv.includes('--quick');
/** Timed runs are scaled down under --quick, never below 3 (the median needs a few). */
const runsOf = (n: number): number => (quick ? Math.max(3, Math.round(n / 3)) : n);

function gaussian(s: number): () => number {
  let a = s >>> 0;
  const u = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/** Half noise tokens, half noisy prototype copies, so similarities straddle the threshold. */
function tokensFor(protos: Float32Array, P: number, D: number, L: number, noise: number): Float32Array {
  const g = gaussian(L * 7 + D);
  const out = new Float32Array(L * D);
  for (let i = 0; i < L; i++) {
    const p = (i * 7919) % P;
    const sigma = noise * (0.3 + (i % 9) * 0.3);
    for (let k = 0; k < D; k++) out[i * D + k] = (i % 2 === 0 ? protos[p * D + k] : 0) + g() * sigma;
  }
  return out;
}

/** CPU time of this process, ms. Every scorer here computes on the calling thread (onnxruntime with
 * one intra-op thread, hnswlib, JS), so under contention CPU time stays close to the true cost
 * while wall time grows with the other processes' load. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Medians over `runs` calls (after one warm-up): wall and CPU ms. Ratios use CPU ms. */
async function timeIt(fn: () => Promise<unknown>, fullRuns: number): Promise<{ wall: number; cpu: number }> {
  const runs = runsOf(fullRuns);
  await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuMs();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    cpu.push(cpuMs() - c0);
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { wall: median(wall), cpu: median(cpu) };
}

const fmt = (t: { wall: number; cpu: number }, div = 1): string => `${(t.wall / div).toFixed(2).padStart(8)} ms/frame (CPU ${(t.cpu / div).toFixed(2).padStart(8)})`;

async function scenario(name: string, protos: Float32Array, P: number, D: number, L: number, tau: number, noise: number): Promise<void> {
  const tokens = tokensFor(protos, P, D, L, noise);
  const variants: Array<[string, () => Promise<PrototypeIndex>, number]> = [
    ['exact/ort (1 thread)', () => createPrototypeIndex(protos, P, D, { backend: 'exact', exactKernel: 'ort', threads: 1 }), 30],
    ['exact/js  (4×4 blocked)', () => createPrototypeIndex(protos, P, D, { backend: 'exact', exactKernel: 'js' }), L * P * D > 1e8 ? 3 : 15],
  ];
  for (const ef of [16, 64, 128, 200]) variants.push([`hnsw ef=${ef}`, () => createPrototypeIndex(protos, P, D, { backend: 'hnsw', hnsw: { ef } }), 5]);
  const ref = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
  const out = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
  console.log(`\n${name}: ${L} tokens × ${D} vs ${P} prototypes, threshold τ=${tau}`);
  let base = 0;
  for (const [label, make, runs] of variants) {
    const t0 = performance.now();
    const index = await make();
    const buildMs = performance.now() - t0;
    const target = base === 0 ? ref : out;
    const t = await timeIt(() => index.score(tokens, L, target), runs);
    if (base === 0) base = t.cpu;
    let agree = 0;
    let keptRef = 0;
    for (let i = 0; i < L; i++) {
      if (ref.maxSim[i] < tau) keptRef++;
      if (ref.maxSim[i] < tau === target.maxSim[i] < tau) agree++;
    }
    console.log(
      `  ${label.padEnd(24)} ${fmt(t)}  ×${(t.cpu / base).toFixed(2).padStart(6)} vs exact/ort  agreement ${((100 * agree) / L).toFixed(2)} %  (kept ${keptRef}/${L}, build ${buildMs.toFixed(0)} ms)`,
    );
    if (label.startsWith('exact/ort')) {
      // 8 frames in one run, as the prune() operator scores an encode batch.
      const eight = new Float32Array(8 * L * D);
      for (let f = 0; f < 8; f++) eight.set(tokens, f * L * D);
      const out8 = { maxSim: new Float32Array(8 * L), argMax: new Int32Array(8 * L) };
      const t8 = await timeIt(() => index.score(eight, 8 * L, out8), Math.max(5, Math.round(runs / 4)));
      let same = 0;
      for (let f = 0; f < 8; f++) for (let i = 0; i < L; i++) if (Object.is(out8.maxSim[f * L + i], ref.maxSim[i])) same++;
      console.log(`  ${'exact/ort, 8 frames/run'.padEnd(24)} ${fmt(t8, 8)}  ×${(t8.cpu / 8 / base).toFixed(2).padStart(6)} vs exact/ort  identical scores ${((100 * same) / (8 * L)).toFixed(2)} %`);
      const ds = await timeIt(async () => doubleSoftmaxStrategy(await index.similarityMatrix(tokens, L), L, P, 0.5), 10);
      console.log(`  ${'double-softmax (ort)'.padEnd(24)} ${fmt(ds)}  (GEMM + both softmaxes + selection)`);
    }
    await index.close();
  }
}

/**
 * Where `backend: 'auto'` should switch to HNSW: exact (1 thread) vs HNSW (default ef) on LLaVA-sized
 * frames against larger codebooks made from the released one (each prototype repeated with noise,
 * so the set stays clustered like a real codebook). Prints the per-element cost of both and the
 * codebook size (P × D) where they would cross, to compare with the auto cutoff.
 */
async function crossover(base: Float32Array, P0: number, D: number, L: number, sizes: readonly number[]): Promise<void> {
  console.log(`\nauto cutoff: exact/ort (1 thread) vs hnsw (default ef) at ${L} tokens × ${D}, codebooks grown from ${P0} prototypes`);
  const rows: { elements: number; exact: number; hnsw: number }[] = [];
  for (const P of sizes) {
    const g = gaussian(P);
    const protos = new Float32Array(P * D);
    for (let p = 0; p < P; p++) {
      const src = (p % P0) * D;
      for (let k = 0; k < D; k++) protos[p * D + k] = base[src + k] + 0.02 * g();
    }
    const tokens = tokensFor(protos, P, D, L, 1.0);
    const out = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
    const exact = await createPrototypeIndex(protos, P, D, { backend: 'exact', exactKernel: 'ort', threads: 1 });
    const te = await timeIt(() => exact.score(tokens, L, out), 3);
    await exact.close();
    const t0 = performance.now();
    const hnsw = await createPrototypeIndex(protos, P, D, { backend: 'hnsw' });
    const buildMs = performance.now() - t0;
    const th = await timeIt(() => hnsw.score(tokens, L, out), 3);
    await hnsw.close();
    rows.push({ elements: P * D, exact: te.cpu, hnsw: th.cpu });
    console.log(`  P ${String(P).padStart(6)} (${((P * D) / 1e6).toFixed(1).padStart(5)} M elements)  exact ${fmt(te)}  hnsw ${fmt(th)}  hnsw/exact ${(th.cpu / te.cpu).toFixed(2)}  (hnsw build ${(buildMs / 1000).toFixed(1)} s)`);
  }
  // Exact grows linearly in P; HNSW roughly with log P. Solve exact(P) = hnsw(P) on the measured span.
  const a = rows[0];
  const b = rows[rows.length - 1];
  const slope = (b.exact - a.exact) / (b.elements - a.elements);
  const hs = (b.hnsw - a.hnsw) / Math.log(b.elements / a.elements);
  let lo = a.elements;
  let hi = 1e10;
  for (let i = 0; i < 100; i++) {
    const mid = Math.sqrt(lo * hi);
    const e = a.exact + slope * (mid - a.elements);
    const h = a.hnsw + hs * Math.log(mid / a.elements);
    if (e < h) lo = mid;
    else hi = mid;
  }
  console.log(`  crossing (exact linear, hnsw logarithmic in P × D): ≈ ${(lo / 1e6).toFixed(0)} M elements; the auto cutoff is 40 M${quick ? ' (--quick: extrapolated from a short span, rough)' : ''}`);
}

if (existsSync(seed)) {
  const cb = await loadCodebook(seed);
  await scenario('LLaVA-1.5 frame', cb.prototypes, cb.count, cb.dim, 576, 0.45, 1.0);
  await crossover(cb.prototypes, cb.count, cb.dim, 576, quick ? [1024, 4096] : [2048, 8192, 16384]);
} else console.log(`LLaVA-1.5 scenarios skipped: no released codebook at ${seed} (pass --llava-codebook FILE)`);
const shipped = resolve(root, 'codebooks', 'winnow-tiny.safetensors');
if (existsSync(shipped)) {
  const tiny = await loadCodebook(shipped);
  const tau = tiny.defaults?.tau ?? 0.45;
  await scenario(`default-model frame, shipped codebook (${tiny.dtype})`, tiny.prototypes, tiny.count, tiny.dim, 196, tau, 0.8);
  const m = mergeNearDuplicates(tiny.prototypes, tiny.count, tiny.dim, DEFAULT_MERGE_COSINE);
  // The shipped file is itself merged (at 0.95): repeat the scenario only when merging removes rows.
  if (m.keep.length < tiny.count) {
    const merged = new Float32Array(m.keep.length * tiny.dim);
    m.keep.forEach((r, k) => merged.set(tiny.prototypes.subarray(r * tiny.dim, (r + 1) * tiny.dim), k * tiny.dim));
    await scenario(`default-model frame, shipped codebook merged at cosine ≥ ${DEFAULT_MERGE_COSINE}`, merged, m.keep.length, tiny.dim, 196, tau, 0.8);
  } else console.log(`\n(merging the shipped codebook at cosine ≥ ${DEFAULT_MERGE_COSINE} removes nothing: ${tiny.count} prototypes)`);
} else {
  const g = gaussian(42);
  const synth = Float32Array.from({ length: 200 * 128 }, g);
  await scenario('default-model frame (STAND-IN: 200 synthetic prototypes, no shipped codebook)', synth, 200, 128, 196, 0.45, 0.8);
}
