import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchedForward, REFERENCE_PARAMETERS, jsdTopK, loadExperimentModel, measureImage, topProbability, type ExperimentModel, type SequenceTable } from '../../src/prune/build/index.js';
import { LanguageModel } from '../../src/llm/index.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { MODEL_DIR } from '../shared/index.js';
import { maxAbsDiff } from '../llm/helpers.js';
import { encodeFile, renderStills } from './helpers.js';

let m: ExperimentModel;
let enc: EncodedFrame;
let cleanup: (() => Promise<void>) | undefined;

before(async () => {
  const r = await renderStills(1);
  cleanup = r.cleanup;
  m = await loadExperimentModel(MODEL_DIR);
  enc = await encodeFile(m.folder, r.files[0]);
});

after(async () => {
  await m?.folder.close();
  await cleanup?.();
});

test('the prompt layout is <bos>, the t=0s marker, visual tokens, the templated caption prompt', () => {
  const t = m.tokenizer;
  assert.equal(m.layout.prompt, 'describe the picture.');
  assert.equal(t.decode(m.layout.prefixIds, false).replace(/\s+/g, ''), '<bos>t=0s');
  assert.equal(t.decode(m.layout.suffixIds, false).replace(/\s+/g, ''), '<|user|>describethepicture.<|assistant|>');
  assert.equal(m.layout.scheme, 'frame-shared');
  assert.equal(m.layout.padTokenId, 0);
  // The ids are the LM runtime's own layout of a one-frame video at t = 0.
  const lm = m.layout.lm;
  assert.deepEqual(m.layout.prefixIds, [...lm.prefixIds, ...lm.frame(0, 196).markerIds]);
  assert.deepEqual(m.layout.suffixIds, lm.questionIds(m.layout.prompt));
});

test('batched runs give the one-at-a-time logits, also with left padding for mixed lengths', async () => {
  const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
  // Five sequences of 1, 9 (with a pad slot), 3, 196 and 0 visual tokens.
  const stride = 196;
  const counts = Int32Array.from([1, 9, 3, 196, 0]);
  const index = new Int32Array(5 * stride).fill(-1);
  index[0] = 17;
  for (let v = 0; v < 9; v++) index[stride + v] = v === 4 ? -1 : 30 + v;
  for (let v = 0; v < 3; v++) index[2 * stride + v] = 100 + v;
  for (let v = 0; v < 196; v++) index[3 * stride + v] = v;
  const table: SequenceTable = { tokens: enc.tokens, index, stride, counts };
  const all = await fwd.run(table, 0, 5);
  for (let q = 0; q < 5; q++) {
    const one = await fwd.run(table, q, 1);
    const row = all.logits.subarray(q * all.vocab, (q + 1) * all.vocab);
    assert.ok(maxAbsDiff(row, one.logits) < 1e-4, `sequence ${q}: ${maxAbsDiff(row, one.logits)}`);
    for (const x of one.logits) assert.ok(Number.isFinite(x));
  }
});

test('starting from the unablated KV cache gives the logits of the full run', async () => {
  const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
  const n = 196;
  const index = new Int32Array(3 * n);
  for (let q = 0; q < 3; q++) for (let j = 0; j < n; j++) index[q * n + j] = j;
  // Sequence 0 unablated; 1 and 2 ablated from visual token 100 on (row 7).
  for (const j of [100, 101, 114, 115]) index[n + j] = -1;
  for (const j of [120, 150]) index[2 * n + j] = -1;
  const table: SequenceTable = { tokens: enc.tokens, index, stride: n };
  const base = await fwd.runKeepingCache(table, 0);
  assert.ok(base.cache);
  const start = fwd.prefixLength + 98; // the first row touched by either ablation
  const fromCache = await fwd.runFrom(table, Int32Array.of(1, 2), base.cache, start);
  const direct = await fwd.run(table, 1, 2);
  assert.ok(maxAbsDiff(fromCache.logits, direct.logits) < 1e-4, String(maxAbsDiff(fromCache.logits, direct.logits)));
  assert.ok(maxAbsDiff(direct.logits.subarray(0, direct.vocab), base.logits) > 0, 'the ablation changes the logits');
});

test('the all-token run predicts what the LLM runtime answers first under the caption prompt', async () => {
  const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
  const table: SequenceTable = { tokens: enc.tokens, index: Int32Array.from({ length: 196 }, (_, i) => i), stride: 196 };
  const { logits } = await fwd.run(table, 0, 1);
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  const lm = await LanguageModel.fromModelFolder(m.folder);
  const ctx = lm.createContext();
  try {
    await ctx.appendFrame({ frame: { ptsMs: 0 }, tokens: enc.tokens, dim: enc.dim });
    const r = await ctx.ask(m.layout.prompt, { maxNewTokens: 1 });
    assert.equal(r.text.trim(), m.tokenizer.decode([best], true).trim());
  } finally {
    await ctx.close();
    await lm.close();
  }
});

test('measures of an image: each one is what its experiment computes directly', async () => {
  const fwd = new BatchedForward(m.decoder, m.contract, m.layout);
  const opts = { ...REFERENCE_PARAMETERS, maxBatchSequences: 48, maxBatchTokens: 6000 };
  const a = await measureImage(fwd, enc.tokens, enc.gridH, enc.gridW, opts);
  for (let i = 0; i < 196; i++) {
    assert.ok(a.topProb[i] >= 1 / 50 - 1e-12 && a.topProb[i] <= 1);
    assert.ok(a.jsdCtx[i] >= 0 && a.jsdGlob[i] >= 0);
  }
  const logitsOf = async (idx: number[]): Promise<Float32Array> =>
    (await fwd.run({ tokens: enc.tokens, index: Int32Array.from(idx), stride: idx.length }, 0, 1)).logits;
  const near = (x: number, y: number): boolean => Math.abs(x - y) <= 1e-6 + 1e-3 * Math.abs(y);
  // Token 29 = row 2, column 1: window rows 1-3, columns 0-2.
  const i = 29;
  const win = [14, 15, 16, 28, 29, 30, 42, 43, 44];
  assert.ok(near(a.topProb[i], topProbability(await logitsOf([i]), 50)));
  const ctxBase = await logitsOf(win);
  const ctxAbl = await logitsOf(win.map((j) => (j === i ? -1 : j)));
  assert.ok(near(a.jsdCtx[i], jsdTopK(ctxBase, ctxAbl, 10)));
  const all = Array.from({ length: 196 }, (_, j) => j);
  const globBase = await logitsOf(all);
  const globAbl = await logitsOf(all.map((j) => (win.includes(j) ? -1 : j)));
  assert.ok(near(a.jsdGlob[i], jsdTopK(globBase, globAbl, 10)));
});
