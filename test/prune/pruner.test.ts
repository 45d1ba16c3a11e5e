// Strategies, temporal filter, minKeep/maxKeep, index backends and the prune() operator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, from, lastValueFrom, toArray } from 'rxjs';
import {
  clsStrategy,
  doubleSoftmaxStrategy,
  poolStrategy,
  pyRound,
  randomStrategy,
  ratioStrategy,
  thresholdStrategy,
} from '../../src/prune/strategies.js';
import { createPrototypeIndex } from '../../src/prune/prototype-index.js';
import { loadCodebook } from '../../src/prune/codebook.js';
import { Pruner, prune } from '../../src/prune/pruner.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { LLAVA15_PT, frame, gaussian, haveSeeds, makeTokens, refCosine, refMax, synthCodebook } from './helpers.js';

test('strategies: strict threshold, stable ratio ties, banker rounding, double-softmax tie drop', () => {
  assert.deepEqual([pyRound(364.5), pyRound(365.5), pyRound(2.5000001), pyRound(0.5), pyRound(1.49)], [364, 366, 3, 0, 1]);
  const s = Float64Array.of(0.45, 0.2, 0.9, 0.44999, 0.2, 0.1); // f64: Float32 0.45 would be 0.44999998
  assert.deepEqual(Array.from(thresholdStrategy(s, 6, 0.45)), [1, 3, 4, 5]); // 0.45 itself is not < τ
  // round(6·0.5) = 3 lowest: 0.1 (5), then the tie 0.2 at 1 and 4 → both, index order.
  assert.deepEqual(Array.from(ratioStrategy(s, 6, 0.5)), [1, 4, 5]);
  assert.deepEqual(Array.from(ratioStrategy(s, 6, 1 / 3)), [1, 5]); // tie broken by lower index
  assert.deepEqual(Array.from(ratioStrategy(s, 6, 0)), []);
  // Identical rows give identical double-softmax scores: all tie with the k-th largest → dropped.
  const sim = new Float32Array(4 * 2).fill(0.3);
  assert.deepEqual(Array.from(doubleSoftmaxStrategy(sim, 4, 2, 0.5)), []);
  assert.deepEqual(Array.from(doubleSoftmaxStrategy(sim, 4, 2, 1)), [0, 1, 2, 3]);
  assert.throws(() => ratioStrategy(s, 6, 1.5), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
});

test('strategies: random is seeded, pool spreads over the grid, cls low/high', () => {
  const a = randomStrategy(100, 30, 7);
  assert.equal(a.length, 30);
  assert.deepEqual(a, randomStrategy(100, 30, 7));
  assert.notDeepEqual(a, randomStrategy(100, 30, 8));
  assert.ok(a.every((v, i) => i === 0 || v > a[i - 1]));
  const p = poolStrategy(14, 14, 49);
  assert.equal(p.length, 49);
  assert.deepEqual(Array.from(p.subarray(0, 7)), [14 + 1, 14 + 3, 14 + 5, 14 + 7, 14 + 9, 14 + 11, 14 + 13]); // every other cell, centred
  for (const k of [1, 10, 50, 100, 195]) assert.equal(poolStrategy(14, 14, k).length, k);
  assert.equal(poolStrategy(3, 20, 13).length, 13);
  const cls = Float32Array.of(0.9, 0.1, 0.5, 0.3);
  assert.deepEqual(Array.from(clsStrategy(cls, 4, 0.5, 'low')), [1, 3]);
  assert.deepEqual(Array.from(clsStrategy(cls, 4, 0.5, 'high')), [0, 2]);
});

test('index: JS kernel and ORT kernel agree; HNSW agrees with exact on ≥ 99.9 % of keep decisions', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  const cb = await loadCodebook(LLAVA15_PT);
  const L = 576;
  const D = cb.dim;
  const tokens = makeTokens(cb.prototypes, cb.count, D, L, 21, 1.0);
  const ort = await createPrototypeIndex(cb.prototypes, cb.count, D, { backend: 'exact', exactKernel: 'ort' });
  const hnsw = await createPrototypeIndex(cb.prototypes, cb.count, D, { backend: 'hnsw' });
  const small = synthCodebook(20, 64, 3);
  const js = await createPrototypeIndex(small.prototypes, 20, 64, { backend: 'exact', exactKernel: 'js' });
  const ortSmall = await createPrototypeIndex(small.prototypes, 20, 64, { backend: 'exact' });
  try {
    const a = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
    const b = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
    await ort.score(tokens, L, a);
    await hnsw.score(tokens, L, b);
    const s = refMax(refCosine(tokens, L, cb.prototypes, cb.count, D), L, cb.count);
    let agree = 0;
    for (let i = 0; i < L; i++) {
      assert.ok(Math.abs(a.maxSim[i] - s[i]) < 2e-5);
      if (a.maxSim[i] < 0.45 === b.maxSim[i] < 0.45) agree++;
    }
    assert.ok(agree / L >= 0.999, `HNSW agreement ${agree}/${L}`);
    const n = 37; // not a multiple of the 4×4 block
    const t2 = makeTokens(small.prototypes, 20, 64, n, 5, 1);
    const c = { maxSim: new Float32Array(n), argMax: new Int32Array(n) };
    const d = { maxSim: new Float32Array(n), argMax: new Int32Array(n) };
    await js.score(t2, n, c);
    await ortSmall.score(t2, n, d);
    const s2 = refMax(refCosine(t2, n, small.prototypes, 20, 64), n, 20);
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(c.maxSim[i] - s2[i]) < 1e-5 && Math.abs(d.maxSim[i] - s2[i]) < 1e-5);
      assert.equal(c.argMax[i], d.argMax[i]);
    }
    // A zero token has cosine 0 to everything (F.normalize semantics), in every backend.
    await ortSmall.score(new Float32Array(64), 1, d);
    assert.equal(d.maxSim[0], 0);
  } finally {
    await Promise.all([ort.close(), hnsw.close(), js.close(), ortSmall.close()]);
  }
});

test('temporal filter drops unchanged tokens of the same source, combines with the codebook rule, respects minKeep/maxKeep', async () => {
  const D = 16;
  const cb = synthCodebook(8, D, 9);
  const g = gaussian(4);
  const base = Float32Array.from({ length: 16 * D }, g);
  const pruner = await Pruner.load({ codebook: cb, strategy: 'threshold', tau: 2, temporal: { tau: 0.95, maxSources: 2 }, minKeep: 2, index: { exactKernel: 'js' } });
  try {
    const f0 = await pruner.prune(frame(base, 4, 4, D, 0, 'cam'));
    assert.equal(f0.stats.kept, 16); // τ = 2 keeps everything; no reference yet
    const moved = base.slice();
    for (const pos of [3, 9]) for (let k = 0; k < D; k++) moved[pos * D + k] = g();
    const f1 = await pruner.prune(frame(moved, 4, 4, D, 1, 'cam'));
    assert.deepEqual(Array.from(f1.kept), [3, 9]);
    assert.deepEqual(Array.from(f1.tokens.subarray(0, D)), Array.from(moved.subarray(3 * D, 4 * D)));
    const f2 = await pruner.prune(frame(moved, 4, 4, D, 2, 'cam'));
    assert.equal(f2.stats.kept, 2); // all static: minKeep fills with the lowest codebook scores
    const lowest = Array.from(f2.scores, (v, i) => [v, i] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]).slice(0, 2).map((x) => x[1]).sort((x, y) => x - y);
    assert.deepEqual(Array.from(f2.kept), lowest);
    // Another source has its own state; a third source evicts the least recent one.
    assert.equal((await pruner.prune(frame(moved, 4, 4, D, 0, 'other'))).stats.kept, 16);
    await pruner.prune(frame(moved, 4, 4, D, 0, 'third'));
    assert.equal((await pruner.prune(frame(moved, 4, 4, D, 3, 'cam'))).stats.kept, 16); // 'cam' was forgotten
  } finally {
    await pruner.close();
    await pruner.close(); // idempotent
  }
  const capped = await Pruner.load({ codebook: cb, strategy: 'none', maxKeep: 5, index: { exactKernel: 'js' } });
  const r = await capped.prune(frame(base, 4, 4, D));
  assert.equal(r.kept.length, 5);
  const best5 = Array.from(r.scores, (v, i) => [v, i] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]).slice(0, 5).map((x) => x[1]).sort((x, y) => x - y);
  assert.deepEqual(Array.from(r.kept), best5);
  await capped.close();
  await assert.rejects(capped.prune(frame(base, 4, 4, D)), (e: { code?: string }) => e.code === 'WINNOW_ERR_SESSION_CLOSED');
});

test('Pruner validation: codebook needed, width mismatch, cls without similarities', async () => {
  await assert.rejects(Pruner.load({ strategy: 'threshold', tau: 0.5 }), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  const cb = synthCodebook(4, 8, 1);
  const p = await Pruner.load({ codebook: cb, strategy: 'ratio', ratio: 0.5 });
  await assert.rejects(p.prune(frame(new Float32Array(4 * 16), 2, 2, 16)), (e: { code?: string }) => e.code === 'WINNOW_ERR_CODEBOOK_MISMATCH');
  await p.close();
  const c = await Pruner.load({ strategy: 'cls', ratio: 0.5 });
  await assert.rejects(c.prune(frame(new Float32Array(4 * 8), 2, 2, 8)), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  const withCls = { ...frame(new Float32Array(4 * 8), 2, 2, 8), clsSimilarity: Float32Array.of(0.4, 0.1, 0.3, 0.2) };
  assert.deepEqual(Array.from((await c.prune(withCls)).kept), [1, 3]);
  await c.close();
});

test('prune() operator: order preserved, stats filled, bounded queue errors on overflow', async () => {
  const D = 32;
  const cb = synthCodebook(10, D, 2);
  const pruner = await Pruner.load({ codebook: cb, strategy: 'ratio', ratio: 0.25 });
  try {
    const frames = Array.from({ length: 6 }, (_, i) => frame(makeTokens(cb.prototypes, 10, D, 16, 100 + i, 1), 4, 4, D, i));
    const out = await lastValueFrom(from(frames).pipe(prune(pruner, { maxQueuedFrames: 8 }), toArray()));
    assert.deepEqual(out.map((f) => f.frame.index), [0, 1, 2, 3, 4, 5]);
    for (const f of out) {
      assert.equal(f.stats.kept, 4);
      assert.equal(f.stats.total, 16);
      assert.ok(f.stats.scoreMs >= 0);
      assert.equal(f.tokens.length, 4 * D);
    }
    const subject = new Subject<EncodedFrame>();
    const done = lastValueFrom(subject.pipe(prune(pruner, { maxQueuedFrames: 2, maxBatchFrames: 1 }), toArray()));
    for (const f of frames) subject.next(f); // synchronous burst: 1 in flight + 2 queued, then overflow
    subject.complete();
    await assert.rejects(done, (e: { code?: string }) => e.code === 'WINNOW_ERR_QUEUE_OVERFLOW');
    const dropping = new Subject<EncodedFrame>();
    const kept = lastValueFrom(dropping.pipe(prune(pruner, { maxQueuedFrames: 2, maxBatchFrames: 1, overflow: 'drop-oldest' }), toArray()));
    for (const f of frames) dropping.next(f);
    dropping.complete();
    assert.deepEqual((await kept).map((f) => f.frame.index), [0, 4, 5]);
    // A batch of 2 in formation + 2 queued: the 5th and 6th frames push out the 3rd and 4th.
    const batched = new Subject<EncodedFrame>();
    const keptBatched = lastValueFrom(batched.pipe(prune(pruner, { maxQueuedFrames: 2, maxBatchFrames: 2, overflow: 'drop-oldest' }), toArray()));
    for (const f of frames) batched.next(f);
    batched.complete();
    assert.deepEqual((await keptBatched).map((f) => f.frame.index), [0, 1, 4, 5]);
    assert.throws(() => prune(pruner, { maxBatchFrames: 0 }), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  } finally {
    await pruner.close();
  }
});
