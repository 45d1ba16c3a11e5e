// `winnow serve` as a process: SIGTERM while a client streams (ffmpeg child running) and waits for
// an answer. The answer gets its final response.done, every client an error SHUTTING_DOWN and a
// 1001 close, every ffmpeg child dies, and the process exits 0 within the deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TestClient, alive, modelSkip, renderVideo, repoRoot, tempDir } from './helpers.js';

/** Direct children of `pid` whose command is ffmpeg (from /proc). */
function ffmpegChildren(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && Number(m[2]) === pid && m[1].startsWith('ffmpeg')) out.push(Number(d));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

test('SIGTERM: answers in flight get a final event, clients a going-away close, ffmpeg children are killed, exit 0', { skip: modelSkip, timeout: 60_000 }, async () => {
  const { dir, cleanup } = await tempDir('winnow-shutdown-');
  try {
    const { mp4 } = await renderVideo(dir, 31, 4);
    const bytes = await readFile(mp4);
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'index.ts'), 'serve', '--port', '0'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const first = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    const { listening } = JSON.parse(first) as { listening: string };
    assert.match(listening, /^ws:\/\/127\.0\.0\.1:\d+\/$/);

    const a = await TestClient.connect(listening);
    const b = await TestClient.connect(listening);
    await Promise.all([a.wait('session.created'), b.wait('session.created')]);
    // a: a live stream that never ends (half a file) plus a long answer in flight.
    a.send({ type: 'input_video.start', format: 'mp4', live: true });
    a.sendRaw(bytes.subarray(0, bytes.length >> 1), true);
    await a.wait('source.opened');
    let kids: number[] = [];
    const t0 = Date.now();
    while (kids.length === 0 && Date.now() - t0 < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      kids = ffmpegChildren(child.pid!);
    }
    assert.equal(kids.length, 1, 'one ffmpeg child for the pushed stream');
    a.send({ type: 'conversation.item.create', text: 'how many circles appeared?' });
    a.send({ type: 'response.create', generation: { maxNewTokens: 128 } });
    await a.wait('response.created');

    const tKill = Date.now();
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    const shutdownMs = Date.now() - tKill;
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
    assert.ok(shutdownMs < 10_000 + 2_000, `exited after ${shutdownMs} ms`);
    assert.equal(await a.closed, 1001);
    assert.equal(await b.closed, 1001);
    const done = a.ofType<{ type: 'response.done'; response: { status: string } }>('response.done');
    assert.equal(done.length, 1);
    assert.ok(['completed', 'cancelled'].includes(done[0].response.status));
    for (const c of [a, b]) {
      const errs = c.ofType<{ type: 'error'; error: { code: string } }>('error');
      assert.equal(errs[errs.length - 1].error.code, 'WINNOW_ERR_SHUTTING_DOWN');
    }
    // The response.done came before the shutdown notice.
    const types = a.events.map((e) => e.type);
    assert.ok(types.indexOf('response.done') < types.lastIndexOf('error'));
    assert.equal(a.ofType('source.ended').length, 1);
    assert.ok(!kids.some(alive), 'ffmpeg child killed');
    assert.match(stderr, /SIGTERM, shutting down/);
  } finally {
    await cleanup();
  }
});
