// ffmpeg never outlives `winnow serve`: a real server process opens an RTSP source whose peer
// accepts and then never answers (the case that left an ffmpeg re-parented to init), is killed with
// SIGKILL (no handler runs), and its ffmpeg must be gone within a few seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { isAlive } from '../ingest/helpers.js';
import { TestClient, modelSkip, repoRoot } from './helpers.js';

const CLI = join(repoRoot, 'src', 'cli', 'index.ts');

/** Children of `ppid` whose command name is ffmpeg (the lifeline execs ffmpeg in place, same pid). */
function ffmpegChildren(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && comm === 'ffmpeg') out.push(Number(name));
    } catch {
      // exited while listing
    }
  }
  return out;
}

test('kill -9 of winnow serve takes its RTSP ffmpeg with it (peer silent)', { skip: modelSkip || (process.platform !== 'linux' ? 'needs /proc' : false), timeout: 90_000 }, async () => {
  const sockets = new Set<Socket>();
  const peer = createTcpServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  const peerPort = (peer.address() as AddressInfo).port;
  // A long network timeout: only the lifeline may end this ffmpeg within the test's window.
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--allow-url-scheme', 'rtsp', '--limit', 'startGraceMs=60000'], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const info = await new Promise<{ listening: string }>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l) as { listening: string }));
      child.once('exit', () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    const c = await TestClient.connect(info.listening);
    c.send({ type: 'source.open', url: `rtsp://127.0.0.1:${peerPort}/cam`, event_id: 'open' });
    await c.wait('source.opened');
    let pids: number[] = [];
    const t0 = Date.now();
    while (pids.length === 0 && Date.now() - t0 < 10_000) {
      pids = ffmpegChildren(child.pid!);
      if (pids.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(pids.length > 0, `no ffmpeg child of the server appeared; stderr: ${stderr}`);
    assert.ok(sockets.size > 0 || pids.every(isAlive), 'ffmpeg is connected or connecting');
    child.kill('SIGKILL');
    const killedAt = Date.now();
    while (pids.some(isAlive) && Date.now() - killedAt < 5_000) await new Promise((r) => setTimeout(r, 50));
    const goneMs = Date.now() - killedAt;
    assert.ok(!pids.some(isAlive), `ffmpeg ${pids.join(',')} still running ${goneMs} ms after the server was killed`);
    assert.ok(goneMs < 3_000, `ffmpeg took ${goneMs} ms to go`);
  } finally {
    child.kill('SIGKILL');
    for (const s of sockets) s.destroy();
    peer.close();
  }
});
