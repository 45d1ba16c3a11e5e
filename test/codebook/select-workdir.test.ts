import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REFERENCE_PARAMETERS } from '../../src/prune/build/builder.js';
import { neighbourhood } from '../../src/prune/build/experiments.js';
import { lowInformation, selectImageTokens, selectPrototypes } from '../../src/prune/build/select.js';
import { WorkDir } from '../../src/prune/build/workdir.js';
import { withTempDir } from '../shared/index.js';

const P = { ...REFERENCE_PARAMETERS };

test('neighbourhood: 3×3 in raster order, shifted inwards at the border as the reference does', () => {
  const out = new Int32Array(9);
  assert.equal(neighbourhood(0, 14, 14, 3, out), 9);
  assert.deepEqual(Array.from(out), [0, 1, 2, 14, 15, 16, 28, 29, 30]);
  neighbourhood(15, 14, 14, 3, out);
  assert.deepEqual(Array.from(out), [0, 1, 2, 14, 15, 16, 28, 29, 30]);
  neighbourhood(195, 14, 14, 3, out);
  assert.deepEqual(Array.from(out), [165, 166, 167, 179, 180, 181, 193, 194, 195]);
  neighbourhood(14 * 5 + 7, 14, 14, 3, out);
  assert.deepEqual(Array.from(out), [62, 63, 64, 76, 77, 78, 90, 91, 92]);
  const small = new Int32Array(9);
  assert.equal(neighbourhood(1, 2, 2, 3, small), 4);
});

test('low information needs both k_ctx·JSD_ctx + k_glob·JSD_glob < τ_jsd and p < τ_p', () => {
  // τ_jsd 2e-3, k_glob 16: glob 1e-4 → 1.6e-3 (+ ctx 1e-4 → 1.7e-3 < 2e-3); glob 1.2e-4 → 1.92e-3 + 1e-4 ≥ 2e-3.
  const top = [0.1, 0.1, 0.2, 0.1];
  const ctx = [1e-4, 1e-4, 1e-4, 5e-4];
  const glob = [1e-4, 1.2e-4, 0, 0];
  assert.deepEqual(lowInformation(top, ctx, glob, P), [0, 3]);
});

test('per-image rule keeps low-information tokens of small clusters only', () => {
  // 40 tokens in one big clump + a group of 6 far away (≥ k points, so it has a density of its own).
  const dim = 2;
  const n = 46;
  const pts = new Float32Array(n * dim);
  for (let i = 0; i < 40; i++) {
    pts[i * 2] = Math.cos(i) * 0.5;
    pts[i * 2 + 1] = Math.sin(i) * 0.5;
  }
  for (let i = 40; i < 46; i++) {
    pts[i * 2] = 30 + (i - 40) * 0.1;
    pts[i * 2 + 1] = 30;
  }
  const low = [0, 1, 2, 40, 41, 43];
  const { selected, labels } = selectImageTokens(pts, n, dim, low, 0, { ...P, imageClusters: 2 });
  assert.notEqual(labels[0], labels[40]);
  assert.deepEqual(selected, [40, 41, 43]);
});

test('global rule keeps clusters spanning more than minDistinctImages images, in reference order', () => {
  const dim = 2;
  // Cluster A near (0,0) from images a,b,c; cluster B near (50,50) from image a only.
  const rows = Float32Array.from([0, 0, 50, 50, 0.1, 0, 50.1, 50, 0, 0.1, 50, 50.1]);
  const imgs = ['a', 'a', 'b', 'a', 'c', 'a'];
  const g = selectPrototypes(rows, 6, dim, imgs, { ...P, globalClusters: 2, minDistinctImages: 2 });
  assert.deepEqual(g.rows, [0, 2, 4]);
  assert.deepEqual(g.clusters.map((c) => [c.size, c.distinctImages, c.kept]), [[3, 3, true], [3, 1, false]]);
  assert.deepEqual(selectPrototypes(rows, 6, dim, imgs, { ...P, globalClusters: 2, minDistinctImages: 3 }).rows, []);
});

test('work dir: a torn last line and surplus rows are cut off; another build is refused', async () => {
  await withTempDir('winnow-wd-', (dir) => {
    const key = { parameters: { a: 1 }, source: 'x' };
    const w = WorkDir.open(dir, 2, key);
    const rec = (i: number, rows: number) => ({ i, id: `img${i}`, gridH: 1, gridW: rows, topProb: [0.1, 0.2], jsdCtx: [0, 0], jsdGlob: [0, 0], rowCount: rows, ms: 1 });
    w.append(rec(0, 2), Float32Array.from([1, 2, 3, 4]));
    w.append(rec(1, 1), Float32Array.from([5, 6]));
    w.close();
    // Simulate a kill during image 2: its rows written, its line torn.
    appendFileSync(join(dir, 'rows.f32'), Buffer.from(Float32Array.from([7, 8]).buffer));
    appendFileSync(join(dir, 'images.jsonl'), '{"i":2,"id":"img2","gri');
    const w2 = WorkDir.open(dir, 2, key);
    assert.deepEqual(w2.done.map((r) => r.id), ['img0', 'img1']);
    assert.equal(statSync(join(dir, 'rows.f32')).size, 3 * 2 * 4);
    assert.ok(readFileSync(join(dir, 'images.jsonl'), 'utf8').endsWith('}\n'));
    assert.deepEqual(Array.from(w2.readRows()), [1, 2, 3, 4, 5, 6]);
    w2.append(rec(2, 0), new Float32Array(0));
    assert.equal(w2.done[2].rowOffset, 3);
    w2.close();
    assert.throws(() => WorkDir.open(dir, 2, { parameters: { a: 2 }, source: 'x' }), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
    // Damaged: rows missing for finished images.
    writeFileSync(join(dir, 'rows.f32'), Buffer.alloc(4));
    assert.throws(() => WorkDir.open(dir, 2, key), (e: { code?: string }) => e.code === 'WINNOW_ERR_IO');
  });
});
