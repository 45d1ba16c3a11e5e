// Typed failures carrying ffmpeg's last stderr lines, and no ffmpeg process left behind after any of them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { openVideo, probe } from '../../src/ingest/index.js';
import { waitGone } from '../shared/index.js';
import { collect, ffmpegBuilds, spawnedPids, Workdir } from './helpers.js';

/** Fixed pseudo-random bytes: fresh random bytes now and then probe as some raw format that yields
 * a frame (one CI run in many), which made the "garbage is not a video" checks flaky. */
function garbage(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let off = 0, i = 0; off < bytes; off += 32, i++) out.set(createHash('sha256').update(`winnow-garbage-${i}`).digest().subarray(0, bytes - off), off);
  return out;
}

const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '10'];

describe('ingest: failures', () => {
  const wd = new Workdir();
  const files: Record<string, string> = {};
  before(() => {
    files.audio = wd.ffmpeg('audio.m4a', ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:a', 'aac']);
    files.empty = wd.write('empty.mp4', new Uint8Array(0));
    files.random = wd.write('random.mp4', garbage(64 * 1024));
    const mkv = wd.clip('full.mkv', { seconds: 4, rate: 10, size: '160x120', codecArgs: X264 });
    const mp4 = wd.clip('full.mp4', { seconds: 4, rate: 10, size: '160x120', codecArgs: [...X264, '-movflags', '+faststart'] });
    for (const [name, src] of [['trunc.mkv', mkv], ['trunc.mp4', mp4]] as const) {
      const bytes = readFileSync(src);
      files[name] = wd.write(name, bytes.subarray(0, Math.floor(bytes.length * 0.5)));
    }
  });
  after(() => wd.cleanup());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: audio-only, empty and random files are WINNOW_ERR_NOT_A_VIDEO with stderr, and ffmpeg is gone`, async () => {
      for (const key of ['audio', 'empty', 'random']) {
        const r = await collect((onEvent) => openVideo(files[key], { ffmpegPath: b.ffmpegPath, onEvent }));
        assert.equal(r.frames.length, 0);
        assert.equal(r.error?.code, 'WINNOW_ERR_NOT_A_VIDEO', `${key}: ${r.error?.code} ${r.error?.message}`);
        assert.equal(r.error?.retryable, false);
        const stderr = r.error?.details.stderr as string[];
        assert.ok(Array.isArray(stderr) && stderr.length > 0, 'carries ffmpeg stderr lines');
        assert.ok(await waitGone(spawnedPids(r.events)));
      }
    });

    it(`${b.name}: truncated files emit the frames that decoded, then WINNOW_ERR_CORRUPT_INPUT`, async () => {
      for (const key of ['trunc.mkv', 'trunc.mp4']) {
        const r = await collect((onEvent) => openVideo(files[key], { fps: 'source', ffmpegPath: b.ffmpegPath, onEvent }));
        assert.equal(r.error?.code, 'WINNOW_ERR_CORRUPT_INPUT', `${key}: ${r.error?.code} ${r.error?.message}`);
        assert.ok(r.frames.length >= 5 && r.frames.length < 40, `${key}: ${r.frames.length} frames before the error`);
        r.frames.forEach((f, i) => assert.equal(f.ptsMs, i * 100));
        assert.ok((r.error?.details.stderr as string[]).length > 0);
        assert.ok(await waitGone(spawnedPids(r.events)));
      }
    });
  }

  it('missing file → WINNOW_ERR_IO without spawning ffmpeg; bad ffmpeg path → WINNOW_ERR_FFMPEG_NOT_FOUND', async () => {
    const missing = await collect((onEvent) => openVideo(wd.path('nope.mp4'), { onEvent }));
    assert.equal(missing.error?.code, 'WINNOW_ERR_IO');
    assert.equal(spawnedPids(missing.events).length, 0);
    const dir = await collect(() => openVideo(wd.dir));
    assert.equal(dir.error?.code, 'WINNOW_ERR_IO');
    const noFfmpeg = await collect(() => openVideo(files.audio, { ffmpegPath: wd.path('no-such-ffmpeg') }));
    assert.equal(noFfmpeg.error?.code, 'WINNOW_ERR_FFMPEG_NOT_FOUND');
    await assert.rejects(probe(files.audio, { ffprobePath: wd.path('no-such-ffprobe') }), { code: 'WINNOW_ERR_FFMPEG_NOT_FOUND' });
  });

  it('probe: typed errors for audio-only, empty, random and missing files', async () => {
    await assert.rejects(probe(files.audio), { code: 'WINNOW_ERR_NOT_A_VIDEO' });
    await assert.rejects(probe(files.empty), { code: 'WINNOW_ERR_NOT_A_VIDEO' });
    await assert.rejects(probe(files.random), { code: 'WINNOW_ERR_NOT_A_VIDEO' });
    await assert.rejects(probe(wd.path('nope.mp4')), { code: 'WINNOW_ERR_IO' });
  });
});
