import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsdTopK, topKIndices, topProbability } from '../../src/prune/build/divergence.js';

/** The reference formula, written out independently: torch softmax / F.kl_div(log p, m).mean(). */
function referenceJsd(base: number[], ref: number[], k: number): number {
  const idx = base.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((x) => x[1]);
  const sm = (xs: number[]): number[] => {
    const m = Math.max(...xs);
    const e = xs.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };
  const p = sm(idx.map((i) => base[i]));
  const q = sm(idx.map((i) => ref[i]));
  const m = p.map((x, j) => 0.5 * (x + q[j]));
  const kl = (x: number[]): number => m.reduce((s, mj, j) => s + mj * (Math.log(mj) - Math.log(x[j])), 0) / m.length;
  return 0.5 * (kl(p) + kl(q));
}

test('topKIndices returns the k largest, descending, lower index first on ties', () => {
  assert.deepEqual(Array.from(topKIndices([1, 5, 3, 5, 0, 4], 3)), [1, 3, 5]);
  assert.deepEqual(Array.from(topKIndices([2, 1], 5)), [0, 1]);
});

test('topProbability is the largest softmax probability over the top-k logits', () => {
  const logits = Array.from({ length: 75 }, (_, i) => Math.sin(i * 1.7) * 3);
  const top = [...logits].sort((a, b) => b - a).slice(0, 50);
  const s = top.reduce((a, x) => a + Math.exp(x - top[0]), 0);
  assert.ok(Math.abs(topProbability(logits, 50) - 1 / s) < 1e-12);
  // Uniform logits: 1/k.
  assert.ok(Math.abs(topProbability(new Float32Array(75), 50) - 1 / 50) < 1e-12);
});

test('JSD matches the reference formula (KL(M‖·) averaged over the top-10 of the base run)', () => {
  let seed = 3;
  const r = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 8 - 4;
  for (let t = 0; t < 20; t++) {
    const base = Array.from({ length: 75 }, r);
    const ref = base.map((x) => x + r() * (t / 10));
    const got = jsdTopK(Float32Array.from(base), Float32Array.from(ref), 10);
    const want = referenceJsd(Array.from(Float32Array.from(base)), Array.from(Float32Array.from(ref)), 10);
    assert.ok(Math.abs(got - want) <= 1e-12 + 1e-9 * want, `${got} vs ${want}`);
  }
});

test('JSD is 0 for identical logits, grows with the change, ignores entries outside the top-k', () => {
  const base = Float32Array.from({ length: 30 }, (_, i) => 30 - i);
  assert.equal(jsdTopK(base, base, 10), 0);
  const small = Float32Array.from(base);
  small[0] -= 0.1;
  const big = Float32Array.from(base);
  big[0] -= 2;
  assert.ok(jsdTopK(base, small, 10) > 0);
  assert.ok(jsdTopK(base, big, 10) > jsdTopK(base, small, 10));
  const outside = Float32Array.from(base);
  outside[20] += 100;
  assert.equal(jsdTopK(base, outside, 10), 0);
});
