// Frame selection by timestamp: counts and ptsMs at fps 1 and 2, every frame, VFR input, start/end window, maxFrames.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openVideo } from '../../src/ingest/index.js';
import { waitGone } from '../shared/index.js';
import { collect, expectedSample, ffmpegBuilds, probeFrameTimesMs, spawnedPids, Workdir } from './helpers.js';

const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];

describe('ingest: sampling and timestamps', () => {
  const wd = new Workdir();
  const builds = ffmpegBuilds();
  let cfr = '';
  let vfr = '';
  before(() => {
    cfr = wd.clip('cfr.mp4', { seconds: 4, rate: 10, size: '160x120', codecArgs: X264 });
    // 10 frames 100 ms apart, then 12 frames 700 ms apart: a gap-y variable-frame-rate stream.
    vfr = wd.clip('vfr.mkv', {
      seconds: 0.3,
      rate: 100,
      size: '160x120',
      extraFilter: "setpts='if(lt(N,10),N*0.1,1+(N-10)*0.7)/TB'",
      codecArgs: ['-vsync', 'passthrough', '-frames:v', '22', ...X264],
    });
  });
  after(() => wd.cleanup());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: constant frame rate at fps 1, 2, 0.5 and every frame`, async () => {
      const at = async (fps: number | 'source'): Promise<number[]> => {
        const r = await collect(() => openVideo(cfr, { fps, ffmpegPath: b.ffmpegPath }));
        assert.equal(r.error, undefined, r.error?.message);
        r.frames.forEach((f, i) => assert.equal(f.index, i));
        return r.frames.map((f) => f.ptsMs);
      };
      assert.deepEqual(await at(1), [0, 1000, 2000, 3000]);
      assert.deepEqual(await at(2), [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]);
      assert.deepEqual(await at(0.5), [0, 2000]);
      assert.deepEqual(await at('source'), Array.from({ length: 40 }, (_, i) => i * 100));
    });

    it(`${b.name}: variable frame rate samples by timestamp without duplicating frames across gaps`, async () => {
      const times = probeFrameTimesMs(vfr);
      assert.equal(times.length, 22);
      for (const fps of [1, 2]) {
        const r = await collect(() => openVideo(vfr, { fps, ffmpegPath: b.ffmpegPath }));
        assert.equal(r.error, undefined, r.error?.message);
        const got = r.frames.map((f) => f.ptsMs);
        assert.deepEqual(got, expectedSample(times, fps), `fps ${fps}`);
        // Every emitted frame is a real source frame, never a duplicate invented to fill a gap.
        assert.equal(new Set(got).size, got.length);
        for (const t of got) assert.ok(times.includes(t), `${t} ms is a source frame time`);
      }
    });

    it(`${b.name}: startMs/endMs window keeps the source timeline; maxFrames stops early and ffmpeg exits`, async () => {
      const win = await collect(() => openVideo(cfr, { fps: 2, startMs: 1000, endMs: 3000, ffmpegPath: b.ffmpegPath }));
      assert.equal(win.error, undefined, win.error?.message);
      assert.deepEqual(
        win.frames.map((f) => f.ptsMs),
        [1000, 1500, 2000, 2500],
      );
      const capped = await collect((onEvent) => openVideo(cfr, { fps: 'source', maxFrames: 3, ffmpegPath: b.ffmpegPath, onEvent }));
      assert.equal(capped.error, undefined);
      assert.deepEqual(
        capped.frames.map((f) => f.index),
        [0, 1, 2],
      );
      assert.ok(await waitGone(spawnedPids(capped.events)), 'ffmpeg still running');
    });
  }

  it('rejects invalid options with WINNOW_ERR_INVALID_ARGUMENT', async () => {
    const bad = [
      { fps: 0 },
      { fps: -1 },
      { size: { width: 0, height: 10 } },
      { startMs: 2000, endMs: 1000 },
      { maxFrames: 0 },
      { padColor: 'grey', size: { width: 8, height: 8 } },
      { overflow: 'never' as unknown as 'keep-latest' },
    ];
    for (const o of bad) {
      const r = await collect(() => openVideo(cfr, { ...o, ffmpegPath: builds[0].ffmpegPath }));
      assert.equal(r.error?.code, 'WINNOW_ERR_INVALID_ARGUMENT', JSON.stringify(o));
    }
  });
});
