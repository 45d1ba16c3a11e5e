// Batched scoring: the fused max-similarity graph, run-splitting, Pruner.pruneBatch and the
// operator's batches must give exactly (bit for bit) what frame-by-frame pruning gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, from, lastValueFrom, toArray } from 'rxjs';
import { loadCodebook } from '../../src/prune/codebook.js';
import { createPrototypeIndex } from '../../src/prune/prototype-index.js';
import { Pruner, prune, type PrunerOptions } from '../../src/prune/pruner.js';
import { doubleSoftmaxStrategy } from '../../src/prune/strategies.js';
import type { EncodedFrame, PrunedFrame } from '../../src/prune/types.js';
import { LLAVA15_PT, frame, gaussian, haveSeeds, makeTokens, refDoubleSoftmaxScores, synthCodebook } from './helpers.js';

function sameFrames(a: readonly PrunedFrame[], b: readonly PrunedFrame[], label: string): void {
  assert.equal(a.length, b.length, label);
  for (let f = 0; f < a.length; f++) {
    assert.equal(a[f].frame.index, b[f].frame.index, `${label}: order`);
    assert.deepEqual(Array.from(a[f].kept), Array.from(b[f].kept), `${label}: frame ${f} kept`);
    // Object.is: NaN (no codebook score) equals NaN, and every score must match to the bit.
    for (let i = 0; i < a[f].scores.length; i++) assert.ok(Object.is(a[f].scores[i], b[f].scores[i]), `${label}: frame ${f} score ${i}`);
    assert.deepEqual(a[f].tokens, b[f].tokens, `${label}: frame ${f} tokens`);
  }
}

test('fused max-similarity = row max of the full cosine matrix, bit for bit, however the rows are split into runs', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  const cb = await loadCodebook(LLAVA15_PT);
  const { count: P, dim: D } = cb;
  const L = 300;
  const tokens = makeTokens(cb.prototypes, P, D, L, 31, 1.0);
  tokens.fill(0, 7 * D, 8 * D); // a zero token scores 0 (F.normalize semantics)
  const whole = await createPrototypeIndex(cb.prototypes, P, D, { backend: 'exact' });
  // 37 rows per run: 300 rows take 9 runs, the last one partial.
  const split = await createPrototypeIndex(cb.prototypes, P, D, { backend: 'exact', maxBlockElements: 37 * P });
  try {
    const S = (await whole.similarityMatrix(tokens, L)).slice();
    for (const index of [whole, split]) {
      const out = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
      await index.score(tokens, L, out);
      for (let i = 0; i < L; i++) {
        let best = -Infinity;
        let arg = 0;
        for (let p = 0; p < P; p++) {
          if (S[i * P + p] > best) {
            best = S[i * P + p];
            arg = p;
          }
        }
        assert.ok(Object.is(out.maxSim[i], best), `row ${i}: ${out.maxSim[i]} vs ${best}`);
        assert.equal(out.argMax[i], arg, `row ${i} arg-max`);
      }
      assert.equal(out.maxSim[7], 0);
    }
    // Scores of rows do not depend on what else is in the run.
    const alone = { maxSim: new Float32Array(1), argMax: new Int32Array(1) };
    const all = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
    await whole.score(tokens, L, all);
    for (const i of [0, 150, 299]) {
      await whole.score(tokens.subarray(i * D, (i + 1) * D), 1, alone);
      assert.ok(Object.is(alone.maxSim[0], all.maxSim[i]));
    }
  } finally {
    await Promise.all([whole.close(), split.close()]);
  }
});

test('double-softmax with cached exponentials = the plain three-pass form, bit for bit', () => {
  const L = 37;
  const P = 11;
  const g = gaussian(12);
  const sim = Float32Array.from({ length: L * P }, () => Math.tanh(g()));
  const fast = new Float64Array(L);
  const scratch = new Float64Array(L * P + P + 5);
  const kept = doubleSoftmaxStrategy(sim, L, P, 0.5, fast, scratch);
  const ref = refDoubleSoftmaxScores(sim, L, P);
  for (let i = 0; i < L; i++) assert.ok(Object.is(fast[i], ref[i]), `score ${i}`);
  assert.deepEqual(kept, doubleSoftmaxStrategy(sim, L, P, 0.5)); // with or without scratch
});

test('pruneBatch = pruning the frames one by one (every strategy, temporal filter, mixed grid sizes)', async () => {
  const D = 24;
  const cb = synthCodebook(30, D, 5);
  const frames: EncodedFrame[] = [];
  for (let i = 0; i < 7; i++) {
    const [h, w] = i === 3 ? [2, 3] : [4, 4];
    const t = makeTokens(cb.prototypes, cb.count, D, h * w, 200 + i, 0.8);
    // Frames 4-6 repeat frame 0's first rows so the temporal filter has something to drop.
    if (i >= 4) t.set(frames[0].tokens.subarray(0, 8 * D));
    frames.push(frame(t, h, w, D, i, i === 3 ? 'other' : 'cam'));
  }
  const configs: PrunerOptions[] = [
    { strategy: 'threshold', tau: 0.3 },
    { strategy: 'ratio', ratio: 0.25, maxKeep: 3 },
    { strategy: 'double-softmax', ratio: 0.5 },
    { strategy: 'random', ratio: 0.4, seed: 3 },
    { strategy: 'threshold', tau: 0.3, temporal: { tau: 0.99 }, minKeep: 2 },
    { strategy: 'none', temporal: { tau: 0.99 } },
  ];
  for (const options of configs) {
    const label = JSON.stringify(options);
    const one = await Pruner.load({ codebook: cb, ...options });
    const many = await Pruner.load({ codebook: cb, ...options });
    try {
      const expected: PrunedFrame[] = [];
      for (const f of frames) expected.push(await one.prune(f));
      const got = [...(await many.pruneBatch(frames.slice(0, 3))), ...(await many.pruneBatch(frames.slice(3)))];
      sameFrames(got, expected, label);
      for (const f of got) assert.ok(f.stats.scoreMs >= 0 && f.stats.total === (f.frame.index === 3 ? 6 : 16));
    } finally {
      await Promise.all([one.close(), many.close()]);
    }
  }
  const p = await Pruner.load({ codebook: cb, strategy: 'ratio', ratio: 0.5 });
  assert.deepEqual(await p.pruneBatch([]), []);
  await p.close();
});

test('prune() operator: an encode-sized burst is scored in one run; results equal frame-by-frame pruning', async () => {
  const D = 32;
  const cb = synthCodebook(40, D, 8);
  const frames = Array.from({ length: 11 }, (_, i) => frame(makeTokens(cb.prototypes, cb.count, D, 16, 300 + i, 1), 4, 4, D, i, 'cam'));
  const options: PrunerOptions = { strategy: 'threshold', tau: 0.35, temporal: { tau: 0.98 } };
  const reference = await Pruner.load({ codebook: cb, ...options });
  const expected = await lastValueFrom(from(frames).pipe(prune(reference, { maxBatchFrames: 1 }), toArray()));
  await reference.close();
  for (const maxBatchFrames of [8, 3]) {
    const pruner = await Pruner.load({ codebook: cb, ...options });
    const sizes: number[] = [];
    const original = pruner.pruneBatch.bind(pruner);
    pruner.pruneBatch = (inputs, signal) => {
      sizes.push(inputs.length);
      return original(inputs, signal);
    };
    try {
      const subject = new Subject<EncodedFrame>();
      const got: PrunedFrame[] = [];
      let firstEight!: () => void;
      const eight = new Promise<void>((r) => (firstEight = r));
      const done = new Promise<void>((resolve, reject) =>
        subject.pipe(prune(pruner, { maxBatchFrames, maxQueuedFrames: 16 })).subscribe({
          next: (f) => {
            got.push(f);
            if (got.length === 8) firstEight();
          },
          error: reject,
          complete: resolve,
        }),
      );
      for (const f of frames.slice(0, 8)) subject.next(f); // one encode batch, emitted synchronously
      await eight;
      for (const f of frames.slice(8)) subject.next(f);
      subject.complete();
      await done;
      sameFrames(got, expected, `maxBatchFrames ${maxBatchFrames}`);
      assert.deepEqual(sizes, maxBatchFrames === 8 ? [8, 3] : [3, 3, 2, 3]);
    } finally {
      await pruner.close();
    }
  }
});
