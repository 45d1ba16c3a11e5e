// Container bytes through a Node Readable (what WebSocket clients push): fragmented MP4, MPEG-TS, WebM, MJPEG.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { openVideo } from '../../src/ingest/index.js';
import { waitGone } from '../shared/index.js';
import { collect, ffmpegBuilds, spawnedPids, Workdir } from './helpers.js';

const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '10'];

/** Pushes `bytes` in small pieces with pauses, like a network client. */
function trickle(bytes: Buffer, pieceBytes: number, everyMs: number): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= bytes.length) {
        this.push(null);
        return;
      }
      const piece = bytes.subarray(off, off + pieceBytes);
      off += piece.length;
      setTimeout(() => this.push(piece), everyMs);
    },
  });
}

describe('ingest: Readable byte streams', () => {
  const wd = new Workdir();
  const files: Record<string, string> = {};
  before(() => {
    const clip = { seconds: 3, rate: 10, size: '160x120' };
    files.fmp4 = wd.clip('frag.mp4', { ...clip, codecArgs: [...X264, '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4'] });
    files.ts = wd.clip('stream.ts', { ...clip, codecArgs: [...X264, '-f', 'mpegts'] });
    files.webm = wd.clip('stream.webm', { ...clip, codecArgs: ['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-f', 'webm'] });
    files.mjpeg = wd.clip('stream.mjpeg', { ...clip, codecArgs: ['-c:v', 'mjpeg', '-q:v', '5', '-pix_fmt', 'yuvj420p', '-f', 'mjpeg'] });
  });
  after(() => wd.cleanup());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: fragmented MP4 and MPEG-TS from a file stream, fps 1 → 3 frames at 0/1000/2000 ms`, async () => {
      for (const key of ['fmp4', 'ts']) {
        const r = await collect((onEvent) => openVideo(createReadStream(files[key], { highWaterMark: 4096 }), { fps: 1, ffmpegPath: b.ffmpegPath, onEvent }));
        assert.equal(r.error, undefined, `${key}: ${r.error?.message}`);
        assert.deepEqual(
          r.frames.map((f) => f.ptsMs),
          [0, 1000, 2000],
          key,
        );
        assert.deepEqual([r.frames[0].width, r.frames[0].height], [160, 120]);
        assert.ok(await waitGone(spawnedPids(r.events)));
      }
    });
  }

  it('WebM and MJPEG (with an input format hint) trickled in small network-like pieces', async () => {
    const webm = await collect(() => openVideo(trickle(readFileSync(files.webm), 2048, 1), { fps: 2, size: { width: 64, height: 64 } }));
    assert.equal(webm.error, undefined, webm.error?.message);
    assert.equal(webm.frames.length, 6);
    assert.deepEqual([webm.frames[0].width, webm.frames[0].height], [64, 64]);
    // Raw MJPEG has no container timestamps: ffmpeg assumes 25 fps unless told, so pass the real rate.
    const mjpeg = await collect(() =>
      openVideo(trickle(readFileSync(files.mjpeg), 4096, 1), { fps: 'source', inputFormat: 'mjpeg', inputOptions: ['-framerate', '10'] }),
    );
    assert.equal(mjpeg.error, undefined, mjpeg.error?.message);
    assert.equal(mjpeg.frames.length, 30);
    assert.equal(mjpeg.frames[10].ptsMs, 1000);
  });

  it('a client that disconnects mid-stream yields the decoded frames, then WINNOW_ERR_CORRUPT_INPUT; garbage is NOT_A_VIDEO', async () => {
    const bytes = readFileSync(files.ts);
    const cut = await collect(() => openVideo(Readable.from([bytes.subarray(0, Math.floor(bytes.length * 0.6) + 77)]), { fps: 'source' }));
    assert.ok(cut.frames.length > 5 && cut.frames.length < 30, `${cut.frames.length} frames`);
    assert.equal(cut.error?.code, 'WINNOW_ERR_CORRUPT_INPUT', cut.error?.message);
    const garbage = await collect(() => openVideo(Readable.from([Buffer.alloc(50_000, 7)])));
    assert.equal(garbage.error?.code, 'WINNOW_ERR_NOT_A_VIDEO', garbage.error?.message);
  });

  it('an input stream that errors becomes WINNOW_ERR_IO and ffmpeg is stopped', async () => {
    const bytes = readFileSync(files.ts);
    let sent = false;
    const failing = new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(bytes.subarray(0, 30_000));
        } else setTimeout(() => this.destroy(new Error('socket hang up')), 50);
      },
    });
    const r = await collect((onEvent) => openVideo(failing, { fps: 'source', onEvent }));
    assert.equal(r.error?.code, 'WINNOW_ERR_IO');
    assert.ok(await waitGone(spawnedPids(r.events)));
  });
});
