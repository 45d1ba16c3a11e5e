// The bundled codebook against the bundled model, on tokens the model really produces (rendered
// stills, decoded by ffmpeg, encoded by the vision encoder): it belongs to this encoder
// (fingerprint), `auto` picks the exact scorer for it, and HNSW at its default ef agrees with the
// exact scorer on ≥ 99.9 % of keep decisions at the codebook's default τ and default ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/encode/index.js';
import { loadCodebook } from '../../src/prune/codebook.js';
import { createPrototypeIndex } from '../../src/prune/prototype-index.js';
import { ratioStrategy } from '../../src/prune/strategies.js';
import { BUNDLED_CODEBOOK, MODEL_DIR, codebookSkip } from '../shared/index.js';
import { encodeFile, renderStills } from '../codebook/helpers.js';

test('bundled codebook: fingerprint of the bundled encoder, auto = exact, HNSW agrees with exact on real tokens', { skip: codebookSkip, timeout: 120_000 }, async () => {
  const cb = await loadCodebook(BUNDLED_CODEBOOK);
  const sha = createHash('sha256').update(readFileSync(join(MODEL_DIR, 'onnx', 'vision_encoder.onnx'))).digest('hex');
  assert.equal(cb.model?.visionEncoderSha256, sha, 'the codebook was built for the bundled vision encoder');
  const tau = cb.defaults?.tau;
  const ratio = cb.defaults?.ratio;
  const strategy = cb.defaults?.strategy;
  assert.ok(strategy === 'threshold' || strategy === 'ratio', `default strategy ${strategy}`);
  assert.ok(tau !== undefined && tau > 0 && tau < 1);
  if (strategy === 'ratio') assert.ok(ratio !== undefined && ratio > 0 && ratio <= 0.2, `default ratio ${ratio}`);
  const folder = await loadModel(MODEL_DIR, { executionProvider: 'cpu', components: ['vision_encoder'] });
  const { files, cleanup } = await renderStills(12, 17);
  const auto = await createPrototypeIndex(cb.prototypes, cb.count, cb.dim);
  const hnsw = await createPrototypeIndex(cb.prototypes, cb.count, cb.dim, { backend: 'hnsw' });
  try {
    assert.equal(auto.backend, 'exact', `${cb.count} × ${cb.dim} is below the HNSW cut-off`);
    let agree = 0;
    let total = 0;
    let keptExact = 0;
    let ratioAgree = 0;
    for (const f of files) {
      const enc = await encodeFile(folder, f);
      const L = enc.numTokens;
      const a = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
      const b = { maxSim: new Float32Array(L), argMax: new Int32Array(L) };
      await auto.score(enc.tokens, L, a);
      await hnsw.score(enc.tokens, L, b);
      for (let i = 0; i < L; i++) {
        if (a.maxSim[i] < tau === b.maxSim[i] < tau) agree++;
        if (a.maxSim[i] < tau) keptExact++;
        // HNSW finds a prototype at most as similar as the true maximum.
        assert.ok(b.maxSim[i] <= a.maxSim[i] + 1e-5);
      }
      total += L;
      if (ratio !== undefined) {
        // The ratio rule on both backends' scores: the same kept set?
        const ka = new Set(ratioStrategy(a.maxSim, L, ratio));
        const kb = new Set(ratioStrategy(b.maxSim, L, ratio));
        for (let i = 0; i < L; i++) if (ka.has(i) === kb.has(i)) ratioAgree++;
      }
    }
    assert.ok(agree / total >= 0.999, `HNSW agreement (threshold τ ${tau}) ${agree}/${total}`);
    if (ratio !== undefined) assert.ok(ratioAgree / total >= 0.999, `HNSW agreement (ratio ${ratio}) ${ratioAgree}/${total}`);
    // The codebook prunes: most tokens of these scenes are background and go.
    assert.ok(keptExact / total < 0.5, `kept ${keptExact}/${total}`);
  } finally {
    await Promise.all([auto.close(), hnsw.close(), folder.close()]);
    await cleanup();
  }
});
