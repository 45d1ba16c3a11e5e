// The WebSocket server on 127.0.0.1 with real ws clients, real ffmpeg and the default model:
// protocol errors, auth, origins, source allow-lists, limits, cancellation, disconnects, metrics,
// standing questions with a webhook. None of these depend on answer quality.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import sharp from 'sharp';
import { createServer, type WinnowEngine, type WinnowServer } from '../../src/stream/index.js';
import { fileTempDir, isAlive, listenLocal, modelSkip, waitUntil } from '../shared/index.js';
import { TestClient, pushFile, renderVideo, sharedEngine, type AnyEvent } from './helpers.js';

const skip = modelSkip;
let engine: WinnowEngine;
let server: WinnowServer;
const tmp = fileTempDir('winnow-serve-');
let dir: string;
let mp4: string;
let allowed: string;
let hookUrl: string;
const hookHits: { status: number; body: Record<string, unknown> }[] = [];
let hookServer: ReturnType<typeof createHttpServer>;
const hangingHooks: ServerResponse[] = [];

type ErrorEvent = { type: 'error'; error: { code: string; message: string; event_id: string | null } };

before(async () => {
  if (skip) return;
  dir = tmp.dir;
  [engine, { mp4 }] = await Promise.all([sharedEngine(), renderVideo(dir, 11, 4)]);
  allowed = join(dir, 'allowed');
  await mkdir(allowed);
  await writeFile(join(allowed, 'clip.mp4'), await readFile(mp4));
  await writeFile(join(dir, 'secret.mp4'), await readFile(mp4));
  await symlink(join(dir, 'secret.mp4'), join(allowed, 'escape.mp4'));
  // Webhook receiver: the first delivery fails with 500 so the retry path runs.
  let calls = 0;
  hookServer = createHttpServer((req: IncomingMessage, res) => {
    // A receiver that accepts the request and never answers.
    if (req.url === '/hang') {
      hangingHooks.push(res);
      return;
    }
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const status = calls++ === 0 ? 500 : 200;
      hookHits.push({ status, body: JSON.parse(body) as Record<string, unknown> });
      res.writeHead(status).end();
    });
  });
  hookUrl = `http://127.0.0.1:${await listenLocal(hookServer)}`;
  server = await createServer({
    port: 0,
    engine,
    allowPaths: [allowed],
    allowUrlSchemes: ['rtsp'],
    allowWebhookOrigins: [hookUrl],
    webhook: { initialBackoffMs: 50 },
    limits: { maxPayloadBytes: 256 * 1024, maxSessions: 6, maxQuestionChars: 200 },
  });
});

after(async () => {
  if (skip) return;
  await server?.close();
  hookServer?.close();
  await engine?.close();
});

test('bad messages get an error with a code (event_id echoed) and the session carries on', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  const created = await c.wait<{ type: 'session.created'; session: { id: string; limits: Record<string, number> } }>('session.created');
  assert.match(created.session.id, /^sess_/);
  assert.equal(created.session.limits.maxPayloadBytes, 256 * 1024);
  const errors = (): ErrorEvent[] => c.ofType<ErrorEvent>('error');
  c.sendRaw('{not json');
  c.send({ type: 'no.such.event', event_id: 'e1' });
  c.send({ type: 'session.update', event_id: 'e2', session: { fps: -3 } });
  c.send({ type: 'session.update', event_id: 'e3', session: { fps: 1, bogus: true } });
  c.sendRaw(Buffer.from([0, 1, 2, 3]), true);
  c.send({ type: 'input_video.frame', event_id: 'e4', ptsMs: 0 });
  c.send({ type: 'response.create', event_id: 'e5' });
  c.send({ type: 'response.cancel', event_id: 'e6' });
  c.sendRaw('[1,2]');
  c.send({ type: 'conversation.item.create', event_id: 'e7', text: 'x'.repeat(201) });
  c.send({ type: 'session.update', event_id: 'e8', session: { maxContextTokens: 1_000_000 } });
  c.send({ type: 'session.update', event_id: 'ok', session: { fps: 2 } });
  const updated = await c.wait<{ type: 'session.updated'; event_id: string; session: { config: { fps: number } } }>('session.updated');
  assert.equal(updated.event_id, 'ok');
  assert.equal(updated.session.config.fps, 2);
  const byId = new Map(errors().map((e) => [e.error.event_id, e.error.code]));
  assert.equal(errors().length, 11);
  assert.equal(errors()[0].error.code, 'WINNOW_ERR_PROTOCOL');
  assert.equal(errors()[0].error.event_id, null);
  assert.equal(byId.get('e1'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e2'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e3'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e4'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e5'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e6'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(byId.get('e7'), 'WINNOW_ERR_LIMIT_EXCEEDED');
  assert.equal(byId.get('e8'), 'WINNOW_ERR_LIMIT_EXCEEDED');
  // Binary before input_video.start is an error, not a crash; the socket is still open.
  assert.ok(errors().some((e) => /binary/.test(e.error.message)));
  // The session still works after all that (a question with no frames yet is answered from the prompt alone).
  const a = await c.ask('how many circles appeared?', { generation: { maxNewTokens: 4 } });
  assert.equal(a.done.response.status, 'completed');
  assert.ok(a.done.response.usage.outputTokens >= 1 && a.done.response.usage.outputTokens <= 4);
  await c.close();
});

test('oversize message closes that socket with 1009; other sessions keep being served', { skip }, async () => {
  const other = await TestClient.connect(server.url);
  const big = await TestClient.connect(server.url);
  big.sendRaw(Buffer.alloc(256 * 1024 + 1), true);
  assert.equal(await big.closed, 1009);
  other.send({ type: 'session.update', session: { fps: 1 } });
  await other.wait('session.updated');
  await other.close();
});

test('pushed video: frame.processed per sampled frame, source.ended, answer streamed with usage and timings', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  c.send({ type: 'session.update', session: { pruning: { strategy: 'pool', ratio: 0.5 } } });
  const ended = await pushFile(c, mp4, 'mp4', 8 * 1024);
  assert.equal(ended.reason, 'end');
  const frames = c.ofType<{ type: 'frame.processed'; index: number; ptsMs: number; kept: number; total: number; latencyMs: number }>('frame.processed');
  assert.equal(frames.length, 4);
  assert.deepEqual(frames.map((f) => f.index), [0, 1, 2, 3]);
  assert.deepEqual(frames.map((f) => f.ptsMs), [0, 1000, 2000, 3000]);
  for (const f of frames) {
    assert.equal(f.total, 49);
    // ratio 0.5 of 49 rounds half to even (Python round), as the prune stage does.
    assert.equal(f.kept, 24);
    assert.ok(f.latencyMs >= 0);
  }
  const a = await c.ask('did a red square appear?');
  assert.equal(a.deltas.trim(), a.text);
  const r = a.done.response;
  assert.equal(r.usage.visualTokensKept, 96);
  assert.equal(r.usage.visualTokensTotal, 196);
  assert.ok(r.usage.promptTokens > 100);
  assert.ok(r.timings.ttftMs > 0 && r.timings.totalMs >= r.timings.ttftMs);
  await c.close();
});

// Regression (issue 7): on an idle machine the 191 dropped images were only reported by the 200 ms
// coalescing timer, after source.ended (and never if the client closed first). Drops are now flushed
// before source.ended, so at source.ended a client has every count: processed + dropped === pushed.
test('jpeg input: one frame per JPEG with its capture time; live overflow keeps the latest and every image is accounted for', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  const jpeg = await sharp({ create: { width: 160, height: 120, channels: 3, background: { r: 200, g: 30, b: 30 } } }).jpeg().toBuffer();
  c.send({ type: 'input_video.start', format: 'jpeg', live: true });
  // 200 JPEGs 1 s apart, sent at once: far more than the queue (8) holds while the model works.
  const pushed = 200;
  for (let i = 0; i < pushed; i++) {
    c.send({ type: 'input_video.frame', ptsMs: 5_000 + i * 1000 });
    c.sendRaw(jpeg, true);
  }
  c.sendRaw(Buffer.from('no input_video.frame before me'), true);
  c.send({ type: 'input_video.end' });
  const ended = await c.wait<{ type: 'source.ended'; frames: number; dropped: number; reason: string }>('source.ended', () => true, 60_000);
  // Counted at the moment source.ended arrives: nothing may still be pending in a timer.
  const dropped = c.ofType<{ type: 'input_video.dropped'; count: number; total: number; policy: string }>('input_video.dropped');
  const frames = c.ofType<{ type: 'frame.processed'; ptsMs: number }>('frame.processed');
  assert.equal(ended.reason, 'end');
  assert.ok(dropped.length > 0, 'drops reported');
  // 1 s apart at fps 1: no image is skipped by sampling; every drop is keep-latest overflow.
  assert.ok(dropped.every((d) => d.policy === 'keep-latest'), JSON.stringify(dropped));
  const droppedSum = dropped.reduce((s, d) => s + d.count, 0);
  assert.equal(dropped[dropped.length - 1].total, droppedSum);
  assert.equal(ended.dropped, droppedSum);
  assert.equal(ended.frames, frames.length);
  assert.equal(frames.length + droppedSum, pushed);
  // Nothing arrives later either.
  await sleep(300);
  assert.equal(c.ofType('input_video.dropped').length, dropped.length);
  assert.equal(c.ofType('frame.processed').length, frames.length);
  // Timeline starts at the first capture time; frames stay in order; the newest frame survived.
  assert.equal(frames[0].ptsMs, 0);
  for (let i = 1; i < frames.length; i++) assert.ok(frames[i].ptsMs > frames[i - 1].ptsMs);
  assert.equal(frames[frames.length - 1].ptsMs, 199_000);
  assert.ok(c.ofType<ErrorEvent>('error').some((e) => e.error.code === 'WINNOW_ERR_PROTOCOL'));
  // A JPEG that does not decode is an error; the input goes on. An image in a 1/fps interval that
  // already has one is dropped by fps sampling (and says so): 4 pushed = 2 processed + 1 dropped + 1 error.
  const dropsBefore = c.ofType('input_video.dropped').length;
  c.send({ type: 'input_video.start', format: 'jpeg', live: false });
  c.send({ type: 'input_video.frame', ptsMs: 0 });
  c.sendRaw(Buffer.from('not a jpeg'), true);
  c.send({ type: 'input_video.frame', ptsMs: 1000 });
  c.sendRaw(jpeg, true);
  c.send({ type: 'input_video.frame', ptsMs: 1400 });
  c.sendRaw(jpeg, true);
  c.send({ type: 'input_video.frame', ptsMs: 2000 });
  c.sendRaw(jpeg, true);
  c.send({ type: 'input_video.end' });
  assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.code === 'WINNOW_ERR_CORRUPT_INPUT')).error.event_id, null);
  const second = await c.next<{ type: 'source.ended'; frames: number; dropped: number }>('source.ended');
  assert.equal(second.frames, 2);
  assert.equal(second.dropped, 1);
  const sampled = c.ofType<{ type: 'input_video.dropped'; count: number; total: number; policy: string }>('input_video.dropped').slice(dropsBefore);
  assert.deepEqual(sampled.map((d) => [d.policy, d.count]), [['fps-sampling', 1]]);
  assert.equal(sampled[0].total, droppedSum + 1);
  // The same JPEG as an MJPEG byte stream (ffmpeg's 25 fps default): 60 images = 2.4 s → 3 frames at 1 fps.
  const mjpeg = Buffer.concat(Array.from({ length: 60 }, () => jpeg));
  c.send({ type: 'input_video.start', format: 'mjpeg', live: false });
  const third = c.next<{ type: 'source.ended'; frames: number; reason: string }>('source.ended', () => true, 30_000);
  c.sendRaw(mjpeg.subarray(0, 5000), true);
  c.sendRaw(mjpeg.subarray(5000), true);
  c.send({ type: 'input_video.end' });
  assert.equal((await third).reason, 'end');
  assert.equal((await third).frames, 3);
  await c.close();
});

test('live pushed container: keep-latest overflow with a counter, every decoded frame accounted for, the newest kept', { skip }, async () => {
  const { mp4: long } = await renderVideo(dir, 13, 20);
  const c = await TestClient.connect(server.url);
  // 10 fps of a 10 fps video: 200 frames decoded far faster than the model takes them.
  c.send({ type: 'session.update', session: { fps: 10 } });
  await c.wait('session.updated');
  const bytes = await readFile(long);
  c.send({ type: 'input_video.start', format: 'mp4', live: true });
  const endedP = c.next<{ type: 'source.ended'; frames: number; dropped: number; reason: string }>('source.ended', () => true, 60_000);
  for (let i = 0; i < bytes.length; i += 64 * 1024) c.sendRaw(bytes.subarray(i, i + 64 * 1024), true);
  c.send({ type: 'input_video.end' });
  const ended = await endedP;
  const dropped = c.ofType<{ type: 'input_video.dropped'; count: number; total: number; policy: string }>('input_video.dropped');
  const frames = c.ofType<{ type: 'frame.processed'; ptsMs: number }>('frame.processed');
  assert.equal(ended.reason, 'end');
  assert.ok(dropped.length > 0 && dropped.every((d) => d.policy === 'keep-latest'), JSON.stringify(dropped));
  const droppedSum = dropped.reduce((a, d) => a + d.count, 0);
  assert.ok(droppedSum > 0);
  assert.equal(ended.dropped, droppedSum);
  assert.equal(ended.frames, frames.length);
  assert.equal(frames.length + droppedSum, 200);
  for (let i = 1; i < frames.length; i++) assert.ok(frames[i].ptsMs > frames[i - 1].ptsMs);
  assert.equal(frames[frames.length - 1].ptsMs, 19_900);
  await c.close();
});

test('session.update generation.temperature: 0 answers the same every time, a high temperature samples; bad values are refused', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  await pushFile(c, mp4);
  c.send({ type: 'session.update', event_id: 'neg', session: { generation: { temperature: -1 } } });
  assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'neg')).error.code, 'WINNOW_ERR_PROTOCOL');
  c.send({ type: 'session.update', event_id: 't0', session: { generation: { temperature: 0, maxNewTokens: 6 } } });
  const u0 = await c.wait<{ type: 'session.updated'; event_id?: string; session: { config: { generation: { temperature: number } } } }>('session.updated', (e) => e.event_id === 't0');
  assert.equal(u0.session.config.generation.temperature, 0);
  const greedy = new Set<string>();
  for (let i = 0; i < 3; i++) greedy.add((await c.ask('how many circles appeared?')).text);
  assert.equal(greedy.size, 1, [...greedy].join(' | '));
  c.send({ type: 'session.update', event_id: 'over', session: { generation: { temperature: 50 } } });
  assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'over')).error.code, 'WINNOW_ERR_PROTOCOL');
  // The highest temperature flattens the distribution: eight answers of up to 6 tokens do not all agree.
  c.send({ type: 'session.update', event_id: 'hot', session: { generation: { temperature: 5 } } });
  await c.wait('session.updated', (e: AnyEvent & { event_id?: string }) => e.event_id === 'hot');
  const sampled = new Set<string>();
  for (let i = 0; i < 8; i++) sampled.add((await c.ask('how many circles appeared?')).text);
  assert.ok(sampled.size >= 2, [...sampled].join(' | '));
  await c.close();
});

test('context.evicted over the socket: a small KV budget drops the oldest frames and says how many', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  c.send({ type: 'session.update', session: { maxContextTokens: 512 } });
  await c.wait('session.updated');
  const jpeg = await sharp({ create: { width: 96, height: 72, channels: 3, background: { r: 30, g: 30, b: 200 } } }).jpeg().toBuffer();
  c.send({ type: 'input_video.start', format: 'jpeg', live: false });
  for (let i = 0; i < 12; i++) {
    c.send({ type: 'input_video.frame', ptsMs: i * 1000 });
    c.sendRaw(jpeg, true);
  }
  c.send({ type: 'input_video.end' });
  const ended = await c.wait<{ type: 'source.ended'; frames: number; dropped: number }>('source.ended', () => true, 60_000);
  assert.deepEqual([ended.frames, ended.dropped], [12, 0]);
  const evicted = c.ofType<{ type: 'context.evicted'; frames: number; tokens: number; remainingFrames: number; oldestPtsMs: number | null }>('context.evicted');
  assert.ok(evicted.length >= 1);
  const gone = evicted.reduce((n, e) => n + e.frames, 0);
  assert.ok(gone >= 1 && gone < 12);
  for (const e of evicted) assert.ok(e.tokens >= e.frames * 49 && e.remainingFrames >= 1);
  const last = evicted[evicted.length - 1];
  // Frames are evicted oldest first: the oldest left is the one after the last evicted.
  assert.equal(last.oldestPtsMs, gone * 1000);
  // The answer sees only what is left.
  const a = await c.ask('what color is the square?', { generation: { maxNewTokens: 3 } });
  assert.equal(a.done.response.usage.visualTokensTotal, (12 - gone) * 49);
  await c.close();
});

test('source.open: only files under --allow-path (no .., no symlink escape), only allowed URL schemes', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  const codeOf = async (id: string): Promise<string> => (await c.wait<ErrorEvent>('error', (e) => e.error.event_id === id)).error.code;
  c.send({ type: 'source.open', event_id: 'p1', path: join(dir, 'secret.mp4') });
  assert.equal(await codeOf('p1'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'p2', path: join(allowed, '..', 'secret.mp4') });
  assert.equal(await codeOf('p2'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'p3', path: 'escape.mp4' });
  assert.equal(await codeOf('p3'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'p4', path: 'missing.mp4' });
  assert.equal(await codeOf('p4'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'u1', url: 'https://example.com/a.mp4' });
  assert.equal(await codeOf('u1'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'u2', url: 'file:///etc/passwd' });
  assert.equal(await codeOf('u2'), 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'source.open', event_id: 'u3', url: 'rtsp://127.0.0.1:1/none', path: 'clip.mp4' });
  assert.equal(await codeOf('u3'), 'WINNOW_ERR_PROTOCOL');
  assert.equal(c.ofType('source.opened').length, 0);
  // A relative name under the root works and plays to the end.
  c.send({ type: 'source.open', path: 'clip.mp4' });
  const opened = await c.wait<{ type: 'source.opened'; source: { kind: string; path: string } }>('source.opened');
  assert.equal(opened.source.kind, 'path');
  const ended = await c.wait<{ type: 'source.ended'; frames: number; reason: string }>('source.ended', () => true, 30_000);
  assert.equal(ended.reason, 'end');
  assert.equal(ended.frames, 4);
  await c.close();
});

test('auth: wrong or missing token refused with 401 and a code; header and subprotocol tokens accepted; origin allow-list', { skip }, async () => {
  const token = 'sekret-token-123';
  const s = await createServer({ port: 0, engine, token, allowedOrigins: ['http://good.example'] });
  try {
    await assert.rejects(TestClient.connect(s.url), (e: Error & { status?: number; code?: string }) => e.status === 401 && e.code === 'WINNOW_ERR_UNAUTHORIZED');
    await assert.rejects(TestClient.connect(s.url, { token: 'sekret-token-124' }), (e: Error & { status?: number }) => e.status === 401);
    await assert.rejects(TestClient.connect(s.url, { protocols: ['winnow.v1', 'winnow.bearer.nope-nope-nope'] }), (e: Error & { status?: number }) => e.status === 401);
    const h = await TestClient.connect(s.url, { token });
    await h.wait('session.created');
    const p = await TestClient.connect(s.url, { protocols: ['winnow.v1', `winnow.bearer.${token}`] });
    assert.equal(p.ws.protocol, 'winnow.v1');
    await p.wait('session.created');
    await assert.rejects(
      TestClient.connect(s.url, { token, headers: { origin: 'http://evil.example' } }),
      (e: Error & { status?: number; code?: string }) => e.status === 403 && e.code === 'WINNOW_ERR_FORBIDDEN_ORIGIN',
    );
    const o = await TestClient.connect(s.url, { token, headers: { origin: 'http://good.example' } });
    await o.wait('session.created');
    // /metrics needs the token too; /healthz does not.
    const http = s.url.replace('ws', 'http');
    assert.equal((await fetch(`${http}metrics`)).status, 401);
    assert.equal((await fetch(`${http}metrics`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await fetch(`${http}healthz`)).status, 200);
    await Promise.all([h.close(), p.close(), o.close()]);
  } finally {
    await s.close();
  }
  await assert.rejects(createServer({ port: 0, engine, host: '0.0.0.0' }), (e: { code?: string }) => e.code === 'WINNOW_ERR_INVALID_ARGUMENT');
  // Without an allow-list only the server's own origin passes (no cross-site WebSocket hijacking).
  const host = new URL(server.url).host;
  await assert.rejects(TestClient.connect(server.url, { headers: { origin: 'http://evil.example' } }), (e: Error & { status?: number }) => e.status === 403);
  const same = await TestClient.connect(server.url, { headers: { origin: `http://${host}` } });
  await same.wait('session.created');
  await same.close();
});

test('max sessions: one too many gets LIMIT_EXCEEDED and close 1013; idle sessions are closed', { skip }, async () => {
  const s = await createServer({ port: 0, engine, limits: { maxSessions: 2, idleTimeoutMs: 1500 } });
  try {
    const a = await TestClient.connect(s.url);
    const b = await TestClient.connect(s.url);
    const c = await TestClient.connect(s.url);
    assert.equal(await c.closed, 1013);
    assert.equal(c.ofType<ErrorEvent>('error')[0].error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');
    // a keeps talking, b stays silent and is closed for idleness.
    const keep = setInterval(() => a.send({ type: 'session.update', session: {} }), 200);
    try {
      assert.equal(await b.closed, 4000);
      assert.equal(b.ofType<ErrorEvent>('error')[0].error.code, 'WINNOW_ERR_IDLE_TIMEOUT');
      assert.equal(a.ws.readyState, a.ws.OPEN);
    } finally {
      clearInterval(keep);
    }
    await a.close();
  } finally {
    await s.close();
  }
});

test('close(): stops accepting at once (new sockets and health checks refused) while open sessions get the shutdown notice', { skip }, async () => {
  const s = await createServer({ port: 0, engine });
  const url = s.url;
  const http = url.replace(/^ws/, 'http');
  const a = await TestClient.connect(url);
  await a.wait('session.created');
  assert.equal((await fetch(`${http}healthz`)).status, 200);
  const closing = s.close();
  assert.equal(s.close(), closing, 'idempotent: the same promise');
  // Refused while the open session is still draining: no new session can start.
  await assert.rejects(TestClient.connect(url));
  const health = await fetch(`${http}healthz`).then(
    (r) => r.status,
    () => 'refused' as const,
  );
  assert.ok(health === 503 || health === 'refused', `healthz during shutdown: ${health}`);
  await closing;
  assert.equal(await a.closed, 1001);
  const errs = a.ofType<ErrorEvent>('error');
  assert.equal(errs[errs.length - 1].error.code, 'WINNOW_ERR_SHUTTING_DOWN');
  assert.deepEqual(a.invalid, []);
});

test('heartbeats: a client that stops answering pings is dropped and its session freed', { skip }, async () => {
  const s = await createServer({ port: 0, engine, limits: { heartbeatIntervalMs: 150 } });
  try {
    const live = await TestClient.connect(s.url);
    const dead = await TestClient.connect(s.url, { autoPong: false });
    await Promise.all([live.wait('session.created'), dead.wait('session.created')]);
    assert.equal(await dead.closed, 1006);
    await sleep(400);
    assert.equal(live.ws.readyState, live.ws.OPEN);
    assert.equal(s.sessionCount, 1);
    await live.close();
  } finally {
    await s.close();
  }
});

test('response.cancel ends the answer with status cancelled; too many pending responses is an error', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  await pushFile(c, mp4);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    c.send({ type: 'conversation.item.create', text: `question ${i}?` });
    c.send({ type: 'response.create', event_id: `r${i}`, generation: { maxNewTokens: 16 } });
  }
  const overflow = await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'r4');
  assert.equal(overflow.error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');
  for (const e of c.ofType<{ type: 'response.created'; response: { id: string } }>('response.created')) ids.push(e.response.id);
  assert.equal(ids.length, 4);
  // Cancel the last queued one by id and the running one without id.
  c.send({ type: 'response.cancel', response_id: ids[3] });
  c.send({ type: 'response.cancel' });
  const dones = await Promise.all(ids.map((id) => c.wait<{ type: 'response.done'; response: { id: string; status: string } }>('response.done', (e) => e.response.id === id, 60_000)));
  assert.equal(dones[3].response.status, 'cancelled');
  assert.ok(dones.filter((d) => d.response.status === 'cancelled').length >= 1);
  assert.ok(dones.every((d) => d.response.status === 'cancelled' || d.response.status === 'completed'));
  await c.close();
});

test('a client that disconnects mid-answer frees its session: no ffmpeg child, no scheduler slot, no KV cache, nothing retained', { skip }, async () => {
  const bytes = await readFile(mp4);
  const baseSessions = server.sessionCount;
  const baseScheduled = engine.scheduler.sessionCount;
  const gone: WeakRef<object>[] = [];
  for (let round = 0; round < 3; round++) {
    const c = await TestClient.connect(server.url);
    const created = await c.wait<{ type: 'session.created'; session: { id: string } }>('session.created');
    // Half a file and no end: ffmpeg stays alive waiting for more bytes.
    c.send({ type: 'input_video.start', format: 'mp4', live: true });
    c.sendRaw(bytes.subarray(0, bytes.length >> 1), true);
    await c.wait('source.opened');
    let session = server.sessions.find((s) => s.id === created.session.id);
    assert.ok(session);
    await waitUntil(() => (session?.stats.ffmpegPids.length ?? 0) > 0, 10_000);
    const pids = session.stats.ffmpegPids;
    assert.equal(pids.length, 1);
    c.send({ type: 'conversation.item.create', text: 'how many circles appeared?' });
    c.send({ type: 'response.create', generation: { maxNewTokens: 128 } });
    await c.wait('response.created');
    c.ws.terminate();
    await waitUntil(() => server.sessionCount === baseSessions && !pids.some(isAlive) && engine.scheduler.sessionCount === baseScheduled, 10_000);
    assert.equal(server.sessionCount, baseSessions);
    assert.equal(engine.scheduler.sessionCount, baseScheduled);
    assert.ok(!pids.some(isAlive), 'ffmpeg child killed');
    assert.ok(session.closed);
    assert.equal(session.stats.pendingResponses, 0);
    assert.equal(session.stats.contextTokens, 0);
    gone.push(new WeakRef(session));
    session = undefined;
  }
  // Memory does not grow with disconnects: nothing (server, engine, scheduler, webhooks, timers)
  // keeps a closed session — with its KV buffers, frames and pruner — reachable.
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // deref() keeps its target alive until the current job ends, so collect in a job of its own.
  const retained = (): number => gone.filter((w) => w.deref() !== undefined).length;
  const t2 = Date.now();
  do {
    await sleep(50);
    gc();
    await new Promise((r) => setImmediate(r));
  } while (retained() > 0 && Date.now() - t2 < 10_000);
  assert.equal(retained(), 0, 'closed sessions are garbage-collectable');
});

test('standing question fires on video time and POSTs its webhook (retried after a 500)', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  c.send({ type: 'session.update', event_id: 'bad', session: { watch: [{ id: 'x', question: 'q?', everySeconds: 1, webhook: 'http://10.0.0.1:9/hook' }] } });
  assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'bad')).error.code, 'WINNOW_ERR_FORBIDDEN_SOURCE');
  c.send({ type: 'session.update', event_id: 'short', session: { watch: [{ id: 'x', question: 'q?', everySeconds: 0.5 }] } });
  assert.equal((await c.wait<ErrorEvent>('error', (e) => e.error.event_id === 'short')).error.code, 'WINNOW_ERR_LIMIT_EXCEEDED');
  c.send({
    type: 'session.update',
    session: { watch: [{ id: 'red-square', question: 'is there a red square?', everySeconds: 2, webhook: `${hookUrl}/hook` }], generation: { maxNewTokens: 4 } },
  });
  await c.wait('session.updated');
  await pushFile(c, mp4);
  await c.wait('watch.result', (e: AnyEvent & { ptsMs?: number }) => e.ptsMs === 2000, 30_000);
  const results = c.ofType<{ type: 'watch.result'; id: string; question: string; answer: string; ptsMs: number }>('watch.result');
  assert.deepEqual(results.map((r) => r.ptsMs), [0, 2000]);
  for (const r of results) {
    assert.equal(r.id, 'red-square');
    assert.equal(r.question, 'is there a red square?');
    assert.equal(typeof r.answer, 'string');
  }
  await waitUntil(() => hookHits.filter((h) => h.status === 200).length >= 2, 10_000);
  assert.equal(hookHits[0].status, 500);
  const ok = hookHits.filter((h) => h.status === 200).map((h) => h.body);
  assert.equal(ok.length, 2);
  assert.deepEqual(ok.map((b) => b.ptsMs).sort(), [0, 2000]);
  assert.equal(ok[0].id, 'red-square');
  assert.equal(ok[0].type, 'watch.result');
  await c.close();
});

test('a webhook receiver that never answers holds up neither the frames nor the watch results', { skip }, async () => {
  const c = await TestClient.connect(server.url);
  c.send({
    type: 'session.update',
    session: { watch: [{ id: 'hang', question: 'is there a red square?', everySeconds: 1, webhook: `${hookUrl}/hang` }], generation: { maxNewTokens: 4 } },
  });
  await c.wait('session.updated');
  const t0 = Date.now();
  const ended = await pushFile(c, mp4);
  await c.wait('watch.result', (e: AnyEvent & { ptsMs?: number }) => e.ptsMs === 3000, 30_000);
  const elapsedMs = Date.now() - t0;
  assert.equal(ended.reason, 'end');
  assert.equal(ended.frames, 4);
  assert.deepEqual(c.ofType<{ type: 'watch.result'; ptsMs: number }>('watch.result').map((r) => r.ptsMs), [0, 1000, 2000, 3000]);
  // Deliveries were made and are all still hanging (the per-attempt timeout is 5 s): had any step
  // waited for one, four watch results could not have come back this fast.
  await waitUntil(() => hangingHooks.length >= 4);
  assert.equal(hangingHooks.length, 4);
  assert.ok(hangingHooks.every((r) => !r.writableEnded));
  assert.ok(elapsedMs < 5_000, `stream took ${elapsedMs} ms`);
  await c.close();
  for (const r of hangingHooks.splice(0)) r.destroy();
});

test('/metrics (Prometheus text) and /healthz on the same port', { skip }, async () => {
  const http = server.url.replace('ws', 'http');
  const health = (await (await fetch(`${http}healthz`)).json()) as { status: string };
  assert.equal(health.status, 'ok');
  const res = await fetch(`${http}metrics`);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  for (const name of [
    'winnow_sessions',
    'winnow_frames_in_total',
    'winnow_frames_dropped_total',
    'winnow_visual_tokens_kept_total',
    'winnow_visual_tokens_total',
    'winnow_prefill_seconds_bucket',
    'winnow_decode_token_seconds_bucket',
    'winnow_errors_total{code="WINNOW_ERR_PROTOCOL"}',
    'winnow_process_resident_memory_bytes',
  ]) {
    assert.ok(text.includes(name), name);
  }
  const processed = Number(/^winnow_frames_processed_total (\d+)/m.exec(text)?.[1]);
  assert.ok(processed >= 8);
  assert.ok(Number(/^winnow_frames_dropped_total\{policy="keep-latest"\} (\d+)/m.exec(text)?.[1]) > 0);
  // Every processed frame, every answered question and every standing-question answer (earlier tests
  // on this server) is one prefill observation of its kind.
  const metric = (re: RegExp): number => Number(re.exec(text)?.[1] ?? Number.NaN);
  assert.equal(metric(/^winnow_prefill_seconds_count\{kind="frame"\} (\d+)/m), processed);
  const completed = metric(/^winnow_responses_total\{status="completed"\} (\d+)/m);
  assert.ok(completed >= 1, `completed responses: ${completed}`);
  assert.ok(metric(/^winnow_prefill_seconds_count\{kind="question"\} (\d+)/m) >= completed);
  assert.ok(metric(/^winnow_prefill_seconds_sum\{kind="question"\} ([\d.e-]+)/m) > 0);
  assert.ok(metric(/^winnow_prefill_seconds_count\{kind="watch"\} (\d+)/m) >= 2);
  assert.ok(metric(/^winnow_ttft_seconds_count (\d+)/m) >= completed);
  assert.equal((await fetch(`${http}nope`)).status, 404);
});
