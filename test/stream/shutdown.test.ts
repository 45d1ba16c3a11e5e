// `winnow serve` as a process: SIGTERM while a client streams (ffmpeg child running) and waits for
// an answer. The answer gets its final response.done, every client an error SHUTTING_DOWN and a
// 1001 close, every ffmpeg child dies, and the process exits 0 within the deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { childPids, isAlive, modelSkip, waitUntil, withTempDir } from '../shared/index.js';
import { TestClient, renderVideo, startServe } from './helpers.js';

test('SIGTERM: answers in flight get a final event, clients a going-away close, ffmpeg children are killed, exit 0', { skip: modelSkip || (process.platform !== 'linux' ? 'needs /proc' : false), timeout: 60_000 }, async () => {
  await withTempDir('winnow-shutdown-', async (dir) => {
    const { mp4 } = await renderVideo(dir, 31, 4);
    const bytes = await readFile(mp4);
    const s = startServe(['--port', '0']);
    const { listening } = await s.ready;
    assert.match(listening, /^ws:\/\/127\.0\.0\.1:\d+\/$/);

    const a = await TestClient.connect(listening);
    const b = await TestClient.connect(listening);
    await Promise.all([a.wait('session.created'), b.wait('session.created')]);
    // a: a live stream that never ends (half a file) plus a long answer in flight.
    a.send({ type: 'input_video.start', format: 'mp4', live: true });
    a.sendRaw(bytes.subarray(0, bytes.length >> 1), true);
    await a.wait('source.opened');
    let kids: number[] = [];
    await waitUntil(() => (kids = childPids(s.child.pid!, 'ffmpeg')).length > 0, 10_000, 50);
    assert.equal(kids.length, 1, 'one ffmpeg child for the pushed stream');
    a.send({ type: 'conversation.item.create', text: 'how many circles appeared?' });
    a.send({ type: 'response.create', generation: { maxNewTokens: 128 } });
    await a.wait('response.created');

    const tKill = Date.now();
    s.child.kill('SIGTERM');
    const { code, signal } = await s.exited;
    const shutdownMs = Date.now() - tKill;
    assert.equal(signal, null, s.stderr());
    assert.equal(code, 0, s.stderr());
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
    assert.ok(!kids.some(isAlive), 'ffmpeg child killed');
    assert.match(s.stderr(), /SIGTERM, shutting down/);
  });
});
