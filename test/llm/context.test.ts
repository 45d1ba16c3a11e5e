// VideoContext on small models written by the test (tiny-model.ts): exactness of incremental and
// chunked prefill, rollback, positions per scheme, abort, eviction, float16 KV caches.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { LanguageModel, type EvictionEvent } from '../../src/llm/index.js';
import { writeTinyModel } from './tiny-model.js';
import { fileTempDir } from '../shared/index.js';
import { maxAbsDiff, recordingSession, syntheticFrame, type RecordedRun } from './helpers.js';

const D = 32;
const tmp = fileTempDir('winnow-llm-');
const dirs: Record<'shared' | 'seq' | 'f16', string> = { shared: '', seq: '', f16: '' };

before(async () => {
  dirs.shared = join(tmp.dir, 'shared');
  dirs.seq = join(tmp.dir, 'seq');
  dirs.f16 = join(tmp.dir, 'f16');
  await writeTinyModel(dirs.shared, { frameShared: true });
  await writeTinyModel(dirs.seq, { frameShared: false });
  await writeTinyModel(dirs.f16, { frameShared: true, kvDtype: 'float16' });
});

async function loadRecorded(dir: string, runs: RecordedRun[]): Promise<LanguageModel> {
  const embed = await ort.InferenceSession.create(join(dir, 'onnx', 'embed_tokens.onnx'));
  const dec = await ort.InferenceSession.create(join(dir, 'onnx', 'decoder_model_merged.onnx'));
  return LanguageModel.load(dir, { sessions: { embedTokens: embed, decoder: recordingSession(dec, runs) } });
}

/** Runs `fn` on a loaded model and closes the model, whether `fn` passed or threw. */
async function withModel(loading: Promise<LanguageModel>, fn: (lm: LanguageModel) => Promise<void>): Promise<void> {
  const lm = await loading;
  try {
    await fn(lm);
  } finally {
    await lm.close();
  }
}

const frames = [syntheticFrame(0, 9, D), syntheticFrame(1000, 3, D, 1), syntheticFrame(2400, 0, D, 2), syntheticFrame(3000, 14, D, 3)];

for (const kind of ['shared', 'seq', 'f16'] as const) {
  test(`incremental chunked prefill equals one full prefill (${kind})`, async () => {
    await withModel(LanguageModel.load(dirs[kind]), async (lm) => {
      const inc = lm.createContext({ maxChunkTokens: 4 });
      for (const f of frames) await inc.appendFrame(f);
      const full = lm.createContext({ maxChunkTokens: 4096 });
      await full.appendFrames(frames);
      const a = inc.videoLogits()!;
      const b = full.videoLogits()!;
      assert.ok(maxAbsDiff(a, b) < 1e-4, `max diff ${maxAbsDiff(a, b)}`);
      assert.deepEqual(inc.stats.tokens, full.stats.tokens);
      assert.equal(inc.stats.nextPosition, full.stats.nextPosition);
      // A context built with a different chunking must answer identically, too.
      const qa = await inc.ask('what color is the circle?', { maxNewTokens: 12 });
      const qb = await full.ask('what color is the circle?', { maxNewTokens: 12 });
      assert.equal(qa.text, qb.text);
      if (kind === 'f16') assert.equal(lm.runtime.contract.kvDtype, 'float16');
      await inc.close();
      await full.close();
    });
  });
}

test('ask rolls back: the next question sees the video, not the previous question', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const a = lm.createContext({ maxChunkTokens: 5 });
    await a.appendFrames(frames.slice(0, 2));
    const before = a.videoLogits()!;
    const kvBefore = a.stats.kvBytes;
    await a.ask('how many squares are there?', { maxNewTokens: 10 });
    const second = await a.ask('what color is the circle?', { maxNewTokens: 10 });
    assert.deepEqual(a.videoLogits(), before);
    assert.equal(a.stats.kvBytes, kvBefore);
    const fresh = lm.createContext({ maxChunkTokens: 5 });
    await fresh.appendFrames(frames.slice(0, 2));
    const ref = await fresh.ask('what color is the circle?', { maxNewTokens: 10 });
    assert.equal(second.text, ref.text);
    assert.equal(second.generatedTokens, ref.generatedTokens);
    // And frames appended after questions continue the video exactly.
    await a.appendFrame(frames[3]);
    await fresh.appendFrame(frames[3]);
    assert.ok(maxAbsDiff(a.videoLogits()!, fresh.videoLogits()!) < 1e-5);
    await a.close();
    await fresh.close();
  });
});

test('positions fed for a pruned frame: frame-shared vs sequential', async () => {
  for (const kind of ['shared', 'seq'] as const) {
    const runs: RecordedRun[] = [];
    await withModel(loadRecorded(dirs[kind], runs), async (lm) => {
      const ctx = lm.createContext({ maxChunkTokens: 1000 });
      // 5 kept tokens of a pruned frame at t=12s, then one with 2 kept tokens at t=13s.
      await ctx.appendFrame(syntheticFrame(12_400, 5, D));
      await ctx.appendFrame(syntheticFrame(13_000, 2, D));
      // bos, then "t = 1 2 s" (5 marker tokens), then the visual tokens.
      if (kind === 'shared') {
        assert.deepEqual(runs[0].positions, [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6]);
        assert.deepEqual(runs[1].positions, [7, 8, 9, 10, 11, 12, 12]);
        assert.equal(ctx.stats.nextPosition, 13);
      } else {
        assert.deepEqual(runs[0].positions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert.deepEqual(runs[1].positions, [11, 12, 13, 14, 15, 16, 17]);
      }
      assert.equal(runs[1].past, 11);
      // The question continues right after the video.
      runs.length = 0;
      await ctx.ask('is the circle red?', { maxNewTokens: 2 });
      assert.equal(runs[0].positions[0], kind === 'shared' ? 13 : 18);
      assert.equal(runs[0].past, 18);
      await ctx.close();
    });
  }
});

test('abort mid-generation stops within one step and leaves the context usable', async () => {
  const runs: RecordedRun[] = [];
  await withModel(loadRecorded(dirs.shared, runs), async (lm) => {
    const ctx = lm.createContext();
    await ctx.appendFrames(frames);
    const ref = await ctx.ask('what color is the circle?', { maxNewTokens: 16, stopTokenIds: [] });
    const ac = new AbortController();
    let deltas = 0;
    runs.length = 0;
    let runsAtAbort = -1;
    await assert.rejects(
      ctx.ask('what color is the circle?', {
        maxNewTokens: 200,
        signal: ac.signal,
        onText: () => {
          deltas++;
          if (deltas === 3) {
            ac.abort();
            runsAtAbort = runs.length;
          }
        },
      }),
      { code: 'WINNOW_ERR_ABORTED' },
    );
    assert.ok(runsAtAbort > 0);
    assert.ok(runs.length <= runsAtAbort + 1, `${runs.length - runsAtAbort} decoder runs after abort`);
    const again = await ctx.ask('what color is the circle?', { maxNewTokens: 16 });
    assert.equal(again.text, ref.text);
    // An already-aborted signal fails before any work.
    runs.length = 0;
    await assert.rejects(ctx.ask('what?', { signal: AbortSignal.abort() }), { code: 'WINNOW_ERR_ABORTED' });
    await assert.rejects(ctx.appendFrame(frames[0], { signal: AbortSignal.abort() }), { code: 'WINNOW_ERR_ABORTED' });
    assert.equal(runs.length, 0);
    await ctx.close();
  });
});

test('stop strings, maxNewTokens and streaming deltas agree with the final text', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const ctx = lm.createContext();
    await ctx.appendFrames(frames);
    const full = await ctx.ask('what color is the circle?', { maxNewTokens: 16 });
    assert.equal(full.stopReason === 'max-new-tokens' || full.stopReason === 'eos', true);
    const words = full.text.split(' ');
    assert.ok(words.length >= 3, full.text);
    const streamed: string[] = [];
    const cut = await ctx.ask('what color is the circle?', { maxNewTokens: 16, stop: [` ${words[2]}`], onText: (d) => streamed.push(d) });
    assert.equal(cut.stopReason, 'stop-string');
    assert.equal(cut.text, full.text.slice(0, full.text.indexOf(` ${words[2]}`)));
    assert.equal(streamed.join(''), cut.text);
    const short = await ctx.ask('what color is the circle?', { maxNewTokens: 2 });
    assert.equal(short.generatedTokens, 2);
    const sampledA = await ctx.ask('what color is the circle?', { maxNewTokens: 12, temperature: 1, topP: 0.9, seed: 42 });
    const sampledB = await ctx.ask('what color is the circle?', { maxNewTokens: 12, temperature: 1, topP: 0.9, seed: 42 });
    assert.equal(sampledA.text, sampledB.text);
    await ctx.close();
  });
});

test('eviction on a long stream: bounded cache, exact rebuild, event, memory flat', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const ctx = lm.createContext({ maxContextTokens: 300, reserveTokens: 60, maxChunkTokens: 64 });
    const events: EvictionEvent[] = [];
    ctx.on('evicted', (e) => events.push(e));
    let maxKv = 0;
    let rssAfterWarmup = 0;
    const n = 1500;
    for (let i = 0; i < n; i++) {
      await ctx.appendFrame(syntheticFrame(i * 1000, 4 + (i % 7), D, i));
      assert.ok(ctx.stats.tokens <= ctx.videoBudgetTokens, `video holds ${ctx.stats.tokens} tokens`);
      maxKv = Math.max(maxKv, ctx.stats.kvBytes);
    assert.ok(ctx.stats.kvReservedBytes <= 4 * ctx.maxContextTokens * lm.runtime.kvBytesPerToken);
      assert.ok(ctx.stats.kvReservedBytes <= 4 * ctx.maxContextTokens * lm.runtime.kvBytesPerToken);
      if (i === 300) {
        global.gc?.();
        rssAfterWarmup = process.memoryUsage().rss;
      }
    }
    await ctx.idle();
    global.gc?.();
    const rssEnd = process.memoryUsage().rss;
    assert.ok(events.length > 5);
    const last = events[events.length - 1];
    assert.ok(last.frames > 0 && last.tokens > 0);
    assert.equal(events.reduce((s, e) => s + e.frames, 0), ctx.stats.evictedFrames);
    assert.equal(ctx.stats.frames + ctx.stats.evictedFrames, n);
    // The context holds the most recent frames.
    assert.ok(last.oldestPtsMs !== null && last.oldestPtsMs >= (n - ctx.stats.frames - 40) * 1000);
    assert.ok(maxKv <= 300 * lm.runtime.kvBytesPerToken);
    assert.ok(rssEnd - rssAfterWarmup < 40 * 1024 * 1024, `RSS grew ${((rssEnd - rssAfterWarmup) / 1048576).toFixed(1)} MB`);
    // The rebuilt cache equals a fresh context over the same remaining frames.
    const remaining = ctx.stats.frames;
    const fresh = lm.createContext({ maxContextTokens: 300, reserveTokens: 60 });
    const tail = Array.from({ length: remaining }, (_, k) => {
      const i = n - remaining + k;
      return syntheticFrame(i * 1000, 4 + (i % 7), D, i);
    });
    await fresh.appendFrames(tail);
    assert.ok(maxAbsDiff(ctx.videoLogits()!, fresh.videoLogits()!) < 1e-4);
    const a = await ctx.ask('what color is the circle?', { maxNewTokens: 8 });
    const b = await fresh.ask('what color is the circle?', { maxNewTokens: 8 });
    assert.equal(a.text, b.text);
    await ctx.close();
    await fresh.close();
  });
});

test('visual token stats count kept and total for the frames in context, through evictions', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const ctx = lm.createContext({ maxContextTokens: 200, reserveTokens: 40, maxChunkTokens: 32, rebuildAtFraction: 0.8, evictToFraction: 0.5 });
    const kept = (i: number): number => 3 + (i % 4);
    const total = (i: number): number => 10 * kept(i);
    const appended: { kept: number; total: number }[] = [];
    let evictedFrames = 0;
    ctx.on('evicted', (e) => (evictedFrames += e.frames));
    for (let i = 0; i < 120; i++) {
      // Every fifth frame leaves totalTokens out: it counts as unpruned.
      const f = syntheticFrame(i * 500, kept(i), D, i);
      await ctx.appendFrame(i % 5 === 4 ? f : { ...f, totalTokens: total(i) });
      appended.push({ kept: kept(i), total: i % 5 === 4 ? kept(i) : total(i) });
      if (i % 7 === 0) await ctx.idle();
      const inContext = appended.slice(appended.length - ctx.stats.frames);
      assert.equal(ctx.stats.visualTokens, inContext.reduce((s, w) => s + w.kept, 0));
      assert.equal(ctx.stats.visualTokensTotal, inContext.reduce((s, w) => s + w.total, 0));
    }
    await ctx.idle();
    assert.ok(evictedFrames > 0);
    assert.equal(ctx.stats.evictedFrames, evictedFrames);
    const inContext = appended.slice(appended.length - ctx.stats.frames);
    assert.equal(ctx.stats.visualTokensTotal, inContext.reduce((s, w) => s + w.total, 0));
    await assert.rejects(ctx.appendFrame({ ...syntheticFrame(0, 4, D), totalTokens: 3 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    await assert.rejects(ctx.appendFrame({ ...syntheticFrame(0, 4, D), totalTokens: 4.5 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    await ctx.close();
  });
});

test('background rebuild: questions keep using the current cache until the new one swaps in', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const opts = { maxContextTokens: 400, reserveTokens: 50, maxChunkTokens: 16, rebuildAtFraction: 0.8, evictToFraction: 0.5 };
    const ctx = lm.createContext(opts);
    const events: EvictionEvent[] = [];
    ctx.on('evicted', (e) => events.push(e));
    const all = Array.from({ length: 60 }, (_, i) => syntheticFrame(i * 1000, 6, D, i));
    let n = 0;
    while (!ctx.stats.rebuilding) await ctx.appendFrame(all[n++]);
    assert.equal(events.length, 0);
    // Mid-rebuild (the question is queued before the rebuild's first step), the answer and the
    // video state are those of the full, not yet evicted, video.
    const logitsDuring = ctx.videoLogits()!;
    const during = await ctx.ask('what color is the circle?', { maxNewTokens: 10 });
    const ref = lm.createContext({ ...opts, rebuildAtFraction: 1 });
    await ref.appendFrames(all.slice(0, n));
    assert.equal(during.text, (await ref.ask('what color is the circle?', { maxNewTokens: 10 })).text);
    assert.ok(maxAbsDiff(logitsDuring, ref.videoLogits()!) < 1e-5);
    await ref.close();
    // Frames keep arriving while the rebuild runs; it catches up and swaps in.
    await ctx.appendFrame(all[n++]);
    await ctx.idle();
    assert.equal(events.length, 1);
    assert.equal(ctx.stats.rebuilding, false);
    assert.equal(ctx.stats.frames, n - events[0].frames);
    assert.ok(ctx.stats.tokens <= 0.5 * ctx.videoBudgetTokens + 20);
    const fresh = lm.createContext(opts);
    await fresh.appendFrames(all.slice(events[0].frames, n));
    assert.ok(maxAbsDiff(ctx.videoLogits()!, fresh.videoLogits()!) < 1e-4);
    await ctx.close();
    await fresh.close();
  });
});

test('budget errors and contract errors carry codes', async () => {
  await withModel(LanguageModel.load(dirs.shared), async (lm) => {
    const ctx = lm.createContext({ maxContextTokens: 100, reserveTokens: 50 });
    await assert.rejects(ctx.appendFrame(syntheticFrame(0, 80, D)), { code: 'WINNOW_ERR_CONTEXT_OVERFLOW' });
    await assert.rejects(ctx.appendFrame(syntheticFrame(0, 3, 16)), { code: 'WINNOW_ERR_MODEL_CONTRACT' });
    assert.throws(() => lm.createContext({ maxChunkTokens: 0 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    await ctx.close();
    await ctx.close();
    await assert.rejects(ctx.ask('what?'), { code: 'WINNOW_ERR_SESSION_CLOSED' });
  });
  // A decoder without a KV cache is not a decoder this runtime can drive.
  const bad = join(tmp.dir, 'bad');
  await writeTinyModel(bad, {});
  await copyFile(join(bad, 'onnx', 'embed_tokens.onnx'), join(bad, 'onnx', 'decoder_model_merged.onnx'));
  await assert.rejects(LanguageModel.load(bad), { code: 'WINNOW_ERR_MODEL_CONTRACT' });
  await assert.rejects(LanguageModel.load(join(tmp.dir, 'nope')), { code: 'WINNOW_ERR_MODEL_MISSING_FILE' });
});

test('deferred question cache: the last question chunk fetches only logits, and answers are unchanged', async () => {
  for (const chunk of [4, 64]) {
    const runs: RecordedRun[] = [];
    await withModel(loadRecorded(dirs.shared, runs), async (lm) => {
      const deferred = lm.createContext({ maxChunkTokens: chunk });
      const eager = lm.createContext({ maxChunkTokens: chunk, deferQuestionCache: false });
      await deferred.appendFrames(frames);
      await eager.appendFrames(frames);
      const video = deferred.stats.tokens;
      const q = 'how many squares are there?';
      const steps: string[] = [];
      runs.length = 0;
      const a = await deferred.ask(q, { maxNewTokens: 9, stopTokenIds: [], onText: (d) => steps.push(d) });
      const deferredRuns = runs.splice(0);
      const b = await eager.ask(q, { maxNewTokens: 9, stopTokenIds: [] });
      assert.equal(a.text, b.text);
      assert.equal(a.generatedTokens, b.generatedTokens);
      assert.equal(steps.join(''), a.text);
      // Question chunks before the last keep their cache; the last one asks for logits only.
      const qRuns = Math.ceil(a.questionTokens / chunk);
      for (let i = 0; i < qRuns - 1; i++) assert.ok(deferredRuns[i].fetches!.includes('present.0.key'));
      const last = deferredRuns[qRuns - 1];
      assert.deepEqual(last.fetches, ['logits']);
      assert.equal(last.past, video + (qRuns - 1) * chunk);
      // The first decode step feeds that chunk again plus the first answer token, from the same
      // past, when both fit a chunk; otherwise the chunk alone first.
      const lastLen = a.questionTokens - (qRuns - 1) * chunk;
      const next = deferredRuns.slice(qRuns);
      if (lastLen + 1 <= chunk) {
        assert.equal(next[0].tokens, lastLen + 1);
        assert.equal(next[0].past, last.past);
        assert.deepEqual(next[0].positions.slice(0, lastLen), last.positions);
      } else {
        assert.deepEqual(next[0].positions, last.positions);
        assert.equal(next[1].tokens, 1);
      }
      assert.ok(next.every((r) => r.fetches!.includes('present.0.key')));
      // A one-token answer runs the question once, without any cache copy.
      runs.length = 0;
      await deferred.ask(q, { maxNewTokens: 1 });
      assert.equal(runs.length, qRuns);
      assert.deepEqual(runs[qRuns - 1].fetches, ['logits']);
      assert.deepEqual(deferred.videoLogits(), eager.videoLogits());
      await deferred.close();
      await eager.close();
    });
  }
});
