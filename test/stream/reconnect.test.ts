// A live URL source that drops mid-stream: a local HTTP server streams a real-time MJPEG feed made
// by ffmpeg (a "camera"), cuts the connection after a few frames, then serves a fresh feed. The
// session must report source.reconnecting, reconnect (ingest respawns ffmpeg with backoff) and keep
// producing frames on one increasing timeline. Reconnection is not rtsp-only: any URL opened with
// `live: true` (http here; rtsp/rtmp/srt/udp are live by default) is reconnected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type WinnowEngine, type WinnowServer } from '../../src/stream/index.js';
import { GEN_FFMPEG, listenLocal, modelSkip, waitGone, waitUntil } from '../shared/index.js';
import { TestClient, sharedEngine } from './helpers.js';

const skip = modelSkip;
let engine: WinnowEngine;
let server: WinnowServer;
let camera: Server;
let cameraUrl: string;
/** One per HTTP request to the camera: its ffmpeg feed and a way to cut the connection. */
const feeds: { child: ChildProcess; cut: () => void; wasCut: boolean }[] = [];

/**
 * A real-time 10 fps MJPEG-over-HTTP feed (multipart/x-mixed-replace, what most IP cameras serve) of a
 * moving test pattern. MJPEG rather than MPEG-TS: ffmpeg's stream probing of a live TS over HTTP
 * takes ~8 s to the first frame, which would make every connection of this test that slow.
 */
function startFeed(): ChildProcess {
  return spawn(
    GEN_FFMPEG,
    ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-c:v', 'mjpeg', '-q:v', '5', '-f', 'mpjpeg', 'pipe:1'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
}

before(async () => {
  if (skip) return;
  engine = await sharedEngine();
  camera = createHttpServer((req, res) => {
    const child = startFeed();
    const feed = {
      child,
      wasCut: false,
      // The camera drops off the network mid-stream: the TCP connection dies without an orderly end.
      cut: () => {
        feed.wasCut = true;
        res.destroy();
        child.kill('SIGKILL');
      },
    };
    feeds.push(feed);
    res.writeHead(200, { 'content-type': 'multipart/x-mixed-replace;boundary=ffmpeg' });
    child.stdout!.pipe(res);
    res.on('close', () => void child.kill('SIGKILL'));
  });
  cameraUrl = `http://127.0.0.1:${await listenLocal(camera)}/video.mjpg`;
  server = await createServer({ port: 0, engine, allowUrlSchemes: ['http'] });
});

after(async () => {
  if (skip) return;
  await server?.close();
  for (const f of feeds) f.child.kill('SIGKILL');
  camera?.closeAllConnections();
  await new Promise((r) => camera?.close(r));
  await engine?.close();
});

test('live http source dropped mid-stream: source.reconnecting, then frames keep coming on one timeline', { skip, timeout: 90_000 }, async () => {
  const c = await TestClient.connect(server.url);
  const created = await c.wait<{ type: 'session.created'; session: { id: string } }>('session.created');
  c.send({ type: 'session.update', session: { fps: 4 } });
  await c.wait('session.updated');
  c.send({ type: 'source.open', url: cameraUrl, live: true });
  const opened = await c.wait<{ type: 'source.opened'; source: { kind: string; url: string; live: boolean } }>('source.opened');
  assert.deepEqual(opened.source, { kind: 'url', url: cameraUrl, live: true });

  // Frames flow from the first connection; then the camera drops it.
  assert.ok(await waitUntil(() => c.ofType('frame.processed').length >= 2, 45_000, 50), 'frames from the first connection');
  assert.equal(feeds.length, 1);
  const reconnectingP = c.wait<{ type: 'source.reconnecting'; source: { url: string }; attempt: number; delayMs: number; reason: string }>(
    'source.reconnecting',
    () => true,
    45_000,
  );
  feeds[0].cut();
  const reconnecting = await reconnectingP;
  assert.equal(reconnecting.source.url, cameraUrl);
  assert.equal(reconnecting.attempt, 1);
  assert.equal(reconnecting.delayMs, 500);
  assert.ok(reconnecting.reason.length > 0);
  const before = c.ofType<{ type: 'frame.processed'; ptsMs: number }>('frame.processed').length;

  // After the reconnect: a second request to the camera, and new frames from it.
  await waitUntil(() => c.ofType('frame.processed').length >= before + 3, 45_000, 50);
  const frames = c.ofType<{ type: 'frame.processed'; index: number; ptsMs: number }>('frame.processed');
  assert.ok(frames.length >= before + 3, `frames after the reconnect: ${frames.length - before}`);
  assert.equal(feeds.length, 2, 'one reconnect, one new request');
  assert.ok(feeds[0].wasCut && !feeds[1].wasCut);
  for (let i = 1; i < frames.length; i++) {
    assert.equal(frames[i].index, frames[i - 1].index + 1);
    assert.ok(frames[i].ptsMs > frames[i - 1].ptsMs, `ptsMs ${frames[i - 1].ptsMs} → ${frames[i].ptsMs}`);
  }
  // Still one source: no source.ended while reconnecting, and only one reconnect.
  assert.equal(c.ofType('source.ended').length, 0);
  assert.equal(c.ofType('source.reconnecting').length, 1);

  // The client can ask on the frames of both connections.
  const a = await c.ask('what is on screen?', { generation: { maxNewTokens: 4 } });
  assert.equal(a.done.response.status, 'completed');

  // source.close ends it: source.ended closed, the decoding ffmpeg is gone.
  const session = server.sessions.find((s) => s.id === created.session.id)!;
  const pids = session.stats.ffmpegPids;
  assert.equal(pids.length, 1);
  c.send({ type: 'source.close' });
  const ended = await c.wait<{ type: 'source.ended'; reason: string; frames: number; dropped: number }>('source.ended', () => true, 20_000);
  assert.equal(ended.reason, 'closed');
  const processed = c.ofType('frame.processed').length;
  assert.equal(ended.frames, processed);
  assert.ok(await waitGone(pids, 10_000), 'ffmpeg child killed');
  await c.close();
});
