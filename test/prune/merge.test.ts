// Merging near-duplicate prototypes (the codebook builder's optional last step).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeNearDuplicates } from '../../src/prune/build/merge.js';
import { gaussian } from './helpers.js';

test('mergeNearDuplicates: greedy in row order, first member represents its group, threshold inclusive', () => {
  const D = 16;
  const g = gaussian(77);
  const bases = Array.from({ length: 3 }, () => Float32Array.from({ length: D }, g));
  // Rows: base0, base1, base0·3 (same direction), base1 + tiny noise, base2, base0 + big noise.
  const rows: Float32Array[] = [bases[0], bases[1], bases[0].map((v) => 3 * v), bases[1].map((v) => v + 1e-3 * g()), bases[2], bases[0].map((v) => v + 2 * g())];
  const flat = new Float32Array(rows.length * D);
  rows.forEach((r, i) => flat.set(r, i * D));
  const m = mergeNearDuplicates(flat, rows.length, D, 0.99);
  assert.deepEqual(m.keep, [0, 1, 4, 5]);
  assert.deepEqual(Array.from(m.groupOf), [0, 1, 0, 1, 2, 3]);
  // Threshold 1 still merges exact multiples (cosine rounds to ≥ 1), nothing else.
  const exact = mergeNearDuplicates(flat, rows.length, D, 1 - 1e-7);
  assert.deepEqual(exact.keep, [0, 1, 3, 4, 5]);
  // A low threshold folds everything similar enough into the first row.
  assert.ok(mergeNearDuplicates(flat, rows.length, D, 0.01).keep.length < 4);
  for (const bad of [0, -0.5, 1.5, Number.NaN]) {
    assert.throws(() => mergeNearDuplicates(flat, rows.length, D, bad), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  }
  assert.deepEqual(mergeNearDuplicates(new Float32Array(0), 0, D, 0.9).keep, []);
});

test('mergeNearDuplicates: every dropped row is within the threshold of its representative, every kept pair is not', () => {
  const D = 8;
  const N = 300;
  const g = gaussian(5);
  const centres = Array.from({ length: 12 }, () => Float32Array.from({ length: D }, g));
  const flat = new Float32Array(N * D);
  for (let i = 0; i < N; i++) for (let k = 0; k < D; k++) flat[i * D + k] = centres[i % 12][k] + 0.05 * g();
  const cos = (a: number, b: number): number => {
    let d = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < D; k++) {
      d += flat[a * D + k] * flat[b * D + k];
      na += flat[a * D + k] ** 2;
      nb += flat[b * D + k] ** 2;
    }
    return d / Math.sqrt(na * nb);
  };
  const theta = 0.995;
  const m = mergeNearDuplicates(flat, N, D, theta);
  assert.ok(m.keep.length >= 12 && m.keep.length < N, `${m.keep.length} kept`);
  for (let i = 0; i < N; i++) assert.ok(cos(i, m.keep[m.groupOf[i]]) >= theta - 1e-6, `row ${i}`);
  for (let a = 0; a < m.keep.length; a++) for (let b = 0; b < a; b++) assert.ok(cos(m.keep[a], m.keep[b]) < theta + 1e-6);
});
