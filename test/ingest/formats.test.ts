// Codecs × containers, odd sizes, 10-bit and 4:4:4, decoded by every ffmpeg build (PATH and bundled 4.1).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openVideo } from '../../src/ingest/index.js';
import type { Frame } from '../../src/ingest/index.js';
import { collect, ffmpegBuilds, Workdir } from './helpers.js';

interface Case {
  name: string;
  file: string;
  size: string;
  codecArgs: string[];
}

const CASES: Case[] = [
  { name: 'H.264 in MP4', file: 'h264.mp4', size: '320x240', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] },
  { name: 'VP9 in WebM', file: 'vp9.webm', size: '320x240', codecArgs: ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k'] },
  { name: 'MJPEG in AVI', file: 'mjpeg.avi', size: '320x240', codecArgs: ['-c:v', 'mjpeg', '-q:v', '4', '-pix_fmt', 'yuvj420p'] },
  { name: 'MPEG-4 in MKV', file: 'mpeg4.mkv', size: '320x240', codecArgs: ['-c:v', 'mpeg4', '-q:v', '4'] },
  { name: 'H.264 in MPEG-TS', file: 'h264.ts', size: '320x240', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] },
  { name: 'H.264 854x480', file: 'h264-854x480.mp4', size: '854x480', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] },
  { name: 'MPEG-4 322x242 in AVI', file: 'mpeg4-322x242.avi', size: '322x242', codecArgs: ['-c:v', 'mpeg4', '-q:v', '4'] },
  { name: 'H.264 10-bit in MKV', file: 'h264-10bit.mkv', size: '320x240', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p10le'] },
  { name: 'H.264 4:4:4 in MP4', file: 'h264-444.mp4', size: '320x240', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv444p'] },
];

function meanAbsDiff(a: Frame, b: Frame): number {
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
  return sum / a.data.length;
}

describe('ingest: codecs, containers and pixel formats', () => {
  const wd = new Workdir();
  const builds = ffmpegBuilds();
  const files = new Map<string, string>();
  before(() => {
    for (const c of CASES) files.set(c.file, wd.clip(c.file, { seconds: 2, rate: 10, size: c.size, codecArgs: c.codecArgs }));
  });
  after(() => wd.cleanup());

  for (const c of CASES) {
    it(`${c.name}: 2 s at fps 1 → frames at 0 and 1000 ms, native size, same pixels on every build`, async () => {
      const [w, h] = c.size.split('x').map(Number);
      const firstFrames: Frame[] = [];
      for (const b of builds) {
        const r = await collect((onEvent) => openVideo(files.get(c.file)!, { fps: 1, ffmpegPath: b.ffmpegPath, onEvent }));
        assert.equal(r.error, undefined, `${b.name}: ${r.error?.message}`);
        assert.deepEqual(
          r.frames.map((f) => f.ptsMs),
          [0, 1000],
          `${b.name} ptsMs`,
        );
        for (const f of r.frames) {
          assert.equal(f.width, w, b.name);
          assert.equal(f.height, h, b.name);
          assert.equal(f.data.length, w * h * 3, b.name);
        }
        assert.deepEqual(r.frames.map((f) => f.index), [0, 1]);
        firstFrames.push(r.frames[0]);
      }
      // testsrc2 is colourful: a frame of zeros or garbage would show as a low spread or a big cross-build difference.
      const f0 = firstFrames[0];
      const distinct = new Set<number>();
      for (let i = 0; i < f0.data.length; i += 97) distinct.add(f0.data[i]);
      assert.ok(distinct.size > 20, 'decoded frame has the test pattern');
      for (const other of firstFrames.slice(1)) assert.ok(meanAbsDiff(f0, other) < 4, `builds agree (diff ${meanAbsDiff(f0, other).toFixed(2)})`);
    });
  }

  it('resizes every input to 112x112 with pad (odd sizes included)', async () => {
    for (const file of ['h264-854x480.mp4', 'mpeg4-322x242.avi', 'h264-10bit.mkv']) {
      for (const b of builds) {
        const r = await collect(() => openVideo(files.get(file)!, { fps: 2, size: { width: 112, height: 112 }, ffmpegPath: b.ffmpegPath }));
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.frames.length, 4, `${file} on ${b.name}`);
        for (const f of r.frames) assert.equal(f.data.length, 112 * 112 * 3);
        // 854x480 → 112x63 content: rows 0..23 are pad colour.
        if (file === 'h264-854x480.mp4') assert.deepEqual([...r.frames[0].data.subarray(0, 3)], [127, 127, 127]);
      }
    }
  });
});
