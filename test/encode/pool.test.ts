import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolTokenGrid, pooledGridSize } from '../../src/encode/index.js';

/** Token (y, x) channel d holds 10·y + x + 100·d: linear in y and x, so interpolation is checkable by hand. */
function grid(h: number, w: number, dim: number): Float32Array {
  const t = new Float32Array(h * w * dim);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let d = 0; d < dim; d++) t[(y * w + x) * dim + d] = 10 * y + x + 100 * d;
  return t;
}

const at = (t: Float32Array, w: number, dim: number, y: number, x: number, d: number): number => t[(y * w + x) * dim + d];

test('avg 2×2 on a 4×4 grid', () => {
  const p = poolTokenGrid(grid(4, 4, 2), 4, 4, 2, { stride: 2, mode: 'avg' });
  assert.equal(p.gridH, 2);
  assert.equal(p.gridW, 2);
  assert.equal(p.tokens.length, 2 * 2 * 2);
  assert.equal(at(p.tokens, 2, 2, 0, 0, 0), (0 + 1 + 10 + 11) / 4);
  assert.equal(at(p.tokens, 2, 2, 0, 1, 0), (2 + 3 + 12 + 13) / 4);
  assert.equal(at(p.tokens, 2, 2, 1, 0, 1), (120 + 121 + 130 + 131) / 4);
  assert.equal(at(p.tokens, 2, 2, 1, 1, 0), (22 + 23 + 32 + 33) / 4);
});

test('avg on an odd grid uses the cells that exist (ceil mode, padding not counted)', () => {
  const p = poolTokenGrid(grid(3, 3, 1), 3, 3, 1, { stride: 2, mode: 'avg' });
  assert.deepEqual([p.gridH, p.gridW], [2, 2]);
  assert.deepEqual([...p.tokens], [(0 + 1 + 10 + 11) / 4, (2 + 12) / 2, (20 + 21) / 2, 22]);
});

test('max 2×2', () => {
  const p = poolTokenGrid(grid(4, 4, 1), 4, 4, 1, { stride: 2, mode: 'max' });
  assert.deepEqual([...p.tokens], [11, 13, 31, 33]);
});

test('bilinear 14×14 → 7×7 equals 2×2 avg (align_corners=False, scale 2)', () => {
  const src = new Float32Array(196 * 3);
  let s = 1;
  for (let i = 0; i < src.length; i++) src[i] = ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const bil = poolTokenGrid(src, 14, 14, 3, { stride: 2, mode: 'bilinear' });
  const avg = poolTokenGrid(src, 14, 14, 3, { stride: 2, mode: 'avg' });
  assert.equal(bil.tokens.length, 49 * 3);
  for (let i = 0; i < bil.tokens.length; i++) assert.ok(Math.abs(bil.tokens[i] - avg.tokens[i]) < 1e-6, `index ${i}`);
});

test('bilinear 3×3 → 2×2 by hand: source coords 0.25 and 1.75', () => {
  const p = poolTokenGrid(grid(3, 3, 1), 3, 3, 1, { stride: 2, mode: 'bilinear' });
  // Values are linear (10y + x), so bilinear interpolation returns 10·sy + sx exactly.
  assert.deepEqual([...p.tokens], [2.75, 4.25, 17.75, 19.25]);
});

test('bilinear 27×27 → 14×14 (LLaVA-OneVision video) follows PyTorch source indexing', () => {
  const p = poolTokenGrid(grid(27, 27, 2), 27, 27, 2, { stride: 2, mode: 'bilinear' });
  assert.deepEqual([p.gridH, p.gridW], [14, 14]);
  const src = (i: number): number => Math.max(0, ((i + 0.5) * 27) / 14 - 0.5);
  for (let y = 0; y < 14; y++) {
    for (let x = 0; x < 14; x++) {
      for (let d = 0; d < 2; d++) {
        const expected = 10 * src(y) + src(x) + 100 * d;
        assert.ok(Math.abs(at(p.tokens, 14, 2, y, x, d) - expected) < 1e-4, `(${y},${x},${d})`);
      }
    }
  }
  assert.deepEqual(pooledGridSize(27, 27, 2), { gridH: 14, gridW: 14 });
});

test('stride 1 copies; wrong buffer sizes and strides fail with WINNOW_ERR_INVALID_ARGUMENT', () => {
  const g = grid(2, 2, 1);
  const p = poolTokenGrid(g, 2, 2, 1, { stride: 1, mode: 'avg' });
  assert.deepEqual(p.tokens, g);
  assert.notEqual(p.tokens, g);
  assert.throws(() => poolTokenGrid(g, 3, 2, 1, { stride: 2, mode: 'avg' }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  assert.throws(() => poolTokenGrid(g, 2, 2, 1, { stride: 0, mode: 'avg' }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});
