// probe() facts and the ffmpeg/ffprobe resolution order.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { binaryVersion, probe, resolveFfmpeg, resolveFfmpegPath } from '../../src/ingest/index.js';
import { ffmpegBuilds, Workdir, writeQuadrantPng } from './helpers.js';

describe('ingest: probe and ffmpeg resolution', () => {
  const wd = new Workdir();
  let clip = '';
  let withAudio = '';
  let png = '';
  before(async () => {
    clip = wd.clip('p.mp4', { seconds: 4, rate: 10, size: '322x242', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] });
    withAudio = wd.ffmpeg('av.mkv', [
      '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=2',
      '-f', 'lavfi', '-i', 'sine=duration=2',
      '-c:v', 'mpeg4', '-c:a', 'libopus',
    ]);
    png = wd.path('q.png');
    await writeQuadrantPng(png);
  });
  after(() => wd.cleanup());

  for (const b of ffmpegBuilds()) {
    it(`${b.name}: duration, fps, size, codec, live and still flags`, async () => {
      const p = await probe(clip, { ffprobePath: b.ffprobePath });
      assert.ok(Math.abs((p.durationMs ?? 0) - 4000) <= 50, `duration ${p.durationMs}`);
      assert.equal(p.fps, 10);
      assert.deepEqual([p.width, p.height, p.rotationDeg], [322, 242, 0]);
      assert.equal(p.codec, 'h264');
      assert.equal(p.pixelFormat, 'yuv420p');
      assert.equal(p.isLive, false);
      assert.equal(p.isStill, false);
      assert.equal(p.hasAudio, false);
      const av = await probe(withAudio, { ffprobePath: b.ffprobePath });
      assert.equal(av.hasAudio, true);
      assert.equal(av.codec, 'mpeg4');
      assert.equal(av.fps, 25);
      const still = await probe(png, { ffprobePath: b.ffprobePath });
      assert.equal(still.isStill, true);
      assert.equal(still.durationMs, null);
      assert.deepEqual([still.width, still.height, still.codec], [64, 48, 'png']);
    });
  }

  it('refuses a Readable (it would be consumed) and honours an aborted signal', async () => {
    await assert.rejects(probe(Readable.from([Buffer.alloc(10)])), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
    await assert.rejects(probe(clip, { signal: AbortSignal.abort() }), { code: 'WINNOW_ERR_ABORTED' });
  });

  it('resolves explicit option → WINNOW_FFMPEG/WINNOW_FFPROBE (given by the entry point) → PATH → bundled', async () => {
    const mk = (dir: string): { ffmpeg: string; ffprobe: string } => {
      mkdirSync(dir, { recursive: true });
      const out = { ffmpeg: join(dir, 'ffmpeg'), ffprobe: join(dir, 'ffprobe') };
      for (const p of Object.values(out)) {
        wd.write(p.slice(wd.dir.length + 1), '#!/bin/sh\necho "fake version"\n');
        chmodSync(p, 0o755);
      }
      return out;
    };
    const opt = mk(wd.path('opt'));
    const env = mk(wd.path('env'));
    const onPath = mk(wd.path('bin'));
    const envVars = { WINNOW_FFMPEG: env.ffmpeg, WINNOW_FFPROBE: env.ffprobe };
    const all = resolveFfmpeg({ ffmpegPath: opt.ffmpeg, ffprobePath: opt.ffprobe, env: envVars, searchPath: wd.path('bin') });
    assert.deepEqual([all.ffmpeg, all.ffprobe], [{ path: opt.ffmpeg, source: 'option' }, { path: opt.ffprobe, source: 'option' }]);
    const fromEnv = resolveFfmpeg({ env: envVars, searchPath: wd.path('bin') });
    assert.deepEqual([fromEnv.ffmpeg.source, fromEnv.ffprobe.path], ['env', env.ffprobe]);
    const fromPath = resolveFfmpeg({ searchPath: `/nonexistent:${wd.path('bin')}` });
    assert.deepEqual([fromPath.ffmpeg, fromPath.ffprobe.source], [{ path: onPath.ffmpeg, source: 'path' }, 'path']);
    const bundled = resolveFfmpeg({ searchPath: '' });
    assert.equal(bundled.ffmpeg.source, 'bundled');
    assert.match(bundled.ffmpeg.path, /@ffmpeg-installer/);
    assert.match(bundled.ffprobe.path, /@ffprobe-installer/);
    assert.match(await binaryVersion(bundled.ffmpeg.path), /^ffmpeg version/);
    assert.throws(() => resolveFfmpegPath({ ffmpegPath: wd.path('missing') }), { code: 'WINNOW_ERR_FFMPEG_NOT_FOUND' });
    assert.throws(() => resolveFfmpegPath({ env: { WINNOW_FFMPEG: wd.path('missing') } }), { code: 'WINNOW_ERR_FFMPEG_NOT_FOUND' });
    // A directory named like the binary is not a binary.
    assert.throws(() => resolveFfmpegPath({ ffmpegPath: wd.dir }), { code: 'WINNOW_ERR_FFMPEG_NOT_FOUND' });
  });
});
