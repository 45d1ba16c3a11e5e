// The library API (createSession) without a socket: pushFrames with fps sampling, ask as an async
// iterable, cancellation, standing questions, eviction events, fair scheduling between sessions
// sharing one engine, and close() semantics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSession, type Session, type WinnowEngine } from '../../src/stream/index.js';
import type { Frame } from '../../src/ingest/types.js';
import { modelSkip, waitUntil } from '../shared/index.js';
import { sharedEngine } from './helpers.js';

const skip = modelSkip;
let engine: WinnowEngine;

before(async () => {
  if (!skip) engine = await sharedEngine();
});
after(async () => {
  await engine?.close();
});

/** Solid-colour RGB frames with a moving square, `count` frames `stepMs` apart. */
function frames(count: number, stepMs: number, width = 96, height = 72): Frame[] {
  return Array.from({ length: count }, (_, i) => {
    const data = new Uint8Array(width * height * 3).fill(40);
    for (let y = 20; y < 40; y++) for (let x = 5 + i * 3; x < 25 + i * 3 && x < width; x++) data.set([220, 30, 30], (y * width + x) * 3);
    return { index: i, ptsMs: i * stepMs, width, height, data };
  });
}

test('pushFrames samples by timestamp; ask streams deltas; done carries usage; close is idempotent', { skip }, async () => {
  const s = await createSession({ engine, config: { fps: 1 } });
  const seen: { index: number; ptsMs: number; kept: number; total: number }[] = [];
  s.on('frame', (f) => seen.push(f));
  const ended: string[] = [];
  s.on('source.ended', (e) => ended.push(e.reason));
  await s.pushFrames(frames(9, 500));
  await s.drain();
  assert.deepEqual(seen.map((f) => f.ptsMs), [0, 1000, 2000, 3000, 4000]);
  assert.deepEqual(seen.map((f) => f.index), [0, 1, 2, 3, 4]);
  assert.ok(seen.every((f) => f.total === 49 && f.kept === 49));
  assert.deepEqual(ended, ['end']);
  const answer = s.ask('how many squares appeared?', { maxNewTokens: 6 });
  let streamed = '';
  for await (const d of answer) streamed += d;
  const done = await answer.done;
  assert.equal(done.status, 'completed');
  assert.equal(done.text, streamed.trim());
  assert.equal(done.usage.visualTokensKept, 5 * 49);
  assert.ok(done.usage.outputTokens >= 1 && done.usage.outputTokens <= 6);
  assert.ok(done.timings.ttftMs > 0);
  // A second input continues the session timeline after the first.
  await s.pushFrames(frames(2, 1000));
  await s.drain();
  assert.deepEqual(seen.slice(5).map((f) => f.ptsMs), [5000, 6000]);
  await s.close();
  await s.close();
  assert.throws(() => s.ask('anything?'), { code: 'WINNOW_ERR_SESSION_CLOSED' });
  assert.throws(() => s.update({ fps: 2 }), { code: 'WINNOW_ERR_SESSION_CLOSED' });
});

test('cancel through AbortSignal or cancel(); closing cancels what is pending', { skip }, async () => {
  const s = await createSession({ engine });
  await s.pushFrames(frames(2, 1000));
  const ac = new AbortController();
  const a1 = s.ask('first?', { maxNewTokens: 64, signal: ac.signal });
  const a2 = s.ask('second?', { maxNewTokens: 64 });
  const a3 = s.ask('third?', { maxNewTokens: 64 });
  ac.abort();
  a2.cancel();
  assert.equal((await a1.done).status, 'cancelled');
  assert.equal((await a2.done).status, 'cancelled');
  // Leaving the delta loop early (the iterator's return()) cancels the rest of the answer.
  const a4 = s.ask('fourth?', { maxNewTokens: 64 });
  await a4[Symbol.asyncIterator]().return!();
  assert.equal((await a4.done).status, 'cancelled');
  const closing = s.close();
  assert.equal((await a3.done).status, 'cancelled');
  await closing;
  assert.equal(s.stats.pendingResponses, 0);
});

test('invalid settings are refused with codes; limits are enforced', { skip }, async () => {
  const s = await createSession({ engine, limits: { maxQuestionChars: 10, maxNewTokens: 8, maxContextTokens: 1024, maxPendingResponses: 1 } });
  try {
    assert.throws(() => s.update({ pruning: { strategy: 'threshold' } }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    assert.throws(() => s.update({ maxContextTokens: 2048 }), { code: 'WINNOW_ERR_LIMIT_EXCEEDED' });
    assert.throws(() => s.update({ generation: { maxNewTokens: 9 } }), { code: 'WINNOW_ERR_LIMIT_EXCEEDED' });
    assert.throws(() => s.ask('a very long question?'), { code: 'WINNOW_ERR_LIMIT_EXCEEDED' });
    assert.throws(() => s.update({ watch: [{ id: 'a', question: 'q?', everySeconds: 1 }, { id: 'a', question: 'r?', everySeconds: 1 }] }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    assert.equal(s.config.maxContextTokens, 1024);
    s.update({ maxContextTokens: 512 });
    assert.equal(s.config.maxContextTokens, 512);
    const a = s.ask('short?');
    assert.throws(() => s.ask('another?'), { code: 'WINNOW_ERR_LIMIT_EXCEEDED' });
    await a.done;
    await s.pushFrames(frames(1, 1000));
    await s.drain();
    assert.throws(() => s.update({ maxContextTokens: 1024 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  } finally {
    await s.close();
  }
});

test('a long stream in a small context evicts the oldest frames and says so', { skip }, async () => {
  const s = await createSession({ engine, config: { maxContextTokens: 512 } });
  try {
    const evictions: { frames: number; tokens: number; remainingFrames: number }[] = [];
    s.on('evicted', (e) => evictions.push(e));
    await s.pushFrames(frames(16, 1000));
    await s.drain();
    assert.ok(evictions.length >= 1);
    const st = s.stats;
    assert.equal(st.framesProcessed, 16);
    assert.ok(st.contextTokens <= 512 - 256, `context ${st.contextTokens}`);
    assert.equal(st.visualTokensTotal, (16 - evictions.reduce((n, e) => n + e.frames, 0)) * 49);
    const done = await s.ask('what color is the square?', { maxNewTokens: 4 }).done;
    assert.equal(done.status, 'completed');
    assert.equal(done.usage.visualTokensTotal, st.visualTokensTotal);
  } finally {
    await s.close();
  }
});

test('standing questions fire on video time', { skip }, async () => {
  const s = await createSession({ engine, config: { watch: [{ id: 'w', question: 'is there a red square?', everySeconds: 3 }], generation: { maxNewTokens: 3 } } });
  try {
    const results: { id: string; ptsMs: number; answer: string; frames: number }[] = [];
    s.on('watch', (w) => results.push(w));
    await s.pushFrames(frames(7, 1000));
    await s.drain();
    assert.deepEqual(results.map((r) => r.ptsMs), [0, 3000, 6000]);
    assert.ok(results.every((r) => r.id === 'w' && typeof r.answer === 'string'));
  } finally {
    await s.close();
  }
});

test('sessions sharing one engine are scheduled round-robin: a busy session does not starve another', { skip }, async () => {
  const a: Session = await createSession({ engine });
  const b: Session = await createSession({ engine });
  try {
    const order: string[] = [];
    a.on('frame', () => order.push('a'));
    b.on('frame', () => order.push('b'));
    await Promise.all([a.pushFrames(frames(12, 1000)), b.pushFrames(frames(12, 1000))]);
    await Promise.all([a.drain(), b.drain()]);
    assert.equal(order.length, 24);
    // Both progress together: within any window of 6 processed frames each session has some.
    for (let i = 0; i + 6 <= order.length; i++) {
      const w = order.slice(i, i + 6);
      assert.ok(w.includes('a') && w.includes('b'), `window ${i}: ${w.join('')} in ${order.join('')}`);
    }
    // An answer in one session does not stop the other's frames.
    const bAnswer = b.ask('how many squares appeared?', { maxNewTokens: 32 });
    const aFrames: number[] = [];
    a.on('frame', (f) => aFrames.push(f.index));
    const push = a.pushFrames(frames(4, 1000));
    await bAnswer.done;
    await push;
    await a.drain();
    assert.equal(aFrames.length, 4);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('every pushed JPEG is processed or reported dropped with its policy: burst, fps sampling, close with frames queued', { skip }, async () => {
  const sharp = (await import('sharp')).default;
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 30, g: 200, b: 30 } } }).jpeg().toBuffer();
  const s = await createSession({ engine, limits: { maxQueuedFrames: 4 } });
  try {
    const drops: { count: number; total: number; policy: string }[] = [];
    const ended: { frames: number; dropped: number; reason: string }[] = [];
    let processed = 0;
    s.on('dropped', (d) => drops.push(d));
    s.on('source.ended', (e) => ended.push(e));
    s.on('frame', () => processed++);
    const sum = (policy?: string): number => drops.filter((d) => !policy || d.policy === policy).reduce((n, d) => n + d.count, 0);
    const endedCount = async (n: number): Promise<void> => {
      await waitUntil(() => ended.length >= n, 30_000, 10);
      assert.equal(ended.length, n);
    };

    // Non-live, each push awaited (the decode loop runs dry between pushes): nothing lost.
    s.startJpeg({ live: false });
    for (let i = 0; i < 6; i++) await s.pushJpeg(jpeg, i * 1000);
    s.endInput();
    await assert.rejects(s.pushJpeg(jpeg, 9000), { code: 'WINNOW_ERR_PROTOCOL' });
    await endedCount(1);
    assert.deepEqual(ended[0], { source: { kind: 'input_video', format: 'jpeg', live: false }, frames: 6, dropped: 0, reason: 'end' });

    // Live at 4 images per second of capture time, fps 1, pushed at once: 3 of every 4 are sampled
    // out before decoding (fps-sampling), the rest overflow the queue of 4 (keep-latest).
    s.startJpeg({ live: true });
    const pushes: Promise<void>[] = [];
    for (let i = 0; i < 80; i++) pushes.push(s.pushJpeg(jpeg, i * 250));
    s.endInput();
    await Promise.all(pushes);
    await endedCount(2);
    assert.equal(ended[1].reason, 'end');
    assert.equal(sum('fps-sampling'), 60);
    assert.ok(sum('keep-latest') > 0);
    assert.equal(ended[1].frames + ended[1].dropped, 80);
    assert.equal(processed, 6 + ended[1].frames);
    assert.equal(sum(), ended[1].dropped);

    // Closed with images still queued: they are discarded and counted; source.ended waits for the
    // image in the model and the one being decoded, so its counts are final.
    s.startJpeg({ live: true });
    const before = { processed, dropped: sum() };
    const last: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) last.push(s.pushJpeg(jpeg, i * 1000));
    await new Promise((r) => setImmediate(r));
    s.closeSource();
    assert.equal(s.inputActive, false);
    await Promise.all(last);
    await endedCount(3);
    assert.equal(ended[2].reason, 'closed');
    assert.ok(sum('discard-on-close') > 0, JSON.stringify(drops));
    assert.equal(ended[2].frames, processed - before.processed);
    assert.equal(ended[2].dropped, sum() - before.dropped);
    assert.equal(ended[2].frames + ended[2].dropped, 30);
    await s.drain();
    await sleep(250);
    assert.equal(processed - before.processed, ended[2].frames);
    assert.equal(sum() - before.dropped, ended[2].dropped);
    const st = s.stats;
    assert.equal(st.framesDropped, sum());
    assert.equal(st.droppedByPolicy['fps-sampling'] + st.droppedByPolicy['keep-latest'] + st.droppedByPolicy['discard-on-close'], st.framesDropped);
    assert.equal(drops.at(-1)!.total, st.framesDropped);
  } finally {
    await s.close();
  }
});
