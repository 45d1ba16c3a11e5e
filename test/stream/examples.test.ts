// The examples run as users run them (node --import tsx examples/…) against a real server. They
// start together (stream-file is real time and mostly waits) and each test checks one of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { createServer, type WinnowEngine, type WinnowServer } from '../../src/stream/index.js';
import { fileTempDir, listenLocal, modelSkip, repoRoot, runTsx, type RunResult } from '../shared/index.js';
import { renderVideo, sharedEngine } from './helpers.js';

const skip = modelSkip;
const tmp = fileTempDir('winnow-examples-');
let engine: WinnowEngine;
let server: WinnowServer;
const runs: Record<string, Promise<RunResult>> = {};

const runExample = (file: string, args: string[]): Promise<RunResult> => runTsx(join(repoRoot, 'examples', file), args, { timeoutMs: 90_000 });

/** A port nothing listens on now, for a receiver the example itself starts. */
async function freePort(): Promise<number> {
  const s = createNetServer();
  const port = await listenLocal(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  if (skip) return;
  const [{ mp4 }, e, hookPort] = await Promise.all([renderVideo(tmp.dir, 23, 5), sharedEngine(), freePort()]);
  engine = e;
  server = await createServer({ port: 0, engine, allowWebhookOrigins: [`http://127.0.0.1:${hookPort}`] });
  runs.streamFile = runExample('stream-file.ts', [mp4, '--url', server.url, '--ask-at', '2', 'how many circles appeared?', '--ask-at', '3.5', 'did a red square appear?']);
  runs.alert = runExample('alert.ts', [mp4, '--url', server.url, '--hook-port', String(hookPort), '--every', '2', '--question', 'is there a red triangle?']);
  runs.embed = runExample('embed.ts', [mp4, 'how many circles appeared?']);
});

after(async () => {
  if (skip) return;
  await Promise.allSettled(Object.values(runs));
  await server?.close();
  await engine?.close();
});

test('examples/stream-file.ts: pushes in real time, asks two questions while it plays, prints streamed answers', { skip }, async () => {
  const r = await runs.streamFile;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.match(/^Q: /gm)?.length, 2, r.stdout);
  assert.match(r.stdout, /^Q: how many circles appeared\?\nA: .*\n {3}\[completed; \d+\/\d+ visual tokens/m);
  assert.match(r.stdout, /^Q: did a red square appear\?\nA: .*\n {3}\[completed; \d+\/\d+ visual tokens/m);
  // The first question was asked while the video was still playing.
  const at = /asking at ([\d.]+) s, (\d+) frames in/.exec(r.stderr);
  assert.ok(at && Number(at[1]) < 5, r.stderr);
  assert.match(r.stderr, /[45] frames processed/);
});

test('examples/alert.ts: the standing question POSTs every result to the webhook receiver', { skip }, async () => {
  const r = await runs.alert;
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  // 5 s of video, every 2 s of video time: results at t=0, 2, 4 (concurrent deliveries may arrive in any order).
  assert.equal(lines.length, 3, r.stdout);
  for (const l of lines) assert.match(l, /^(ALERT|webhook) t=\d+s( \(late\))?: "is there a red triangle\?" -> /);
  assert.deepEqual(lines.map((l) => Number(/ t=(\d+)s/.exec(l)![1])).sort((a, b) => a - b), [0, 2, 4], r.stdout);
  assert.match(r.stderr, /3 watch results, 3 webhook posts/);
});

test('examples/embed.ts: the library API in-process (createSession, openSource, ask)', { skip }, async () => {
  const r = await runs.embed;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Q: how many circles appeared\?\nA: .*\n {3}\[completed; 120\/245 visual tokens/m);
  assert.equal(r.stderr.match(/^frame \d+ t=\d+s kept 24\/49 tokens$/gm)?.length, 5, r.stderr);
});
