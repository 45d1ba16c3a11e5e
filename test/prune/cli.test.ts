// `winnow codebook import` / `winnow codebook inspect` end to end on a released .pt codebook: the
// imported .safetensors holds the same prototypes, inspect reports what the issue names (P, D,
// dtype, norms, metadata), and pruning with the .pt or its import keeps the same tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { codebookNormStats, loadCodebook } from '../../src/prune/codebook.js';
import { writeNpy } from '../../src/prune/npy.js';
import { runCli, withTempDir } from '../shared/index.js';
import { LLAVAOV_PT, haveSeeds, makeTokens } from './helpers.js';

const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').pop() as string) as T;

test('codebook import + inspect on llavaov-45.pt; prune with the .pt and with its import agree', { skip: !haveSeeds && 'seed codebooks missing' }, async () => {
  await withTempDir('winnow-cb-cli-', async (dir) => {
    const out = join(dir, 'ov.safetensors');
    const imp = runCli(['codebook', 'import', LLAVAOV_PT, '--out', out, '--model-name', 'llava-onevision-7b', '--strategy', 'double-softmax', '--ratio', '0.5', '--json']);
    assert.equal(imp.code, 0, imp.stderr);
    const summary = lastJson<{ count: number; dim: number; dtype: string; sampleIds: number }>(imp.stdout);
    assert.deepEqual([summary.count, summary.dim, summary.dtype, summary.sampleIds], [45, 3584, 'F16', 45]);
    const pt = await loadCodebook(LLAVAOV_PT);
    const st = await loadCodebook(out);
    assert.deepEqual(st.prototypes, pt.prototypes); // float16 both ways: exact
    assert.deepEqual(st.defaults, { strategy: 'double-softmax', ratio: 0.5 });
    assert.equal(st.model?.name, 'llava-onevision-7b');
    assert.equal(st.model?.llmWidth, 3584);
    // Refuses to overwrite without --force, with a stable code.
    const again = runCli(['codebook', 'import', LLAVAOV_PT, '--out', out, '--json']);
    assert.equal(again.code, 1);
    assert.equal(lastJson<{ error: { code: string } }>(again.stderr).error.code, 'WINNOW_ERR_INVALID_ARGUMENT');

    const ins = runCli(['codebook', 'inspect', out, '--json']);
    assert.equal(ins.code, 0, ins.stderr);
    const info = lastJson<{ count: number; dim: number; dtype: string; norms: { min: number; mean: number; max: number }; defaults: unknown; model: { name: string } }>(ins.stdout);
    const norms = codebookNormStats(pt);
    assert.deepEqual([info.count, info.dim, info.dtype, info.model.name], [45, 3584, 'F16', 'llava-onevision-7b']);
    assert.ok(Math.abs(info.norms.mean - norms.mean) < 1e-6 && Math.abs(info.norms.min - norms.min) < 1e-6 && Math.abs(info.norms.max - norms.max) < 1e-6);
    const text = runCli(['codebook', 'inspect', LLAVAOV_PT]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /45 × 3584/);

    const L = 64;
    const npy = join(dir, 'tokens.npy');
    writeFileSync(npy, writeNpy(makeTokens(pt.prototypes, 45, 3584, L, 9, 1.0), L, 3584, '<f4'));
    const viaPt = runCli(['prune', npy, '--codebook', LLAVAOV_PT, '--strategy', 'ratio', '--ratio', '0.3', '--json']);
    const viaSt = runCli(['prune', npy, '--codebook', out, '--strategy', 'ratio', '--ratio', '0.3', '--json']);
    assert.equal(viaPt.code, 0, viaPt.stderr);
    assert.equal(viaSt.code, 0, viaSt.stderr);
    const a = lastJson<{ kept: number[]; scores: number[] }>(viaPt.stdout);
    assert.equal(a.kept.length, Math.round(L * 0.3));
    assert.deepEqual(lastJson<{ kept: number[] }>(viaSt.stdout).kept, a.kept);
    // The import's default strategy applies when none is given: double-softmax keeps < L/2.
    const dflt = runCli(['prune', npy, '--codebook', out, '--json']);
    assert.equal(dflt.code, 0, dflt.stderr);
    assert.ok(lastJson<{ kept: number[] }>(dflt.stdout).kept.length <= L / 2);
    // none keeps every token; random keeps round(L·r) distinct tokens in order, the same for the same seed.
    const none = runCli(['prune', npy, '--codebook', out, '--strategy', 'none', '--json']);
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(lastJson<{ kept: number[] }>(none.stdout).kept, Array.from({ length: L }, (_, i) => i));
    const rnd = runCli(['prune', npy, '--codebook', out, '--strategy', 'random', '--ratio', '0.25', '--json']);
    assert.equal(rnd.code, 0, rnd.stderr);
    const kept = lastJson<{ kept: number[] }>(rnd.stdout).kept;
    assert.equal(kept.length, Math.round(L * 0.25));
    assert.ok(kept.every((k, i) => Number.isInteger(k) && k >= 0 && k < L && (i === 0 || k > kept[i - 1])));
    assert.deepEqual(lastJson<{ kept: number[] }>(runCli(['prune', npy, '--codebook', out, '--strategy', 'random', '--ratio', '0.25', '--json']).stdout).kept, kept);
    // An unknown strategy is refused with a stable code.
    const bad = runCli(['prune', npy, '--codebook', out, '--strategy', 'median']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /WINNOW_ERR_INVALID_ARGUMENT/);
  });
});
