// ffmpeg never outlives `winnow serve`: a real server process opens an RTSP source whose peer
// accepts and then never answers (the case that left an ffmpeg re-parented to init), is killed with
// SIGKILL (no handler runs), and its ffmpeg must be gone within a few seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childPids, isAlive, modelSkip, silentPeer, waitGone, waitUntil } from '../shared/index.js';
import { TestClient, startServe } from './helpers.js';

test('kill -9 of winnow serve takes its RTSP ffmpeg with it (peer silent)', { skip: modelSkip || (process.platform !== 'linux' ? 'needs /proc' : false), timeout: 90_000 }, async () => {
  const peer = await silentPeer();
  // A long network timeout: only the lifeline may end this ffmpeg within the test's window.
  const s = startServe(['--port', '0', '--allow-url-scheme', 'rtsp', '--limit', 'startGraceMs=60000']);
  try {
    const c = await TestClient.connect((await s.ready).listening);
    c.send({ type: 'source.open', url: `rtsp://127.0.0.1:${peer.port}/cam`, event_id: 'open' });
    await c.wait('source.opened');
    // The lifeline execs ffmpeg in place: the server's child has ffmpeg's name and pid.
    let pids: number[] = [];
    await waitUntil(() => (pids = childPids(s.child.pid!, 'ffmpeg')).length > 0, 10_000, 50);
    assert.ok(pids.length > 0, `no ffmpeg child of the server appeared; stderr: ${s.stderr()}`);
    assert.ok(peer.connections() > 0 || pids.every(isAlive), 'ffmpeg is connected or connecting');
    s.child.kill('SIGKILL');
    const killedAt = Date.now();
    const gone = await waitGone(pids, 5_000);
    const goneMs = Date.now() - killedAt;
    assert.ok(gone, `ffmpeg ${pids.join(',')} still running ${goneMs} ms after the server was killed`);
    assert.ok(goneMs < 3_000, `ffmpeg took ${goneMs} ms to go`);
  } finally {
    s.child.kill('SIGKILL');
    await peer.close();
  }
});
