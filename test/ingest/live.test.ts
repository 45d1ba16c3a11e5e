// Live sources over a local HTTP server: reconnect with backoff (reported as events), stall detection, give-up.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openVideo } from '../../src/ingest/index.js';
import type { IngestEvent } from '../../src/ingest/index.js';
import { waitGone } from '../shared/index.js';
import { collect, spawnedPids, Workdir } from './helpers.js';

type Behaviour = 'full' | 'fail' | 'hold' | 'silent';

describe('ingest: live sources', () => {
  const wd = new Workdir();
  let ts: Buffer;
  let longTs: Buffer;
  let server: Server;
  let base = '';
  const held: ServerResponse[] = [];
  /** Per test path: what each successive request gets. */
  const plans = new Map<string, Behaviour[]>();
  before(async () => {
    ts = readFileSync(
      wd.clip('live.ts', { seconds: 3, rate: 10, size: '160x120', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '5', '-f', 'mpegts'] }),
    );
    // Long enough that ffmpeg's stream probing (5 s analyzeduration) finishes before the source goes silent.
    longTs = readFileSync(
      wd.clip('long.ts', { seconds: 8, rate: 10, size: '160x120', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '5', '-f', 'mpegts'] }),
    );
    server = createServer((req, res) => {
      const plan = plans.get(req.url ?? '') ?? [];
      const what = plan.shift() ?? 'fail';
      if (what === 'fail') {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'video/mp2t' });
      if (what === 'full') res.end(ts);
      else if (what === 'silent') {
        res.flushHeaders();
        held.push(res); // accepts the connection, never sends a byte
      } else {
        res.write(longTs.subarray(0, Math.floor(longTs.length * 0.9)));
        held.push(res); // stays open, silent: a stalled camera
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    wd.cleanup();
  });

  it('reconnects with exponential backoff, keeps index and ptsMs continuous, then gives up with a typed error', async () => {
    plans.set('/a.ts', ['full', 'fail', 'full']);
    const r = await collect((onEvent) =>
      openVideo(`${base}/a.ts`, { live: true, fps: 'source', reconnect: { attempts: 2, initialDelayMs: 50, maxDelayMs: 80 }, onEvent }),
    );
    assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_UNREACHABLE', r.error?.message);
    assert.equal(r.error?.retryable, true);
    assert.equal(r.frames.length, 60, 'two good sessions of 30 frames');
    r.frames.forEach((f, i) => assert.equal(f.index, i));
    for (let i = 1; i < r.frames.length; i++) assert.ok(r.frames[i].ptsMs > r.frames[i - 1].ptsMs);
    const reconnects = r.events.filter((e): e is Extract<IngestEvent, { type: 'reconnect' }> => e.type === 'reconnect');
    // end of 1st session → retry 1; 503 → retry 2; 3rd session good (counter resets); end → retry 1; 503 → retry 2; 503 → give up.
    assert.deepEqual(
      reconnects.map((e) => [e.attempt, e.delayMs]),
      [[1, 50], [2, 80], [1, 50], [2, 80]],
    );
    assert.equal(spawnedPids(r.events).length, 5);
    assert.ok(await waitGone(spawnedPids(r.events)));
  });

  it('a live source that goes silent is detected as stalled, reconnected, then errors WINNOW_ERR_SOURCE_STALLED', async () => {
    // 1st connection: frames, then silence → stall → reconnect; 2nd: silent from the start → stall → give up.
    // (A stalled session that produced frames resets the attempt counter, as any decoded frame does.)
    plans.set('/b.ts', ['hold', 'silent']);
    const t0 = Date.now();
    const r = await collect((onEvent) =>
      openVideo(`${base}/b.ts`, { live: true, fps: 'source', stallTimeoutMs: 2500, reconnect: { attempts: 1, initialDelayMs: 20 }, killGraceMs: 300, onEvent }),
    );
    assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_STALLED', r.error?.message);
    assert.ok(Date.now() - t0 < 15_000, 'never hangs');
    assert.ok(r.frames.length > 0, 'frames before the stall were delivered');
    assert.equal(r.events.filter((e) => e.type === 'stall').length, 2);
    assert.equal(r.events.filter((e) => e.type === 'reconnect').length, 1);
    assert.ok(await waitGone(spawnedPids(r.events)));
  });

  it('an unreachable URL is WINNOW_ERR_SOURCE_UNREACHABLE after the configured attempts', async () => {
    const r = await collect((onEvent) => openVideo('rtsp://127.0.0.1:1/none', { reconnect: { attempts: 1, initialDelayMs: 10 }, onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_UNREACHABLE', r.error?.message);
    assert.equal(r.events.filter((e) => e.type === 'reconnect').length, 1);
    const args = (r.events.find((e) => e.type === 'spawn') as Extract<IngestEvent, { type: 'spawn' }>).args;
    assert.deepEqual(args.slice(args.indexOf('-rtsp_transport'), args.indexOf('-rtsp_transport') + 2), ['-rtsp_transport', 'tcp']);
  });
});
