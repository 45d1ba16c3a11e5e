// Codebook-build benchmark: the three token experiments of one image with every sequence in its
// own decoder call (batch 1) vs batched (default budget), measured in the same run, plus the
// largest difference between the two runs' measures (batching must not change results). Run:
//   node --import tsx bench/codebook/build.bench.ts [imageDir] [images] [--quick]
// Flags are kept out of the positionals: `npm run bench -- --quick` passes --quick to every bench,
// and it was once read as the image directory. --quick measures one image.
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { lastValueFrom, of, take } from 'rxjs';
import { encode } from '../../src/encode/index.js';
import { openVideo } from '../../src/ingest/index.js';
import { writeDataset } from '../../src/synth/index.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { BatchedForward, DEFAULT_BATCH, REFERENCE_PARAMETERS, loadExperimentModel, measureImage, neighbourhood } from '../../src/prune/build/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const quick = process.argv.includes('--quick');
const positional = process.argv.slice(2).filter((x) => !x.startsWith('--'));
let dir = positional[0];
const rendered = !dir;
const images = Number(positional[1] ?? (quick ? 1 : 2));
if (!dir) {
  dir = mkdtempSync(join(tmpdir(), 'winnow-cbbench-'));
  await writeDataset({ outDir: dir, seed: 77, stills: images, videos: 0, durationS: 1 });
}
const files = readdirSync(dir).filter((f) => f.endsWith('.png')).sort().slice(0, images);
const m = await loadExperimentModel(join(root, 'models', 'winnow-tiny'));
try {
  const size = { width: 112, height: 112 };
  const encoded: EncodedFrame[] = [];
  for (const f of files) {
    const frame = await lastValueFrom(openVideo(join(dir, f), { size, resize: 'pad' }).pipe(take(1)));
    encoded.push(await lastValueFrom(of(frame).pipe(encode(m.folder, { maxWaitMs: 0 }))));
  }
  const run = async (maxBatchSequences: number, maxBatchTokens: number, reuseGlobalPrefix = false) => {
    const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
    const t0 = performance.now();
    const out = [];
    for (const e of encoded) out.push(await measureImage(fwd, e.tokens, e.gridH, e.gridW, { ...REFERENCE_PARAMETERS, maxBatchSequences, maxBatchTokens, reuseGlobalPrefix }));
    return { ms: performance.now() - t0, out, stats: fwd.stats };
  };
  await run(DEFAULT_BATCH.maxBatchSequences, DEFAULT_BATCH.maxBatchTokens); // warm-up
  const one = await run(1, 1 << 30);
  const batched = await run(DEFAULT_BATCH.maxBatchSequences, DEFAULT_BATCH.maxBatchTokens);
  const reuse = await run(DEFAULT_BATCH.maxBatchSequences, DEFAULT_BATCH.maxBatchTokens, true);
  let reuseDiff = 0;
  batched.out.forEach((a, k) => {
    const b = reuse.out[k];
    for (let i = 0; i < a.jsdGlob.length; i++) reuseDiff = Math.max(reuseDiff, Math.abs(a.jsdGlob[i] - b.jsdGlob[i]) / Math.max(1e-6, Math.abs(a.jsdGlob[i])));
  });
  let maxDiff = 0;
  one.out.forEach((a, k) => {
    const b = batched.out[k];
    for (const key of ['topProb', 'jsdCtx', 'jsdGlob'] as const) for (let i = 0; i < a[key].length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[key][i] - b[key][i]) / Math.max(1e-9, Math.abs(a[key][i])));
  });
  const per = (r: typeof one) => `${(r.ms / encoded.length).toFixed(0)} ms/image, ${r.stats.calls} calls, ${(r.stats.tokens / (r.ms / 1000)).toFixed(0)} decoder tokens/s`;
  console.log(`images ${encoded.length}, ${one.stats.sequences / encoded.length} sequences/image`);
  console.log(`one at a time  ${per(one)}`);
  console.log(`batched        ${per(batched)}  (${DEFAULT_BATCH.maxBatchSequences} seq / ${DEFAULT_BATCH.maxBatchTokens} tokens per call)`);
  console.log(`+ prefix reuse ${per(reuse)}  (global level starts from the unablated KV cache)`);
  console.log(`speed-up       ${(one.ms / batched.ms).toFixed(2)}× batched, ${(one.ms / reuse.ms).toFixed(2)}× batched + prefix reuse (the default)`);
  console.log(`global JSD, prefix reuse vs not: max relative difference ${reuseDiff.toExponential(2)}`);
  // Per experiment: the same sequence tables, batch 1 vs batched.
  const e = encoded[0];
  const n = e.gridH * e.gridW;
  const single = { tokens: e.tokens, index: Int32Array.from({ length: n }, (_, i) => i), stride: 1 };
  const ctxIdx = new Int32Array(n * 9);
  const win = new Int32Array(9);
  for (let i = 0; i < n; i++) {
    neighbourhood(i, e.gridH, e.gridW, 3, win);
    for (let v = 0; v < 9; v++) ctxIdx[i * 9 + v] = win[v] === i ? -1 : win[v];
  }
  const context = { tokens: e.tokens, index: ctxIdx, stride: 9 };
  const globIdx = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) globIdx[i * n + j] = j;
    neighbourhood(i, e.gridH, e.gridW, 3, win);
    for (const w of win) globIdx[i * n + w] = -1;
  }
  const global = { tokens: e.tokens, index: globIdx, stride: n };
  for (const [name, table] of [['single input', single], ['context LOO', context], ['global LOO', global]] as const) {
    const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
    const time = async (per: number): Promise<number> => {
      const t0 = performance.now();
      for (let q = 0; q < n; q += per) await fwd.run(table, q, Math.min(per, n - q));
      return performance.now() - t0;
    };
    await time(64);
    const a1 = await time(1);
    const per = Math.max(1, Math.min(DEFAULT_BATCH.maxBatchSequences, Math.floor(DEFAULT_BATCH.maxBatchTokens / fwd.length(table.stride))));
    const ab = await time(per);
    console.log(`${name.padEnd(13)} ${n} sequences of ${fwd.length(table.stride)} tokens: one at a time ${a1.toFixed(0)} ms, batched (${per}/call) ${ab.toFixed(0)} ms, ${(a1 / ab).toFixed(2)}×`);
  }
  console.log(`max relative difference of the measures: ${maxDiff.toExponential(2)}`);
} finally {
  await m.folder.close();
  if (rendered) rmSync(dir, { recursive: true, force: true });
}
