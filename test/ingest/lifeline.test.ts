// ffmpeg never outlives its owner: a peer that accepts and never answers ends ffmpeg after networkTimeoutMs
// (rtsp's option is spelled differently in 4.x and 5.x), and when the owning process is SIGKILLed (no exit
// handler runs) the kernel kills ffmpeg at once through setpriv's parent-death signal.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openVideo, rtspTimeoutOption } from '../../src/ingest/index.js';
import type { IngestEvent } from '../../src/ingest/index.js';
import { lifelineCommand } from '../../src/ingest/process.js';
import { isAlive, silentPeer, spawnTsx, waitGone, waitUntil, type SilentPeer } from '../shared/index.js';
import { collect, ffmpegBuilds, spawnedPids } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/hold-source.ts', import.meta.url));

describe('ingest: ffmpeg never outlives the server', () => {
  let peer: SilentPeer;
  before(async () => {
    peer = await silentPeer();
  });
  after(() => peer.close());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: the rtsp socket timeout option is detected (-stimeout in 4.x, -timeout from 5.0)`, async () => {
      assert.equal(await rtspTimeoutOption(b.ffmpegPath), b.name === 'bundled-4.1' ? 'stimeout' : 'timeout');
    });

    for (const scheme of ['rtsp', 'http'] as const) {
      it(`${b.name}: a silent ${scheme} peer fails the stream within networkTimeoutMs`, async () => {
        const networkTimeoutMs = 1000;
        const t0 = performance.now();
        const r = await collect((onEvent) =>
          openVideo(`${scheme}://127.0.0.1:${peer.port}/live`, { ffmpegPath: b.ffmpegPath, networkTimeoutMs, reconnect: { attempts: 0 }, onEvent }),
        );
        const elapsedMs = performance.now() - t0;
        assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_UNREACHABLE', r.error?.message);
        assert.equal(r.error?.retryable, true);
        assert.ok(elapsedMs >= networkTimeoutMs * 0.9 && elapsedMs < networkTimeoutMs + 2500, `ended after ${Math.round(elapsedMs)} ms`);
        const args = (r.events.find((e) => e.type === 'spawn') as Extract<IngestEvent, { type: 'spawn' }>).args;
        const expected = scheme === 'http' ? '-rw_timeout' : b.name === 'bundled-4.1' ? '-stimeout' : '-timeout';
        assert.equal(args[args.indexOf(expected) + 1], '1000000');
        if (b.name === 'bundled-4.1' && scheme === 'rtsp') assert.ok(!args.includes('-timeout'), '-timeout means "listen" in 4.x');
        assert.ok(await waitGone(spawnedPids(r.events), 3000));
      });
    }

    it(`${b.name}: SIGKILL of the owning process kills its ffmpeg within 3 s`, { skip: lifelineCommand() === undefined && 'no setpriv --pdeathsig here' }, async () => {
      const before = peer.connections();
      const child = spawnTsx(FIXTURE, [`rtsp://127.0.0.1:${peer.port}/live`, b.ffmpegPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const pid = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout!.setEncoding('utf8').on('data', (s: string) => {
          out += s;
          const line = out.split('\n')[0];
          if (out.includes('\n')) resolve(Number(line));
        });
        child.on('exit', (code) => reject(new Error(`fixture exited with ${code}: ${stderr}`)));
      });
      try {
        assert.ok(Number.isInteger(pid) && pid > 0);
        // The reported pid is ffmpeg itself (setpriv exec'd it), connected to the silent peer.
        assert.ok(await waitUntil(() => peer.connections() > before, 2000), 'ffmpeg connected');
        assert.ok(isAlive(pid));
        assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], b.ffmpegPath);
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
        assert.ok(await waitGone(pid, 3000), 'ffmpeg is gone (or a zombie: it died) after its owner was SIGKILLed');
      } finally {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    });
  }
});
