// The runtime on the bundled default model (models/winnow-tiny): reference outputs of the export,
// exact incremental prefill, rollback, the frame-shared positions it was trained with, abort,
// eviction with flat memory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { LanguageModel, formatFrameMarker, type EvictionEvent } from '../../src/llm/index.js';
import { MODEL_DIR, modelSkip } from '../shared/index.js';
import { maxAbsDiff, recordingSession, syntheticFrame, type RecordedRun } from './helpers.js';

const skip = modelSkip;

let lm: LanguageModel;
let D = 0;

before(async () => {
  if (skip) return;
  lm = await LanguageModel.load(MODEL_DIR);
  D = lm.runtime.contract.hiddenSize;
});

after(async () => {
  await lm?.close();
});

interface Reference {
  prompt_ids: number[];
  position_ids: number[];
  logits: { position: number; values: number[] }[];
}

test('tokenizer, chat template and decoder reproduce reference_outputs.json', { skip }, async () => {
  const ref = JSON.parse(readFileSync(join(MODEL_DIR, 'reference_outputs.json'), 'utf8')) as Reference;
  const cfg = lm.config;
  assert.equal(cfg.visualPositionScheme, 'frame-shared');
  // The reference prompt is a frame at t=0 with no visual token, then the question.
  const marker = lm.tokenizer.encode(formatFrameMarker(cfg.frameMarker, 0));
  const question = lm.tokenizer.encode(lm.tokenizer.applyChatTemplate([{ role: 'user', content: 'what color is the circle?' }]));
  const ids = [cfg.bosTokenId as number, ...marker, ...question];
  assert.deepEqual(ids, ref.prompt_ids);
  const rt = lm.runtime;
  const embeds = await rt.embed(BigInt64Array.from(ids, BigInt));
  const r = await rt.forward(embeds, BigInt64Array.from(ref.position_ids, BigInt), rt.empty(), rt.createBufferSet(), ids.length, true);
  const V = rt.contract.vocabSize ?? r.lastLogits.length;
  for (const { position, values } of ref.logits) {
    const row = r.allLogits!.subarray(position * V, (position + 1) * V);
    assert.ok(maxAbsDiff(row, Float32Array.from(values)) < 1e-4, `position ${position}`);
  }
  // The same logits through a VideoContext: a frame without visual tokens (bos + marker).
  const ctx = lm.createContext();
  await ctx.appendFrame({ frame: { ptsMs: 0 }, tokens: new Float32Array(0), dim: D });
  const last = marker.length;
  assert.ok(maxAbsDiff(ctx.videoLogits()!, r.allLogits!.subarray(last * V, (last + 1) * V)) < 1e-4);
  await ctx.close();
});

test('default model: incremental chunked prefill equals one full prefill (1e-4)', { skip }, async () => {
  // Pruned frames of varied sizes, like a stream: 49 (unpruned 7×7), 12, 3, 30, 1 kept tokens.
  const frames = [49, 12, 3, 30, 1, 17].map((k, i) => syntheticFrame(i * 1000, k, D, i));
  const inc = lm.createContext({ maxChunkTokens: 16 });
  for (const f of frames) await inc.appendFrame(f);
  const full = lm.createContext({ maxChunkTokens: 100_000 });
  await full.appendFrames(frames);
  const diff = maxAbsDiff(inc.videoLogits()!, full.videoLogits()!);
  assert.ok(diff < 1e-4, `max |diff| ${diff}`);
  const a = await inc.ask('how many circles are there?');
  const b = await full.ask('how many circles are there?');
  assert.equal(a.text, b.text);
  await inc.close();
  await full.close();
});

test('default model: ask after rollback equals ask on a fresh context', { skip }, async () => {
  const frames = [20, 7, 33].map((k, i) => syntheticFrame(i * 1000, k, D, 10 + i));
  const ctx = lm.createContext();
  await ctx.appendFrames(frames);
  const logits = ctx.videoLogits();
  const first = await ctx.ask('is there a red square?');
  const second = await ctx.ask('what color is the circle?');
  const third = await ctx.ask('is there a red square?');
  assert.equal(third.text, first.text);
  assert.deepEqual(ctx.videoLogits(), logits);
  const fresh = lm.createContext();
  await fresh.appendFrames(frames);
  assert.equal((await fresh.ask('what color is the circle?')).text, second.text);
  await ctx.close();
  await fresh.close();
});

test('default model: positions fed for a pruned frame follow the frame-shared scheme', { skip }, async () => {
  const runs: RecordedRun[] = [];
  const embed = await ort.InferenceSession.create(join(MODEL_DIR, 'onnx', 'embed_tokens.onnx'));
  const dec = await ort.InferenceSession.create(join(MODEL_DIR, 'onnx', 'decoder_model_merged.onnx'));
  const rec = await LanguageModel.load(MODEL_DIR, { sessions: { embedTokens: embed, decoder: recordingSession(dec, runs) } });
  try {
    const ctx = rec.createContext({ maxChunkTokens: 4096 });
    // A 7×7 frame pruned to 6 kept tokens at t=12.4 s, then one pruned to 1 token at t=13 s.
    await ctx.appendFrame(syntheticFrame(12_400, 6, D));
    await ctx.appendFrame(syntheticFrame(13_000, 1, D));
    const m12 = rec.tokenizer.encode('t=12s').length;
    assert.equal(m12, 5); // t = 1 2 s
    // What training fed: bos at 0, marker tokens count up, every visual token of the frame at
    // the position the first one would have, the next token continues at +1.
    assert.deepEqual(runs[0].positions, [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6]);
    assert.deepEqual(runs[1].positions, [7, 8, 9, 10, 11, 12]);
    assert.equal(runs[1].past, 12);
    assert.equal(ctx.stats.nextPosition, 13);
    runs.length = 0;
    await ctx.ask('what color is the circle?', { maxNewTokens: 1 });
    assert.equal(runs[0].positions[0], 13);
    await ctx.close();
  } finally {
    await rec.close();
    await Promise.all([embed.release(), dec.release()]);
  }
});

test('default model: abort mid-generation', { skip }, async () => {
  const ctx = lm.createContext();
  await ctx.appendFrames([syntheticFrame(0, 10, D)]);
  const ac = new AbortController();
  let tokens = 0;
  const t0 = performance.now();
  await assert.rejects(
    ctx.ask('describe the picture.', {
      signal: ac.signal,
      maxNewTokens: 500,
      stopTokenIds: [],
      onText: () => {
        // Abort on the first delta: a trained model may end its answer at the next token.
        if (++tokens === 1) ac.abort();
      },
    }),
    { code: 'WINNOW_ERR_ABORTED' },
  );
  assert.equal(tokens, 1);
  assert.ok(performance.now() - t0 < 5000);
  // The context is intact.
  assert.equal((await ctx.ask('what color is the circle?', { maxNewTokens: 4 })).generatedTokens > 0, true);
  await ctx.close();
});

test('default model: eviction on a long stream keeps memory flat and still answers', { skip }, async () => {
  const ctx = lm.createContext({ maxContextTokens: 1200, reserveTokens: 100, maxChunkTokens: 128 });
  const events: EvictionEvent[] = [];
  ctx.on('evicted', (e) => events.push(e));
  const n = 450; // 7.5 min at 1 fps, ~10 kept tokens a frame
  let rssWarm = 0;
  let maxKv = 0;
  for (let i = 0; i < n; i++) {
    await ctx.appendFrame(syntheticFrame(i * 1000, 5 + (i % 11), D, i));
    maxKv = Math.max(maxKv, ctx.stats.kvBytes);
    assert.ok(ctx.stats.kvReservedBytes <= 4 * ctx.maxContextTokens * lm.runtime.kvBytesPerToken);
    if (i === 150) rssWarm = process.memoryUsage().rss;
  }
  await ctx.idle();
  const rssEnd = process.memoryUsage().rss;
  assert.ok(events.length >= 3, `${events.length} evictions`);
  assert.ok(ctx.stats.tokens <= 1100);
  assert.ok(maxKv <= 1200 * lm.runtime.kvBytesPerToken);
  assert.ok(rssEnd - rssWarm < 48 * 1024 * 1024, `RSS grew by ${((rssEnd - rssWarm) / 1048576).toFixed(1)} MB`);
  // The context holds the latest frames: the newest is the last appended.
  const oldest = events[events.length - 1].oldestPtsMs!;
  assert.ok(oldest > (n - 200) * 1000, `oldest frame in context at ${oldest} ms`);
  const r = await ctx.ask('how many circles are there?');
  assert.ok(r.generatedTokens > 0);
  await ctx.close();
});

const FP16 = join(MODEL_DIR, 'onnx', 'decoder_model_merged_fp16.onnx');
test('default model: the fp16 export loads and agrees with fp32', { skip: skip || (existsSync(FP16) ? false : 'no fp16 export') }, async () => {
  const half = await LanguageModel.load(MODEL_DIR, { dtype: 'fp16' });
  try {
    const frames = [syntheticFrame(0, 12, D), syntheticFrame(1000, 5, D, 1)];
    const a = lm.createContext();
    const b = half.createContext();
    await a.appendFrames(frames);
    await b.appendFrames(frames);
    assert.ok(maxAbsDiff(a.videoLogits()!, b.videoLogits()!) < 0.05);
    await a.close();
    await b.close();
  } finally {
    await half.close();
  }
});
