// No ffmpeg outlives its stream: unsubscribe, abort, a paused (blocked) ffmpeg, SIGTERM-deaf processes, stalls.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Subject, take } from 'rxjs';
import { openVideo } from '../../src/ingest/index.js';
import type { IngestEvent } from '../../src/ingest/index.js';
import { isAlive, waitGone, waitUntil } from '../shared/index.js';
import { collect, spawnedPids, Workdir } from './helpers.js';

describe('ingest: process lifecycle', () => {
  const wd = new Workdir();
  let clip = '';
  let deafFfmpeg = '';
  before(() => {
    clip = wd.clip('long.mp4', { seconds: 20, rate: 25, size: '320x240', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] });
    // A stand-in "ffmpeg" that ignores SIGTERM and never writes: only SIGKILL ends it.
    // A shell starts in a millisecond, so the trap is in place before the test signals it.
    deafFfmpeg = wd.write('deaf-ffmpeg.sh', "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n");
    chmodSync(deafFfmpeg, 0o755);
  });
  after(() => wd.cleanup());

  it('unsubscribing mid-stream kills ffmpeg', async () => {
    const events: IngestEvent[] = [];
    const r = await collect(() => openVideo(clip, { fps: 'source', onEvent: (e) => events.push(e) }).pipe(take(3)));
    assert.equal(r.frames.length, 3);
    const pids = spawnedPids(events);
    assert.equal(pids.length, 1);
    assert.ok(await waitGone(pids[0]), 'ffmpeg exited');
    assert.ok(events.some((e) => e.type === 'exit' && e.pid === pids[0]));
  });

  it('aborting the signal errors with WINNOW_ERR_ABORTED and kills ffmpeg', async () => {
    const ac = new AbortController();
    const events: IngestEvent[] = [];
    // Abort as soon as ffmpeg is running: a fixed sleep let a quiet machine finish the clip first.
    const onEvent = (e: IngestEvent): void => {
      events.push(e);
      if (e.type === 'spawn') queueMicrotask(() => ac.abort());
    };
    const r = await collect(() => openVideo(clip, { fps: 'source', signal: ac.signal, onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_ABORTED');
    assert.ok(await waitGone(spawnedPids(events)));
    const pre = await collect(() => openVideo(clip, { signal: AbortSignal.abort() }));
    assert.equal(pre.error?.code, 'WINNOW_ERR_ABORTED');
  });

  it('unsubscribing while ffmpeg is blocked on a full pipe (paused source) still kills it', async () => {
    const ack$ = new Subject<void>();
    const events: IngestEvent[] = [];
    let got = 0;
    const sub = openVideo(clip, { fps: 'source', ack$, maxInFlightFrames: 1, onEvent: (e) => events.push(e) }).subscribe({ next: () => got++ });
    try {
      // Never acknowledged: one frame out, queue full, stdout paused, ffmpeg blocked in write().
      await waitUntil(() => got > 0);
      await sleep(300);
      assert.equal(got, 1);
      const [pid] = spawnedPids(events);
      assert.ok(isAlive(pid), 'ffmpeg is alive and blocked');
      sub.unsubscribe();
      assert.ok(await waitGone(pid, 3000), 'blocked ffmpeg exited');
    } finally {
      sub.unsubscribe(); // a failed assertion must not leave a blocked ffmpeg keeping the test process alive
    }
  });

  it('a process that ignores SIGTERM is SIGKILLed after killGraceMs', async () => {
    const events: IngestEvent[] = [];
    const sub = openVideo(clip, { ffmpegPath: deafFfmpeg, killGraceMs: 400, onEvent: (e) => events.push(e) }).subscribe({ error: () => undefined });
    let pid = 0;
    let t0 = 0;
    try {
      await waitUntil(() => spawnedPids(events).length > 0);
      await sleep(100); // let the shell install its trap
      [pid] = spawnedPids(events);
      t0 = Date.now();
      sub.unsubscribe();
      await sleep(150);
      assert.ok(isAlive(pid), 'still alive inside the grace period');
    } finally {
      sub.unsubscribe();
    }
    assert.ok(await waitGone(pid, 3000));
    assert.ok(Date.now() - t0 >= 350);
    // 'exit' is reported once the pipes close too; the script's last `sleep` may hold them a few ms longer.
    await waitUntil(() => events.some((e) => e.type === 'exit'), 2000);
    const exit = events.find((e) => e.type === 'exit');
    assert.equal(exit?.type === 'exit' ? exit.signal : undefined, 'SIGKILL');
  });

  it('a source that produces nothing stalls into WINNOW_ERR_SOURCE_STALLED, never hangs', async () => {
    const t0 = Date.now();
    const r = await collect((onEvent) => openVideo(clip, { ffmpegPath: deafFfmpeg, stallTimeoutMs: 300, killGraceMs: 200, onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_SOURCE_STALLED');
    assert.equal(r.error?.retryable, true);
    assert.ok(Date.now() - t0 < 3000);
    assert.ok(r.events.some((e) => e.type === 'stall'));
    assert.ok(await waitGone(spawnedPids(r.events), 3000));
  });
});
