// The shared runtime's rules: which model and codebook a caller gets, what a runtime without a
// codebook prunes with, the model's input size, and its errors (codes, never messages).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VisionRuntime, WinnowRuntime, resolveModel } from '../../src/runtime/index.js';
import { BUNDLED_CODEBOOK, MODEL_DIR, codebookSkip, modelSkip } from '../shared/index.js';

test('defaults: the bundled codebook goes with the bundled model only', () => {
  const plain = resolveModel();
  assert.equal(plain.modelDir, MODEL_DIR);
  if (existsSync(BUNDLED_CODEBOOK)) assert.equal(plain.codebook, BUNDLED_CODEBOOK);
  else assert.equal(plain.noCodebookReason, 'bundled-codebook-missing');

  const other = resolveModel({ model: 'elsewhere/model' });
  assert.equal(other.modelDir, join(process.cwd(), 'elsewhere/model'));
  assert.equal(other.codebook, undefined);
  assert.equal(other.noCodebookReason, 'model-without-codebook');

  const both = resolveModel({ model: 'elsewhere/model', codebook: 'cb.safetensors' });
  assert.equal(both.codebook, join(process.cwd(), 'cb.safetensors'));
  assert.equal(both.noCodebookReason, undefined);
});

test('a named model without a codebook prunes with none, says so once, and refuses codebook strategies', { skip: modelSkip }, async () => {
  const lines: string[] = [];
  const rt = await WinnowRuntime.load({ model: MODEL_DIR, log: (l) => lines.push(l) });
  try {
    assert.equal(rt.codebook, undefined);
    assert.equal(rt.noCodebookReason, 'model-without-codebook');
    assert.equal(rt.defaultStrategy, 'none');
    assert.equal(lines.length, 1);
    const p = rt.createPruner();
    assert.equal(p.strategy, 'none');
    await p.close();
    for (const strategy of ['threshold', 'ratio', 'double-softmax'] as const) {
      assert.throws(() => rt.createPruner({ strategy }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    }
  } finally {
    await rt.close();
  }
  assert.throws(() => rt.createPruner(), { code: 'WINNOW_ERR_SESSION_CLOSED' });
  await rt.close(); // idempotent
});

test('the default runtime prunes with its codebook; pruners share the index and close freely', { skip: codebookSkip }, async () => {
  const rt = await WinnowRuntime.load();
  try {
    const defaults = rt.codebook?.defaults;
    assert.ok(defaults?.strategy);
    assert.equal(rt.defaultStrategy, defaults.strategy);
    const a = rt.createPruner();
    assert.equal(a.strategy, defaults.strategy);
    const b = rt.createPruner({ strategy: 'threshold', tau: 0.5 });
    assert.equal(b.strategy, 'threshold');
    // Closing one pruner must not close the shared index under another: b still scores.
    await a.close();
    const dim = rt.codebook?.dim ?? 0;
    const tokens = Float32Array.from({ length: 4 * dim }, (_, i) => Math.sin(i));
    const frame = { frame: { index: 0, ptsMs: 0, width: 2, height: 2, data: new Uint8Array(12) }, tokens, numTokens: 4, dim, gridH: 2, gridW: 2 };
    const pruned = await b.prune(frame);
    assert.equal(pruned.stats.total, 4);
    assert.ok(pruned.scores.every((x) => Number.isFinite(x)));
    await b.close();
    // winnow-tiny is fit-and-pad: offline decoding resizes to exactly the encoder's input size.
    assert.deepEqual(rt.offlineDecodeResize, { size: rt.inputSize, resize: 'pad' });
    assert.equal(rt.modelName, 'winnow-tiny');
  } finally {
    await rt.close();
  }
});

test('the vision runtime loads no language model', { skip: modelSkip }, async () => {
  const rt = await VisionRuntime.loadVision({ model: MODEL_DIR });
  try {
    assert.equal('lm' in rt, false);
    assert.ok(rt.inputSize.width > 0 && rt.inputSize.height > 0);
  } finally {
    await rt.close();
  }
});
