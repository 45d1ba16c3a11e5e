// Sessions over a fake engine (no model, no onnxruntime runs): frame accounting, eviction
// bookkeeping read from the context, drop policies, answers and their cancellation, standing
// questions, close(). The real scheduler drives them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WinnowError } from '../../src/errors.js';
import { createSession, type AnswerDone, type Session, type SessionEvents } from '../../src/stream/session.js';
import sharp from 'sharp';
import { deferred, type Deferred } from '../../src/util/deferred.js';
import { thrownCode } from '../shared/index.js';
import { TOKENS_PER_FRAME, fakeEngine, rgbFrames, type FakeEngine } from './fake-engine.js';

type Recorded = { type: keyof SessionEvents; e: unknown }[];

/** Records every session event in order. */
function record(s: Session): Recorded {
  const out: Recorded = [];
  const types: (keyof SessionEvents)[] = ['queued', 'frame', 'dropped', 'evicted', 'source.opened', 'source.ended', 'watch', 'prefilled', 'error', 'closed'];
  for (const t of types) s.on(t, (e) => out.push({ type: t, e }));
  return out;
}

function of<K extends keyof SessionEvents>(events: Recorded, type: K): SessionEvents[K][] {
  return events.filter((x) => x.type === type).map((x) => x.e as SessionEvents[K]);
}

function droppedBy(events: Recorded): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of of(events, 'dropped')) out[d.policy] = (out[d.policy] ?? 0) + d.count;
  return out;
}

async function session(engine: FakeEngine, config: Parameters<typeof createSession>[0] = {}): Promise<Session> {
  return createSession({ engine, limits: { maxQueuedFrames: 2 }, ...config });
}

/** A recorded session sampling every frame (fps 30) on an engine whose encoder waits for `gate`. */
async function gatedSession(): Promise<{ engine: FakeEngine; gate: Deferred<void>; s: Session; ev: Recorded }> {
  const engine = fakeEngine();
  const gate = deferred();
  engine.gate = gate;
  const s = await session(engine, { config: { fps: 30 } });
  return { engine, gate, s, ev: record(s) };
}

test('pushed frames are sampled by fps, numbered on the session timeline and accounted for', async () => {
  const engine = fakeEngine({ keep: 3 });
  const s = await session(engine, { config: { fps: 1 } });
  const ev = record(s);
  await s.pushFrames(rgbFrames(9, 500));
  await s.drain();
  const frames = of(ev, 'frame');
  assert.deepEqual(frames.map((f) => f.ptsMs), [0, 1000, 2000, 3000, 4000]);
  assert.deepEqual(frames.map((f) => f.index), [0, 1, 2, 3, 4]);
  assert.ok(frames.every((f) => f.kept === 3 && f.total === TOKENS_PER_FRAME));
  const ended = of(ev, 'source.ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0].reason, 'end');
  assert.equal(ended[0].frames, 5);
  assert.equal(ended[0].dropped, 4);
  assert.deepEqual(droppedBy(ev), { 'fps-sampling': 4 });
  const st = s.stats;
  assert.equal(st.framesProcessed, 5);
  assert.equal(st.framesDropped, 4);
  assert.deepEqual(st.droppedByPolicy, { 'keep-latest': 0, 'fps-sampling': 4, 'discard-on-close': 0 });
  assert.equal(st.visualTokensKept, 15);
  assert.equal(st.visualTokensTotal, 5 * TOKENS_PER_FRAME);
  // A second input continues the timeline one frame interval after the last frame.
  await s.pushFrames(rgbFrames(2, 1000));
  await s.drain();
  assert.deepEqual(of(ev, 'frame').slice(5).map((f) => f.ptsMs), [5000, 6000]);
  await s.close();
});

test('kept/total in stats and answer usage follow the context through evictions', async () => {
  const engine = fakeEngine({ keep: 2, maxFrames: 3 });
  const s = await session(engine);
  const ev = record(s);
  await s.pushFrames(rgbFrames(5, 1000));
  await s.drain();
  const evicted = of(ev, 'evicted');
  assert.equal(evicted.reduce((n, e) => n + e.frames, 0), 2);
  assert.equal(evicted.at(-1)!.remainingFrames, 3);
  assert.equal(evicted.at(-1)!.oldestPtsMs, 2000);
  assert.equal(s.stats.visualTokensKept, 3 * 2);
  assert.equal(s.stats.visualTokensTotal, 3 * TOKENS_PER_FRAME);
  assert.equal(s.stats.evictedFrames, 2);
  const done = await s.ask('how many?').done;
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.usage, { visualTokensKept: 6, visualTokensTotal: 12, promptTokens: engine.contexts[0].stats.tokens + 5, outputTokens: 4 });
  await s.close();
});

test('a live input that outruns the model drops the oldest queued frames (keep-latest); every frame is counted once', async () => {
  const { gate, s, ev } = await gatedSession();
  await s.pushFrames(rgbFrames(10, 1000), { live: true });
  // One frame is in the (blocked) model, two are queued: the other seven were dropped.
  assert.equal(s.stats.framesQueued, 2);
  gate.resolve();
  await s.drain();
  const ended = of(ev, 'source.ended')[0];
  assert.equal(ended.frames, 3);
  assert.equal(ended.dropped, 7);
  assert.deepEqual(droppedBy(ev), { 'keep-latest': 7 });
  // Coalesced: the seven drops are one event.
  assert.equal(of(ev, 'dropped').length, 1);
  // The newest frames survive.
  assert.deepEqual(of(ev, 'frame').map((f) => f.ptsMs), [0, 8000, 9000]);
  await s.close();
});

test('a non-live input waits for queue room instead of dropping', async () => {
  const { gate, s, ev } = await gatedSession();
  const pushing = s.pushFrames(rgbFrames(6, 1000));
  await sleep(20);
  assert.equal(s.stats.framesQueued, 2);
  assert.equal(of(ev, 'queued').length, 3);
  gate.resolve();
  await pushing;
  await s.drain();
  assert.equal(of(ev, 'frame').length, 6);
  assert.deepEqual(droppedBy(ev), {});
  await s.close();
});

test('closing with frames queued and in the model counts them discard-on-close, before source.ended and closed', async () => {
  const { engine, gate, s, ev } = await gatedSession();
  await s.pushFrames(rgbFrames(3, 1000), { live: true });
  const closing = s.close('test');
  gate.resolve();
  await closing;
  assert.deepEqual(droppedBy(ev), { 'discard-on-close': 3 });
  assert.equal(of(ev, 'frame').length, 0);
  const order = ev.map((x) => x.type).filter((t) => t === 'dropped' || t === 'source.ended' || t === 'closed');
  assert.deepEqual(order, ['dropped', 'source.ended', 'closed']);
  assert.equal(of(ev, 'source.ended')[0].frames, 0);
  assert.equal(of(ev, 'source.ended')[0].dropped, 3);
  assert.deepEqual(of(ev, 'closed'), [{ reason: 'test' }]);
  assert.equal(engine.contexts[0].closed, true);
  assert.equal(engine.closed, false, 'a borrowed engine stays open');
  assert.equal(s.stats.framesDropped, 3);
});

test('a frame the encoder fails on is an error event, not a processed frame, and the input still ends', async () => {
  const engine = fakeEngine();
  engine.failNext = new Error('scripted');
  const s = await session(engine, { config: { fps: 30 } });
  const ev = record(s);
  await s.pushFrames(rgbFrames(2, 1000));
  await s.drain();
  assert.deepEqual(of(ev, 'error').map((e) => e.code), ['WINNOW_ERR_INFERENCE']);
  assert.equal(of(ev, 'frame').length, 1);
  assert.equal(of(ev, 'source.ended')[0].frames, 1);
  await s.close();
});

test('answers stream deltas in order; cancel works queued, mid-answer, by breaking the loop and by signal', async () => {
  const words = Array.from({ length: 12 }, (_, i) => `w${i}`);
  const engine = fakeEngine({ answer: () => words, answerDeltasPerTurn: 2 });
  const s = await session(engine, { config: { generation: { maxNewTokens: 64 } } });
  await s.pushFrames(rgbFrames(1, 1000));
  await s.drain();

  const first = s.ask('first');
  const queued = s.ask('second');
  assert.equal(s.cancel(queued.id), true);
  assert.equal(s.cancel(queued.id), false);
  const deltas: string[] = [];
  for await (const d of first) deltas.push(d);
  const d1 = await first.done;
  assert.equal(d1.status, 'completed');
  assert.equal(d1.text, words.join(' '));
  assert.equal(deltas.join(''), words.join(' '));
  assert.equal(d1.usage.outputTokens, 12);
  const dq = await queued.done;
  assert.equal(dq.status, 'cancelled');
  assert.equal(dq.usage.outputTokens, 0);
  assert.equal(dq.timings.ttftMs, -1);

  const mid = s.ask('third', { onDelta: (d) => d === ' w3' && s.cancel() });
  const dm = await mid.done;
  assert.equal(dm.status, 'cancelled');
  assert.ok(dm.usage.outputTokens >= 4 && dm.usage.outputTokens < 12, `${dm.usage.outputTokens} deltas`);

  const broken = s.ask('fourth');
  for await (const d of broken) if (d) break;
  assert.equal((await broken.done).status, 'cancelled');

  const ac = new AbortController();
  const signalled = s.ask('fifth', { signal: ac.signal });
  ac.abort();
  assert.equal((await signalled.done).status, 'cancelled');
  const pre = new AbortController();
  pre.abort();
  assert.equal((await s.ask('sixth', { signal: pre.signal }).done).status, 'cancelled');
  assert.equal(s.stats.pendingResponses, 0);
  await s.close();
});

test('response limits: maxPendingResponses, maxNewTokens, empty and long questions fail with their codes', async () => {
  const engine = fakeEngine();
  const s = await createSession({ engine, limits: { maxPendingResponses: 2, maxNewTokens: 8, maxQuestionChars: 10 } });
  const a = s.ask('a');
  const b = s.ask('b');
  const third = thrownCode(() => s.ask('c'));
  assert.equal(third, 'WINNOW_ERR_LIMIT_EXCEEDED');
  assert.equal(thrownCode(() => s.ask('d', { maxNewTokens: 9 })), 'WINNOW_ERR_LIMIT_EXCEEDED');
  a.cancel();
  b.cancel();
  assert.equal(thrownCode(() => s.ask('d', { maxNewTokens: 0 })), 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal(thrownCode(() => s.ask('   ')), 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal(thrownCode(() => s.ask('x'.repeat(11))), 'WINNOW_ERR_LIMIT_EXCEEDED');
  await s.close();
  assert.equal(thrownCode(() => s.ask('late')), 'WINNOW_ERR_SESSION_CLOSED');
});

test('close cancels answers in flight and queued; done resolves for each', async () => {
  const engine = fakeEngine({ answer: () => Array.from({ length: 64 }, () => 'w'), answerDeltasPerTurn: 1 });
  const s = await session(engine, { config: { generation: { maxNewTokens: 64 } } });
  const running = s.ask('one');
  const waiting = s.ask('two');
  // Close once the first answer is under way.
  await running[Symbol.asyncIterator]().next();
  await s.close();
  const done: AnswerDone[] = await Promise.all([running.done, waiting.done]);
  assert.deepEqual(done.map((d) => d.status), ['cancelled', 'cancelled']);
  assert.equal(s.closed, true);
});

test('standing questions are asked on video time, one at a time, and report the frames they saw', async () => {
  const engine = fakeEngine({ answer: () => ['yes'] });
  const s = await session(engine, { config: { fps: 30, watch: [{ id: 'w1', question: 'anything?', everySeconds: 2 }] } });
  const ev = record(s);
  await s.pushFrames(rgbFrames(5, 1000));
  await s.drain();
  const watches = of(ev, 'watch');
  assert.ok(watches.length >= 2, `${watches.length} watch results`);
  assert.ok(watches.every((w) => w.id === 'w1' && w.answer === 'yes' && w.question === 'anything?'));
  for (let i = 1; i < watches.length; i++) assert.ok(watches[i].ptsMs - watches[i - 1].ptsMs >= 2000);
  assert.equal(watches[0].ptsMs, 0);
  assert.equal(watches[0].frames, 1);
  assert.ok(of(ev, 'prefilled').some((p) => p.kind === 'watch'));
  await s.close();
});

test('settings: checked against the limits; maxContextTokens only before the first frame; an owned engine closes with the session', async () => {
  const engine = fakeEngine();
  const s = await session(engine, { limits: { maxQueuedFrames: 2, maxWatches: 1, minWatchSeconds: 1 } });
  assert.equal(thrownCode(() => s.update({ fps: 0 })), 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal(thrownCode(() => s.update({ watch: [{ id: 'a', question: 'q', everySeconds: 0.5 }] })), 'WINNOW_ERR_LIMIT_EXCEEDED');
  assert.equal(thrownCode(() => s.update({ watch: [{ id: 'a', question: 'q', everySeconds: 1 }, { id: 'b', question: 'q', everySeconds: 1 }] })), 'WINNOW_ERR_LIMIT_EXCEEDED');
  assert.equal(s.update({ maxContextTokens: 1024 }).maxContextTokens, 1024);
  assert.equal(engine.contexts.length, 2);
  assert.equal(engine.contexts[0].closed, true);
  await s.pushFrames(rgbFrames(1, 1000));
  await s.drain();
  assert.equal(thrownCode(() => s.update({ maxContextTokens: 2048 })), 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal(s.update({ fps: 2 }).fps, 2);
  await s.close();

  const { Session } = await import('../../src/stream/session.js');
  const owned = fakeEngine();
  const o = new Session(owned, true);
  await o.close();
  assert.equal(owned.closed, true);
  assert.equal(thrownCode(() => o.update({ fps: 1 })), 'WINNOW_ERR_SESSION_CLOSED');
});

test('one input at a time: starting another while one is active is a protocol error', async () => {
  const engine = fakeEngine();
  const s = await session(engine);
  s.startJpeg();
  assert.equal(s.inputActive, true);
  assert.equal(s.inputLive, true);
  assert.equal(s.inputFormat, 'jpeg');
  await assert.rejects(s.pushFrames(rgbFrames(1, 0)), (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_PROTOCOL');
  s.closeSource();
  assert.equal(s.inputActive, false);
  await assert.rejects(s.pushJpeg(new Uint8Array(4), 0), (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_PROTOCOL');
  await s.close();
});

test('pushed JPEGs: sampled before decoding, decoded to the model size in order, a bad one rejects its push', async () => {
  const engine = fakeEngine();
  const s = await session(engine, { config: { fps: 1 } });
  const ev = record(s);
  const jpeg = await sharp({ create: { width: 32, height: 16, channels: 3, background: { r: 200, g: 10, b: 10 } } }).jpeg().toBuffer();
  s.startJpeg({ live: false });
  await s.pushJpeg(jpeg, 100);
  await s.pushJpeg(jpeg, 600);
  await s.pushJpeg(jpeg, 1200);
  await assert.rejects(s.pushJpeg(new Uint8Array([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]), 2500), (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_CORRUPT_INPUT');
  await assert.rejects(s.pushJpeg(jpeg, Number.NaN), (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  s.endInput();
  await assert.rejects(s.pushJpeg(jpeg, 4000), (e: unknown) => e instanceof WinnowError && e.code === 'WINNOW_ERR_PROTOCOL');
  await s.drain();
  await sleep(20);
  const frames = of(ev, 'frame');
  assert.deepEqual(frames.map((f) => f.ptsMs), [0, 1100]);
  const ended = of(ev, 'source.ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0].reason, 'end');
  assert.equal(ended[0].frames, 2);
  assert.deepEqual(droppedBy(ev), { 'fps-sampling': 1 });
  await s.close();
});

test('sessions sharing one engine get one frame each per encode batch, each in its own order', async () => {
  const engine = fakeEngine();
  engine.gate = deferred();
  const a = await session(engine, { config: { fps: 30 } });
  const b = await session(engine, { config: { fps: 30 } });
  const pa = a.pushFrames(rgbFrames(3, 1000));
  const pb = b.pushFrames(rgbFrames(3, 2000));
  await sleep(10);
  engine.gate.resolve();
  await Promise.all([pa, pb]);
  await Promise.all([a.drain(), b.drain()]);
  assert.deepEqual(engine.batches, [[0], [1000, 0], [2000, 2000], [4000]]);
  await Promise.all([a.close(), b.close()]);
});
