// A codebook names the vision encoder it was built from (sha256). Loading it against another
// encoder is an error with a code by default, a reported warning when asked, or unchecked ('off');
// a codebook that names no encoder (a paper `.pt`) is not refused. Library, engine and CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WinnowError } from '../../src/errors.js';
import { Pruner, checkCodebookEncoder, loadCodebook, saveCodebook, sha256File, type Codebook } from '../../src/prune/index.js';
import { WinnowEngine } from '../../src/stream/engine.js';
import { writeDataset } from '../../src/synth/index.js';
import { BUNDLED_CODEBOOK, MODEL_DIR, codebookSkip, fileTempDir, runCli } from '../shared/index.js';

const tmp = fileTempDir('winnow-enc-check-');

function tinyCodebook(sha?: string): Codebook {
  const dim = 4;
  const prototypes = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]);
  return { prototypes, count: 2, dim, dtype: 'F32', model: { name: 't', llmWidth: dim, ...(sha ? { visionEncoderSha256: sha } : {}) }, defaults: { strategy: 'ratio', ratio: 0.5 }, extraMetadata: {}, path: 'tiny.safetensors' };
}

test('checkCodebookEncoder: match, mismatch (error / warn / off), unrecorded, unreadable encoder', async () => {
  const enc = join(tmp.dir, 'vision_encoder.onnx');
  writeFileSync(enc, Buffer.from('not really onnx, but bytes with a fingerprint'));
  const sha = createHash('sha256').update(readFileSync(enc)).digest('hex');
  assert.equal(await sha256File(enc), sha);

  assert.equal((await checkCodebookEncoder(tinyCodebook(sha), enc)).status, 'match');
  // Fingerprints are hex: case must not matter.
  assert.equal((await checkCodebookEncoder(tinyCodebook(sha.toUpperCase()), enc)).status, 'match');

  const other = '0'.repeat(64);
  await assert.rejects(checkCodebookEncoder(tinyCodebook(other), enc), (e: unknown) => {
    assert.ok(e instanceof WinnowError);
    assert.equal(e.code, 'WINNOW_ERR_CODEBOOK_MISMATCH');
    assert.equal(e.retryable, false);
    assert.equal(e.details.expectedSha256, other);
    assert.equal(e.details.actualSha256, sha);
    return true;
  });
  const warnings: WinnowError[] = [];
  const warned = await checkCodebookEncoder(tinyCodebook(other), enc, { policy: 'warn', onWarning: (w) => warnings.push(w) });
  assert.equal(warned.status, 'mismatch');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].code, 'WINNOW_ERR_CODEBOOK_MISMATCH');
  // 'off' never reads the encoder, so even a missing file passes.
  assert.equal((await checkCodebookEncoder(tinyCodebook(other), join(tmp.dir, 'missing.onnx'), { policy: 'off' })).status, 'skipped');
  assert.equal((await checkCodebookEncoder(tinyCodebook(), enc)).status, 'unrecorded');
  await assert.rejects(checkCodebookEncoder(tinyCodebook(other), join(tmp.dir, 'missing.onnx')), { code: 'WINNOW_ERR_IO' });
  await assert.rejects(checkCodebookEncoder(tinyCodebook(other), enc, { policy: 'maybe' as never }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(checkCodebookEncoder(tinyCodebook(other), enc, { signal: ac.signal }), { code: 'WINNOW_ERR_ABORTED' });
});

test('Pruner.load refuses a codebook built for another encoder, prunes under warn', async () => {
  const enc = join(tmp.dir, 'enc2.onnx');
  writeFileSync(enc, Buffer.from('encoder two'));
  const cb = tinyCodebook('f'.repeat(64));
  await assert.rejects(Pruner.load({ codebook: cb, visionEncoderPath: enc }), { code: 'WINNOW_ERR_CODEBOOK_MISMATCH' });
  const warnings: string[] = [];
  const p = await Pruner.load({ codebook: cb, visionEncoderPath: enc, encoderCheck: 'warn', onWarning: (w) => warnings.push(w.code) });
  try {
    assert.deepEqual(warnings, ['WINNOW_ERR_CODEBOOK_MISMATCH']);
    const tokens = new Float32Array([1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    const out = await p.prune({ frame: { index: 0, ptsMs: 0, width: 0, height: 0, data: new Uint8Array(0) }, tokens, numTokens: 4, dim: 4, gridH: 1, gridW: 4 });
    // Ratio 0.5 of 4 tokens: the two unlike any prototype (indices 1 and 3) stay.
    assert.deepEqual([...out.kept].sort(), [1, 3]);
  } finally {
    await p.close();
  }
  // Without an encoder path there is nothing to compare: no hashing, no refusal (a bare token matrix).
  const bare = await Pruner.load({ codebook: cb });
  await bare.close();
});

test('engine and `winnow ask`: the bundled pair matches; a codebook of another encoder is refused, or warned about', { skip: codebookSkip, timeout: 180_000 }, async () => {
  const bundled = await loadCodebook(BUNDLED_CODEBOOK);
  const check = await checkCodebookEncoder(bundled, join(MODEL_DIR, 'onnx', 'vision_encoder.onnx'));
  assert.equal(check.status, 'match', 'the bundled codebook belongs to the bundled vision encoder');
  const foreign = join(tmp.dir, 'foreign.safetensors');
  await saveCodebook(foreign, { ...bundled, model: { ...bundled.model!, visionEncoderSha256: 'a'.repeat(64) } });

  await assert.rejects(WinnowEngine.load({ codebook: foreign, executionProvider: 'cpu' }), { code: 'WINNOW_ERR_CODEBOOK_MISMATCH' });
  const warnings: string[] = [];
  const engine = await WinnowEngine.load({ codebook: foreign, codebookCheck: 'warn', onWarning: (w) => warnings.push(w.code), executionProvider: 'cpu' });
  await engine.close();
  assert.deepEqual(warnings, ['WINNOW_ERR_CODEBOOK_MISMATCH']);

  const { files } = await writeDataset({ outDir: join(tmp.dir, 'set'), seed: 11, stills: 1, videos: 0, durationS: 1 });
  const still = files.find((f) => f.endsWith('.png'))!;
  // From another cwd: the default model resolves from the package, not the cwd.
  const cli = (...args: string[]) => runCli(['ask', still, 'what color is the square?', '--json', ...args], { cwd: tmpdir() });
  const refused = cli('--codebook', foreign);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /WINNOW_ERR_CODEBOOK_MISMATCH/);
  const warned = cli('--codebook', foreign, '--codebook-check', 'warn');
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /warning: .*sha256/);
  assert.equal(typeof (JSON.parse(warned.stdout.trim()) as { answer: unknown }).answer, 'string');
  const bundledRun = cli();
  assert.equal(bundledRun.code, 0, bundledRun.stderr);
  assert.doesNotMatch(bundledRun.stderr, /warning/);
});
