// Pixel colours at known coordinates of a known pattern: still images, resize modes, pad colour, rotation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { buildScaleFilter, openVideo, probe } from '../../src/ingest/index.js';
import type { Frame } from '../../src/ingest/index.js';
import { BLUE, collect, ffmpegBuilds, GREEN, near, pixel, RED, WHITE, Workdir, writeQuadrantPng } from './helpers.js';
import type { Rgb } from './helpers.js';

const GREY: Rgb = [127, 127, 127];

function corners(f: Frame): Rgb[] {
  const m = 3; // away from the edges bicubic and chroma subsampling blend
  return [pixel(f, m, m), pixel(f, f.width - 1 - m, m), pixel(f, m, f.height - 1 - m), pixel(f, f.width - 1 - m, f.height - 1 - m)];
}

function assertCorners(f: Frame, expected: Rgb[], tolerance: number, label: string): void {
  corners(f).forEach((c, i) => assert.ok(near(c, expected[i], tolerance), `${label} corner ${i}: got ${c}, want ${expected[i]}`));
}

describe('ingest: pixels', () => {
  const wd = new Workdir();
  const builds = ffmpegBuilds();
  let png = '';
  let jpg = '';
  let lossless = '';
  let h264 = '';
  let quadrantRaw: Buffer;
  before(async () => {
    png = wd.path('quad.png');
    await writeQuadrantPng(png);
    quadrantRaw = await sharp(png).raw().toBuffer();
    jpg = wd.path('quad.jpg');
    await sharp(png).jpeg({ quality: 95 }).toFile(jpg);
    lossless = wd.ffmpeg('quad-ffv1.mkv', ['-loop', '1', '-i', png, '-t', '2', '-r', '10', '-c:v', 'ffv1', '-pix_fmt', 'bgr0']);
    h264 = wd.ffmpeg('quad.mp4', ['-loop', '1', '-i', png, '-t', '2', '-r', '10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p']);
  });
  after(() => wd.cleanup());

  it('the pad filter is exactly the default model contract', () => {
    assert.equal(
      buildScaleFilter({ width: 112, height: 112 }, 'pad'),
      'scale=112:112:force_original_aspect_ratio=decrease:flags=bicubic,pad=112:112:(ow-iw)/2:(oh-ih)/2:color=0x7f7f7f',
    );
    assert.equal(buildScaleFilter({ width: 64, height: 32 }, 'pad', '#FF0000'), 'scale=64:32:force_original_aspect_ratio=decrease:flags=bicubic,pad=64:32:(ow-iw)/2:(oh-ih)/2:color=0xff0000');
  });

  for (const b of builds) {
    it(`${b.name}: still PNG and JPEG give exactly one frame; PNG pixels are exact`, async () => {
      for (const fps of [1, 2, 'source'] as const) {
        const r = await collect(() => openVideo(png, { fps, ffmpegPath: b.ffmpegPath }));
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.frames.length, 1, `png at fps ${fps}`);
        assert.equal(r.frames[0].ptsMs, 0);
        assert.deepEqual(Buffer.from(r.frames[0].data), quadrantRaw);
      }
      const j = await collect(() => openVideo(jpg, { fps: 2, ffmpegPath: b.ffmpegPath }));
      assert.equal(j.error, undefined, j.error?.message);
      assert.equal(j.frames.length, 1);
      assertCorners(j.frames[0], [RED, BLUE, WHITE, GREEN], 12, 'jpeg');
    });

    it(`${b.name}: lossless video keeps exact colours; H.264 4:2:0 within tolerance`, async () => {
      const ll = await collect(() => openVideo(lossless, { fps: 1, ffmpegPath: b.ffmpegPath }));
      assert.equal(ll.error, undefined, ll.error?.message);
      assert.equal(ll.frames.length, 2);
      assert.deepEqual(Buffer.from(ll.frames[1].data), quadrantRaw);
      const lossy = await collect(() => openVideo(h264, { fps: 1, ffmpegPath: b.ffmpegPath }));
      assert.equal(lossy.error, undefined);
      assertCorners(lossy.frames[0], [RED, BLUE, WHITE, GREEN], 12, 'h264');
    });

    it(`${b.name}: pad / crop / stretch put the pattern where expected`, async () => {
      const one = async (opts: Parameters<typeof openVideo>[1]): Promise<Frame> => {
        const r = await collect(() => openVideo(lossless, { fps: 1, maxFrames: 1, ffmpegPath: b.ffmpegPath, ...opts }));
        assert.equal(r.error, undefined, r.error?.message);
        return r.frames[0];
      };
      // 64x48 → 112x84 content, 14-row bars of 0x7f7f7f above and below.
      const pad = await one({ size: { width: 112, height: 112 }, resize: 'pad' });
      assert.deepEqual([pad.width, pad.height], [112, 112]);
      for (const [x, y] of [[0, 0], [111, 13], [56, 98], [111, 111]]) assert.deepEqual(pixel(pad, x, y), [...GREY], `bar at ${x},${y}`);
      assert.deepEqual(pixel(pad, 28, 14 + 21), [...RED]);
      assert.deepEqual(pixel(pad, 84, 14 + 21), [...BLUE]);
      assert.deepEqual(pixel(pad, 28, 14 + 63), [...WHITE]);
      assert.deepEqual(pixel(pad, 84, 14 + 63), [...GREEN]);
      const black = await one({ size: { width: 112, height: 112 }, resize: 'pad', padColor: '0x000000' });
      assert.deepEqual(pixel(black, 56, 3), [0, 0, 0]);
      // 64x48 → cover 48x48 → centre crop: columns 8..55 of the source.
      const crop = await one({ size: { width: 48, height: 48 }, resize: 'crop' });
      assert.deepEqual([crop.width, crop.height], [48, 48]);
      assertCorners(crop, [RED, BLUE, WHITE, GREEN], 0, 'crop');
      assert.deepEqual(pixel(crop, 23, 10), [...RED]);
      assert.deepEqual(pixel(crop, 24, 10), [...BLUE]);
      const stretch = await one({ size: { width: 32, height: 32 }, resize: 'stretch' });
      assert.deepEqual([stretch.width, stretch.height], [32, 32]);
      assertCorners(stretch, [RED, BLUE, WHITE, GREEN], 0, 'stretch');
    });
  }

  it('honours rotation metadata (90/180/270) on every build, and probe reports the rotated size', async () => {
    const ccw: Record<number, Rgb[]> = {
      // Display matrix rotation is counter-clockwise: at 90° the source's top-right corner comes out top-left.
      90: [BLUE, GREEN, RED, WHITE],
      180: [GREEN, WHITE, BLUE, RED],
      270: [WHITE, RED, GREEN, BLUE],
    };
    const source = wd.ffmpeg('quad444.mkv', ['-loop', '1', '-i', png, '-t', '1', '-r', '10', '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', 'yuv444p']);
    for (const tag of [90, 180, 270]) {
      const file = wd.ffmpeg(`rot${tag}.mp4`, ['-i', source, '-c', 'copy', '-metadata:s:v:0', `rotate=${tag}`]);
      const info = await probe(file, { ffprobePath: builds[0].ffprobePath });
      const swapped = info.rotationDeg === 90 || info.rotationDeg === 270;
      assert.deepEqual([info.width, info.height], swapped ? [48, 64] : [64, 48]);
      assert.ok(info.rotationDeg !== 0);
      for (const b of builds) {
        const r = await collect(() => openVideo(file, { fps: 1, ffmpegPath: b.ffmpegPath }));
        assert.equal(r.error, undefined, r.error?.message);
        const f = r.frames[0];
        assert.deepEqual([f.width, f.height], [info.width, info.height], `${b.name} rotate=${tag}`);
        assertCorners(f, ccw[info.rotationDeg], 4, `${b.name} rotate=${tag} (rotation ${info.rotationDeg})`);
      }
    }
  });
});
