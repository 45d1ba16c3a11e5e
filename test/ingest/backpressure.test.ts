// Bounded memory: a slow consumer pauses ffmpeg (files) or drops frames (live policies), never buffers the stream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { concatMap, lastValueFrom, Subject, take, tap, type Observable } from 'rxjs';
import { openVideo } from '../../src/ingest/index.js';
import type { Frame, IngestEvent } from '../../src/ingest/index.js';
import { waitGone } from '../shared/index.js';
import { spawnedPids, Workdir } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const FRAME_BYTES = 640 * 480 * 3;

function external(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

/** As external(), after V8 has had a turn to release the backing stores the collection freed (it
 * does so off the main thread, so a reading right after gc() can still count dropped frames). */
async function externalSettled(): Promise<number> {
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  return process.memoryUsage().arrayBuffers;
}

/**
 * An async consumer that spends `delayMs` on each of the first `count` frames, then runs `onFrame`
 * and acknowledges on `ack$` (when given). Resolves with the last frame taken.
 */
function consumeSlowly(
  frames$: Observable<Frame>,
  opts: { delayMs: number; count: number; ack$?: Subject<void>; onFrame?: (f: Frame) => void | Promise<void> },
): Promise<Frame> {
  return lastValueFrom(
    frames$.pipe(
      concatMap(async (f) => {
        await sleep(opts.delayMs);
        await opts.onFrame?.(f);
        opts.ack$?.next();
        return f;
      }),
      take(opts.count),
    ),
  );
}

describe('ingest: backpressure and overflow policies', () => {
  const wd = new Workdir();
  let clip = '';
  before(() => {
    // 200 frames of 640x480: 184 MB of RGB if anything buffered the whole stream.
    clip = wd.clip('bp.mp4', { seconds: 8, rate: 25, size: '640x480', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] });
  });
  after(() => wd.cleanup());

  it('pause-source: a slow async consumer with ack$ keeps memory within a few frames, loses nothing', async (t) => {
    const base = external();
    let peak = 0;
    const ack$ = new Subject<void>();
    const events: IngestEvent[] = [];
    const seen: number[] = [];
    await consumeSlowly(openVideo(clip, { fps: 'source', ack$, onEvent: (e) => events.push(e) }), {
      delayMs: 30,
      count: 30,
      ack$,
      onFrame: (f) => {
        seen.push(f.index);
        peak = Math.max(peak, external() - base);
      },
    });
    assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i), 'in order, nothing dropped');
    t.diagnostic(`peak growth ${(peak / FRAME_BYTES).toFixed(1)} frames`);
    // Queue (2) + in flight (1) + the frame being cut + pipe/stream buffers: well under 10 frames.
    assert.ok(peak < 10 * FRAME_BYTES, `peak ${(peak / 1e6).toFixed(1)} MB`);
    assert.ok(await waitGone(spawnedPids(events)));
  });

  it('pause-source: a slow synchronous consumer needs no ack$ and stays bounded too', async (t) => {
    const base = external();
    let peak = 0;
    let n = 0;
    await lastValueFrom(
      openVideo(clip, { fps: 'source' }).pipe(
        tap(() => {
          const until = Date.now() + 15;
          while (Date.now() < until); // a CPU-bound consumer blocks the event loop, which is natural backpressure
          if (++n % 5 === 0) peak = Math.max(peak, external() - base);
        }),
        take(40),
      ),
    );
    t.diagnostic(`peak growth ${(peak / FRAME_BYTES).toFixed(1)} frames`);
    // A synchronous consumer cannot yield for externalSettled(), so its readings still count backing
    // stores of dropped frames that V8 frees off the main thread (CI saw 12 frames once). A pipeline that
    // buffered would hold far more: the 40 frames taken alone are 37 MB, the clip 184 MB.
    assert.ok(peak < 20 * FRAME_BYTES, `peak ${(peak / 1e6).toFixed(1)} MB`);
  });

  it('control: the same async consumer WITHOUT ack$ lets concatMap buffer the stream (why ack$ exists)', async (t) => {
    const base = external();
    let peak = 0;
    await consumeSlowly(openVideo(clip, { fps: 'source' }), {
      delayMs: 30,
      count: 30,
      onFrame: () => void (peak = Math.max(peak, external() - base)),
    });
    t.diagnostic(`peak growth ${(peak / FRAME_BYTES).toFixed(1)} frames`);
    assert.ok(peak > 20 * FRAME_BYTES, `peak ${(peak / 1e6).toFixed(1)} MB`);
  });

  for (const overflow of ['keep-latest', 'drop-oldest'] as const) {
    it(`${overflow}: ffmpeg keeps running, the slow consumer gets newer frames, drops are counted`, async (t) => {
      const base = external();
      let peak = 0;
      const ack$ = new Subject<void>();
      const events: IngestEvent[] = [];
      const pts: number[] = [];
      await consumeSlowly(openVideo(clip, { fps: 'source', overflow, maxQueuedFrames: 3, ack$, onEvent: (e) => events.push(e) }), {
        delayMs: 40,
        count: 15,
        ack$,
        onFrame: async (f) => {
          pts.push(f.ptsMs);
          peak = Math.max(peak, (await externalSettled()) - base);
        },
      });
      const drops = events.filter((e): e is Extract<IngestEvent, { type: 'drop' }> => e.type === 'drop');
      assert.ok(drops.length > 0, 'drop events');
      const last = drops[drops.length - 1].droppedFrames;
      assert.ok(last > 15, `dropped ${last}`);
      for (let i = 1; i < pts.length; i++) assert.ok(pts[i] > pts[i - 1]);
      assert.ok(pts[pts.length - 1] > 15 * 40, 'frames skipped ahead');
      t.diagnostic(`peak growth ${(peak / FRAME_BYTES).toFixed(1)} frames`);
      // Measured 4-8 frames (queue of 3, the frame being assembled, pipe chunks); 184 MB (200 frames)
      // if anything buffered the stream.
      assert.ok(peak < 15 * FRAME_BYTES, `peak ${(peak / 1e6).toFixed(1)} MB`);
      assert.ok(await waitGone(spawnedPids(events)));
    });
  }

  it('a live device source (lavfi) defaults to keep-latest and ends cleanly on unsubscribe', async () => {
    const events: IngestEvent[] = [];
    const ack$ = new Subject<void>();
    const last = await consumeSlowly(openVideo({ device: 'testsrc2=size=320x240:rate=200', format: 'lavfi' }, { fps: 'source', ack$, onEvent: (e) => events.push(e) }), {
      delayMs: 40,
      count: 8,
      ack$,
    });
    assert.equal(last.index, 7);
    assert.ok(events.some((e) => e.type === 'drop'), 'live source dropped frames instead of pausing');
    assert.ok(await waitGone(spawnedPids(events)));
  });
});
