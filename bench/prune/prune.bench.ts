// Prune benchmark: exact (onnxruntime GEMM, plain-JS 4×4 kernel) vs HNSW on
//  - a LLaVA-1.5-sized frame: 576 × 4096 tokens vs the released 454-prototype codebook;
//  - a default-model-sized frame: 196 × 192 tokens vs 200 synthetic prototypes.
// Prints ms/frame (median of N), the ratio to the exact/ort path measured in the same run, and
// HNSW's keep-decision agreement with exact (threshold rule). Run:
//   node --import tsx bench/prune/prune.bench.ts
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCodebook } from '../../src/prune/codebook.js';
import { createPrototypeIndex, type PrototypeIndex } from '../../src/prune/prototype-index.js';
import { doubleSoftmaxStrategy } from '../../src/prune/strategies.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const seed = resolve(root, '..', 'shared', 'seed-codebooks', 'llava15-454.pt');

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

async function timeIt(fn: () => Promise<unknown>, runs: number): Promise<number> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

async function scenario(name: string, protos: Float32Array, P: number, D: number, L: number, tau: number, noise: number): Promise<void> {
  const tokens = tokensFor(protos, P, D, L, noise);
  const variants: Array<[string, () => Promise<PrototypeIndex>, number]> = [
    ['exact/ort (1 thread)', () => createPrototypeIndex(protos, P, D, { backend: 'exact', exactKernel: 'ort', threads: 1 }), 30],
    ['exact/js  (4×4 blocked)', () => createPrototypeIndex(protos, P, D, { backend: 'exact', exactKernel: 'js' }), L * P * D > 1e8 ? 3 : 15],
  ];
  for (const ef of [16, 64, 200]) variants.push([`hnsw ef=${ef}`, () => createPrototypeIndex(protos, P, D, { backend: 'hnsw', hnsw: { ef } }), 5]);
  const ref = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
  const out = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
  console.log(`\n${name}: ${L} tokens × ${D} vs ${P} prototypes, threshold τ=${tau}`);
  let base = 0;
  for (const [label, make, runs] of variants) {
    const t0 = performance.now();
    const index = await make();
    const buildMs = performance.now() - t0;
    const target = base === 0 ? ref : out;
    const ms = await timeIt(() => index.score(tokens, L, target), runs);
    if (base === 0) base = ms;
    let agree = 0;
    let keptRef = 0;
    for (let i = 0; i < L; i++) {
      if (ref.maxSim[i] < tau) keptRef++;
      if (ref.maxSim[i] < tau === target.maxSim[i] < tau) agree++;
    }
    console.log(
      `  ${label.padEnd(24)} ${ms.toFixed(2).padStart(8)} ms/frame  ×${(ms / base).toFixed(2).padStart(6)} vs exact/ort  agreement ${((100 * agree) / L).toFixed(2)} %  (kept ${keptRef}/${L}, build ${buildMs.toFixed(0)} ms)`,
    );
    if (label.startsWith('exact/ort')) {
      const dsMs = await timeIt(async () => doubleSoftmaxStrategy(await index.similarityMatrix(tokens, L), L, P, 0.5), 10);
      console.log(`  ${'double-softmax (ort)'.padEnd(24)} ${dsMs.toFixed(2).padStart(8)} ms/frame  (GEMM + both softmaxes + selection)`);
    }
    await index.close();
  }
}

if (!existsSync(seed)) {
  console.error(`missing ${seed}`);
  process.exit(1);
}
const cb = await loadCodebook(seed);
await scenario('LLaVA-1.5 frame', cb.prototypes, cb.count, cb.dim, 576, 0.45, 1.0);
const g = gaussian(42);
const synth = Float32Array.from({ length: 200 * 192 }, g);
await scenario('default-model frame (synthetic codebook)', synth, 200, 192, 196, 0.45, 0.8);
