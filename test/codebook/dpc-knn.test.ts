import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dpcKnn, seededRandom } from '../../src/prune/build/dpc-knn.js';

/** Points of `dim` around `centres`, each blob `per` points on a small deterministic spiral. */
function blobs(centres: number[][], per: number, spread: number): { points: Float32Array; blob: number[] } {
  const dim = centres[0].length;
  const points = new Float32Array(centres.length * per * dim);
  const blob: number[] = [];
  let p = 0;
  centres.forEach((c, b) => {
    for (let k = 0; k < per; k++) {
      const a = k * 2.399; // golden angle
      const r = spread * Math.sqrt(k / per);
      for (let t = 0; t < dim; t++) points[p * dim + t] = c[t] + (t === 0 ? r * Math.cos(a) : t === 1 ? r * Math.sin(a) : 0);
      blob.push(b);
      p++;
    }
  });
  return { points, blob };
}

test('well-separated blobs come out as the blobs, each centre in its own cluster', () => {
  const { points, blob } = blobs([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 5]], 12, 1);
  const r = dpcKnn(points, blob.length, 3, 4, { random: seededRandom(1) });
  assert.equal(r.centres.length, 4);
  // One centre per blob.
  assert.deepEqual(new Set(Array.from(r.centres, (c) => blob[c])).size, 4);
  // Every point is with its blob's centre.
  for (let i = 0; i < blob.length; i++) assert.equal(blob[r.centres[r.labels[i]]], blob[i], `point ${i}`);
  for (let c = 0; c < r.centres.length; c++) assert.equal(r.labels[r.centres[c]], c);
});

test('the densest point is a centre and its δ is the largest pairwise distance', () => {
  // A tight blob (dense) and a loose one.
  const { points } = blobs([[0, 0], [20, 0]], 10, 0.5);
  for (let k = 10; k < 20; k++) points[k * 2] = 20 + (k - 10) * 1.5;
  const n = 20;
  const r = dpcKnn(points, n, 2, 2, { noiseScale: 0 });
  let densest = 0;
  for (let i = 1; i < n; i++) if (r.density[i] > r.density[densest]) densest = i;
  assert.ok(Array.from(r.centres).includes(densest));
  let maxD = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) maxD = Math.max(maxD, Math.hypot(points[2 * i] - points[2 * j], points[2 * i + 1] - points[2 * j + 1]) / Math.sqrt(2));
  assert.ok(Math.abs(r.delta[densest] - maxD) < 1e-9);
});

test('density is exp(−mean squared distance to the k nearest points, itself included)', () => {
  // On a line at 0, 1, 3, 6 with k = 2: nearest of 0 are {0 (self), 1} → mean sq = (0 + 1/2)/2.
  const pts = Float32Array.from([0, 1, 3, 6].flatMap((x) => [x, 0]));
  const r = dpcKnn(pts, 4, 2, 1, { k: 2, noiseScale: 0 });
  const d = (x: number) => x / Math.sqrt(2);
  assert.ok(Math.abs(r.density[0] - Math.exp(-(0 + d(1) ** 2) / 2)) < 1e-12);
  assert.ok(Math.abs(r.density[3] - Math.exp(-(0 + d(3) ** 2) / 2)) < 1e-12);
  // δ of a non-densest point: distance to the nearest denser one.
  assert.ok(Math.abs(r.delta[2] - d(2)) < 1e-6);
});

test('invariant to input order apart from the seeded noise', () => {
  const { points, blob } = blobs([[0, 0, 0, 0], [6, 1, 0, 0], [0, 7, 2, 0]], 9, 2);
  const n = blob.length;
  const dim = 4;
  const noise = new Float64Array(n);
  const rnd = seededRandom(42);
  for (let i = 0; i < n; i++) noise[i] = rnd() * 1e-6;
  const a = dpcKnn(points, n, dim, 3, { noise });
  // Reverse-and-rotate permutation; the noise travels with its point.
  const perm = Array.from({ length: n }, (_, i) => (n - 1 - i + 5) % n);
  const pp = new Float32Array(n * dim);
  const pn = new Float64Array(n);
  perm.forEach((src, dst) => {
    pp.set(points.subarray(src * dim, (src + 1) * dim), dst * dim);
    pn[dst] = noise[src];
  });
  const b = dpcKnn(pp, n, dim, 3, { noise: pn });
  assert.deepEqual(new Set(Array.from(b.centres, (c) => perm[c])), new Set(a.centres));
  for (let dst = 0; dst < n; dst++) assert.equal(perm[b.centres[b.labels[dst]]], a.centres[a.labels[perm[dst]]]);
});

test('seeded noise makes runs repeatable; more clusters than points is clamped', () => {
  const { points, blob } = blobs([[0, 0], [5, 5]], 6, 1);
  const x = dpcKnn(points, blob.length, 2, 3, { random: seededRandom(7) });
  const y = dpcKnn(points, blob.length, 2, 3, { random: seededRandom(7) });
  assert.deepEqual(x.labels, y.labels);
  assert.deepEqual(x.centres, y.centres);
  const small = dpcKnn(points, 3, 2, 8, { random: seededRandom(1) });
  assert.equal(small.centres.length, 3);
  assert.deepEqual(Array.from(small.labels).sort(), [0, 1, 2]);
});
