// Parity of threshold / ratio / double-softmax with an independent float64 plain-loop reference,
// on the paper's released codebooks, for float32 and float16 token matrices; one case goes
// through `winnow prune --json` end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCodebook } from '../../src/prune/codebook.js';
import { readNpy, writeNpy } from '../../src/prune/npy.js';
import { Pruner } from '../../src/prune/pruner.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { runCli, withTempDir } from '../shared/index.js';
import { LLAVA15_PT, LLAVAOV_PT, haveSeeds, makeTokens, refCosine, refDoubleSoftmax, refMax, refRatio, refThreshold } from './helpers.js';

function frameOf(tokens: Float32Array, L: number, D: number): EncodedFrame {
  return { frame: { index: 0, ptsMs: 0, width: 0, height: 0, data: new Uint8Array(0) }, tokens, numTokens: L, dim: D, gridH: 1, gridW: L };
}

/** Round-trips through .npy so float16 cases see exactly the values numpy would hold. */
function asDtype(tokens: Float32Array, L: number, D: number, dtype: '<f2' | '<f4'): Float32Array {
  return readNpy(writeNpy(tokens, L, D, dtype)).data;
}

test('parity on llava15-454 (threshold τ=0.45, ratio r=0.25/0.5) and llavaov-45 (double-softmax r=0.5, ratio)', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  const cb15 = await loadCodebook(LLAVA15_PT);
  const cbOV = await loadCodebook(LLAVAOV_PT);
  const cases = [
    { cb: cb15, L: 576, seed: 1, noise: 1.0, dtype: '<f4' as const },
    { cb: cb15, L: 576, seed: 2, noise: 0.7, dtype: '<f2' as const },
    { cb: cb15, L: 101, seed: 3, noise: 1.5, dtype: '<f4' as const },
    { cb: cbOV, L: 729, seed: 4, noise: 1.0, dtype: '<f4' as const },
    { cb: cbOV, L: 729, seed: 5, noise: 1.6, dtype: '<f2' as const },
    { cb: cbOV, L: 196, seed: 6, noise: 0.6, dtype: '<f2' as const },
  ];
  const pruners = new Map<string, Pruner>();
  const get = async (key: string, cb: typeof cb15, opts: ConstructorParameters<typeof Pruner>[2]): Promise<Pruner> => {
    let p = pruners.get(key);
    if (!p) {
      p = await Pruner.load({ codebook: cb, minKeep: 0, ...opts });
      pruners.set(key, p);
    }
    return p;
  };
  try {
    for (const c of cases) {
      const { cb, L } = c;
      const D = cb.dim;
      const P = cb.count;
      const tokens = asDtype(makeTokens(cb.prototypes, P, D, L, c.seed, c.noise), L, D, c.dtype);
      const S = refCosine(tokens, L, cb.prototypes, P, D);
      const s = refMax(S, L, P);
      const label = `${cb.count}×${D} L=${L} ${c.dtype} seed ${c.seed}`;
      // The cases must actually straddle the thresholds, or parity would be vacuous.
      const tau = 0.45;
      const below = refThreshold(s, tau).length;
      if (cb === cb15) assert.ok(below > L * 0.1 && below < L * 0.9, `${label}: ${below}/${L} below τ — fixture does not straddle τ`);

      const thr = await (await get(`thr-${P}`, cb, { strategy: 'threshold', tau })).prune(frameOf(tokens, L, D));
      assert.deepEqual(Array.from(thr.kept), refThreshold(s, tau), `${label}: threshold`);
      for (let i = 0; i < L; i++) assert.ok(Math.abs(thr.scores[i] - s[i]) < 2e-5, `${label}: score ${i}`);

      for (const r of [0.25, 0.5]) {
        const rat = await (await get(`ratio-${P}-${r}`, cb, { strategy: 'ratio', ratio: r })).prune(frameOf(tokens, L, D));
        assert.deepEqual(Array.from(rat.kept), refRatio(s, r), `${label}: ratio ${r}`);
      }
      const ds = await (await get(`ds-${P}`, cb, { strategy: 'double-softmax', ratio: 0.5 })).prune(frameOf(tokens, L, D));
      const expected = refDoubleSoftmax(S, L, P, 0.5);
      assert.deepEqual(Array.from(ds.kept), expected, `${label}: double-softmax`);
      // round(729·0.5) = 364 in Python, so at most 729 − 364 = 365 tokens survive.
      assert.ok(ds.kept.length <= L - Math.round(L * 0.5) + (L % 2 === 1 ? 1 : 0));
    }
  } finally {
    for (const p of pruners.values()) await p.close();
  }
});

test('winnow prune --json matches the reference (float16 .npy, .pt codebook)', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  const cb = await loadCodebook(LLAVA15_PT);
  const L = 200;
  const D = cb.dim;
  await withTempDir('winnow-prune-', (dir) => {
    const npy = writeNpy(makeTokens(cb.prototypes, cb.count, D, L, 11, 0.9), L, D, '<f2');
    const file = join(dir, 'tokens.npy');
    writeFileSync(file, npy);
    const tokens = readNpy(npy).data;
    const s = refMax(refCosine(tokens, L, cb.prototypes, cb.count, D), L, cb.count);
    const run = (args: string[]): { kept: number[]; scores: number[] } => {
      const r = runCli(['prune', file, '--codebook', LLAVA15_PT, ...args, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      return JSON.parse(lines[lines.length - 1]) as { kept: number[]; scores: number[] };
    };
    const thr = run(['--strategy', 'threshold', '--tau', '0.45']);
    assert.deepEqual(thr.kept, refThreshold(s, 0.45));
    assert.equal(thr.scores.length, L);
    for (let i = 0; i < L; i++) assert.ok(Math.abs(thr.scores[i] - s[i]) < 2e-5);
    const rat = run(['--strategy', 'ratio', '--ratio', '0.3']);
    assert.deepEqual(rat.kept, refRatio(s, 0.3));
    // Without --strategy/--tau the released codebook's defaults apply (threshold, τ = 0.45).
    assert.deepEqual(run([]).kept, refThreshold(s, 0.45));
  });
});
