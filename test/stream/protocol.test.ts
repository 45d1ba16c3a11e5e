// Pure parts of the stream stage (no model): message validation, JSON Schemas and their copy in
// docs/protocol.md, access checks (paths, URLs, webhooks, tokens), limits, webhook delivery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CLIENT_EVENT_TYPES,
  WebhookPolicy,
  WebhookSender,
  clientEventJsonSchemas,
  parseClientEvent,
  protocolSchemasMarkdown,
  resolveLimits,
  serverEventJsonSchemas,
  tokensEqual,
  isLoopbackHost,
  validateServerEvent,
  DEFAULT_LIMITS,
} from '../../src/stream/index.js';
import { bearerFrom } from '../../src/stream/access.js';
import { SourcePolicy } from '../../src/ingest/index.js';
import { listenLocal, repoRoot, waitUntil, withTempDir } from '../shared/index.js';

test('parseClientEvent: valid events parse; each failure has a reason and keeps event_id', () => {
  const ok = parseClientEvent(JSON.stringify({ type: 'session.update', event_id: 'a', session: { fps: 2, pruning: { strategy: 'ratio', ratio: 0.3 }, watch: [{ id: 'w', question: 'q?', everySeconds: 5 }] } }));
  assert.ok(ok.ok);
  const cases: [string, string, string | undefined][] = [
    ['{', 'json', undefined],
    ['42', 'shape', undefined],
    ['[]', 'shape', undefined],
    [JSON.stringify({ event_id: 'x' }), 'shape', 'x'],
    [JSON.stringify({ type: 'nope', event_id: 'y' }), 'unknown-type', 'y'],
    [JSON.stringify({ type: 'input_video.start', format: 'avi', event_id: 'z' }), 'schema', 'z'],
    [JSON.stringify({ type: 'source.open', url: 'rtsp://a', path: 'b' }), 'schema', undefined],
    [JSON.stringify({ type: 'source.open' }), 'schema', undefined],
    [JSON.stringify({ type: 'conversation.item.create', text: '' }), 'schema', undefined],
    [JSON.stringify({ type: 'session.update', session: { watch: [{ id: 'w', question: 'q', everySeconds: 1, webhook: 'ftp://x' }] } }), 'schema', undefined],
    [JSON.stringify({ type: 'response.create', extra: 1 }), 'schema', undefined],
  ];
  for (const [text, reason, id] of cases) {
    const r = parseClientEvent(text);
    assert.equal(r.ok, false, text);
    if (!r.ok) {
      assert.equal(r.reason, reason, text);
      assert.equal(r.eventId, id, text);
    }
  }
});

test('JSON Schemas exist for every event and docs/protocol.md carries the current ones', async () => {
  const client = clientEventJsonSchemas() as Record<string, { properties: { type: { const: string } }; additionalProperties: boolean }>;
  assert.deepEqual(Object.keys(client), [...CLIENT_EVENT_TYPES]);
  for (const [t, s] of Object.entries(client)) {
    assert.equal(s.properties.type.const, t);
    assert.equal(s.additionalProperties, false);
  }
  const server = serverEventJsonSchemas() as Record<string, { properties: { type: { const: string } } }>;
  for (const [t, s] of Object.entries(server)) assert.equal(s.properties.type.const, t);
  const doc = await readFile(join(repoRoot, 'docs', 'protocol.md'), 'utf8');
  const a = doc.indexOf('<!-- schemas:begin -->') + '<!-- schemas:begin -->'.length;
  const b = doc.indexOf('<!-- schemas:end -->');
  assert.equal(doc.slice(a, b).trim(), protocolSchemasMarkdown().trim(), 'docs/protocol.md schemas are stale; regenerate them (see the doc)');
  assert.equal(validateServerEvent({ type: 'frame.processed', index: 0, ptsMs: 0, kept: 1, total: 49, latencyMs: 3 }).ok, true);
  assert.equal(validateServerEvent({ type: 'frame.processed', index: 0 }).ok, false);
  assert.equal(validateServerEvent({ type: 'made.up' }).ok, false);
});

test('the server\'s policies: real paths under symlinked roots only; .., symlink escapes and unknown files refused; schemes; webhooks', async () => {
  await withTempDir('winnow-policy-', async (dir) => {
    const root = join(dir, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'a.mp4'), 'x');
    await writeFile(join(dir, 'outside.mp4'), 'x');
    await symlink(join(dir, 'outside.mp4'), join(root, 'link-out.mp4'));
    await symlink(join(root, 'sub', 'a.mp4'), join(root, 'link-in.mp4'));
    await symlink(root, join(dir, 'root-link'));
    const p = new SourcePolicy({ allowPaths: [join(dir, 'root-link')], allowUrlSchemes: ['RTSP', 'https:'] });
    const real = async (path: string): Promise<string | undefined> => (await p.confine({ path })).path;
    assert.equal(await real(join(root, 'sub', 'a.mp4')), join(root, 'sub', 'a.mp4'));
    assert.equal(await real('sub/a.mp4'), join(root, 'sub', 'a.mp4'));
    assert.equal(await real('link-in.mp4'), join(root, 'sub', 'a.mp4'));
    for (const bad of ['link-out.mp4', join(dir, 'outside.mp4'), 'sub/../../outside.mp4', '../outside.mp4', 'sub/../a.mp4', 'nope.mp4', '/etc/passwd', 'a\0b']) {
      await assert.rejects(p.confine({ path: bad }), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE' }, bad);
    }
    await assert.rejects(new SourcePolicy().confine({ path: join(root, 'sub', 'a.mp4') }), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE' });
    assert.equal((await p.confine({ url: 'rtsp://cam.local/stream' })).url, 'rtsp://cam.local/stream');
    assert.equal((await p.confine({ url: 'https://x.example/v.mp4' })).url, 'https://x.example/v.mp4');
    for (const bad of ['http://x.example/v.mp4', 'file:///etc/passwd', 'rtmp://x/y', 'not a url', 'https:/../../etc/passwd']) {
      await assert.rejects(p.confine({ url: bad }), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE' }, bad);
    }
    const hooks = new WebhookPolicy(['http://127.0.0.1:9000']);
    hooks.check('http://127.0.0.1:9000/hook?x=1');
    assert.throws(() => hooks.check('http://127.0.0.1:9001/hook'), { code: 'WINNOW_ERR_FORBIDDEN_SOURCE' });
    assert.throws(() => hooks.check('not a url'), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  });
});

test('tokens: header or subprotocol, constant-time compare; loopback detection; limits validated', () => {
  assert.equal(bearerFrom({ authorization: 'Bearer abc.def' }), 'abc.def');
  assert.equal(bearerFrom({ authorization: 'Basic xyz' }), undefined);
  assert.equal(bearerFrom({ 'sec-websocket-protocol': 'winnow.v1, winnow.bearer.tok123' }), 'tok123');
  assert.equal(bearerFrom({}), undefined);
  assert.ok(tokensEqual('same-token', 'same-token'));
  assert.ok(!tokensEqual('same-token', 'same-tokem'));
  assert.ok(!tokensEqual('short', 'a-much-longer-token'));
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.com']) assert.ok(!isLoopbackHost(h), h);
  assert.deepEqual(resolveLimits(), { ...DEFAULT_LIMITS });
  assert.equal(resolveLimits({ maxSessions: 3 }).maxSessions, 3);
  assert.throws(() => resolveLimits({ maxSessions: 0 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  assert.throws(() => resolveLimits({ maxQueuedFrames: 1.5 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  assert.throws(() => resolveLimits({ shutdownGraceMs: 20_000 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});

test('WebhookSender: retries 5xx with backoff, gives up on 4xx, bounded queue drops the oldest', async () => {
  const statuses = new Map<string, number[]>([
    ['/flaky', [503, 500, 200]],
    ['/bad', [400]],
  ]);
  const hits: { path: string; at: number; body: unknown }[] = [];
  const srv = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      hits.push({ path, at: Date.now(), body: JSON.parse(body) });
      const list = statuses.get(path) ?? [200];
      res.writeHead(list.length > 1 ? list.shift()! : list[0]).end();
    });
  });
  const base = `http://127.0.0.1:${await listenLocal(srv)}`;
  const failures: string[] = [];
  const delivered: number[] = [];
  const w = new WebhookSender({ initialBackoffMs: 40, attempts: 4, onFailure: (e) => failures.push(e.code), onDelivered: (_u, n) => delivered.push(n) });
  try {
    w.send(`${base}/flaky`, { n: 1 });
    w.send(`${base}/bad`, { n: 2 });
    await waitUntil(() => delivered.length >= 1 && failures.length >= 1, 5_000, 10);
    assert.deepEqual(delivered, [3]);
    assert.deepEqual(failures, ['WINNOW_ERR_WEBHOOK']);
    const flaky = hits.filter((h) => h.path === '/flaky');
    assert.equal(flaky.length, 3);
    // Retries wait: at least 40 ms then 80 ms, less 20 % jitter.
    assert.ok(flaky[1].at - flaky[0].at >= 30, `first gap ${flaky[1].at - flaky[0].at}`);
    assert.ok(flaky[2].at - flaky[1].at >= 62, `second gap ${flaky[2].at - flaky[1].at}`);
    assert.equal(hits.filter((h) => h.path === '/bad').length, 1);
    assert.deepEqual(flaky[0].body, { n: 1 });
  } finally {
    w.close();
  }
  // Queue bound: with concurrency 1 and a queue of 2, a burst of 6 drops the 3 oldest waiting.
  const q = new WebhookSender({ maxQueued: 2, concurrency: 1 });
  for (let i = 0; i < 6; i++) q.send(`${base}/ok`, { i });
  await waitUntil(() => q.counts.delivered + q.counts.dropped >= 6, 5_000, 10);
  assert.equal(q.counts.dropped, 3);
  assert.equal(q.counts.delivered, 3);
  q.close();
  srv.close();
});
