// `winnow frames` and `winnow doctor` end to end, as a user runs them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli } from '../shared/index.js';
import { Workdir } from './helpers.js';

describe('cli: winnow frames / winnow doctor', () => {
  const wd = new Workdir();
  let clip = '';
  let ts = '';
  let audio = '';
  before(() => {
    clip = wd.clip('c.mp4', { seconds: 2, rate: 10, size: '320x180', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] });
    ts = wd.clip('c.ts', { seconds: 2, rate: 10, size: '320x180', codecArgs: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'mpegts'] });
    audio = wd.ffmpeg('a.m4a', ['-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'aac']);
  });
  after(() => wd.cleanup());

  it('--json prints one object per frame; --out writes numbered PNGs at the requested size', async () => {
    const out = wd.path('pngs');
    const r = runCli(['frames', clip, '--fps', '2', '--size', '640x360', '--json', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.deepEqual(lines, [0, 500, 1000, 1500].map((ptsMs, index) => ({ index, ptsMs, width: 640, height: 360 })));
    assert.deepEqual(readdirSync(out).sort(), ['000000.png', '000001.png', '000002.png', '000003.png']);
    const meta = await sharp(join(out, '000003.png')).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [640, 360, 3]);
  });

  it('reads container bytes from stdin with "-" and defaults to the model input size (112x112)', () => {
    const r = runCli(['frames', '-', '--json', '--input-format', 'mpegts'], { stdin: readFileSync(ts) });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.deepEqual(lines, [{ index: 0, ptsMs: 0, width: 112, height: 112 }, { index: 1, ptsMs: 1000, width: 112, height: 112 }]);
  });

  it('fails with one JSON error line and a non-zero exit; WINNOW_FFMPEG is honoured', () => {
    const bad = runCli(['frames', audio, '--json']);
    assert.equal(bad.code, 1);
    const lines = bad.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const err = (JSON.parse(lines[0]) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'WINNOW_ERR_NOT_A_VIDEO');
    assert.ok(err.message.length > 0);
    const noFfmpeg = runCli(['frames', clip, '--json'], { env: { WINNOW_FFMPEG: wd.path('no-ffmpeg') } });
    assert.equal(noFfmpeg.code, 1);
    assert.equal((JSON.parse(noFfmpeg.stdout.trim()) as { error: { code: string } }).error.code, 'WINNOW_ERR_FFMPEG_NOT_FOUND');
  });

  it('doctor reports ffmpeg/ffprobe with versions, onnxruntime providers and the model folder', () => {
    const r = runCli(['doctor', '--json', '--model', wd.path('no-model-here')]);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string; detail: string }[] };
    const by = new Map(report.checks.map((c) => [c.name, c]));
    assert.equal(by.get('ffmpeg')?.status, 'ok');
    assert.match(by.get('ffmpeg')?.detail ?? '', /ffmpeg version/);
    assert.equal(by.get('ffprobe')?.status, 'ok');
    assert.equal(by.get('execution provider cpu')?.status, 'ok');
    assert.ok(by.has('execution provider cuda'));
    // A model folder that does not exist yet is a warning, not a failure.
    assert.equal(by.get('default model')?.status, 'warn');
    assert.equal(r.code, 0);
    assert.equal(report.ok, true);
    // An incomplete folder is a failure: `winnow ask` would break on it.
    const partial = wd.path('partial-model');
    mkdirSync(partial);
    writeFileSync(join(partial, 'config.json'), '{}');
    const r2 = runCli(['doctor', '--json', '--model', partial]);
    assert.equal(r2.code, 1);
    const model = (JSON.parse(r2.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === 'default model');
    assert.equal(model?.status, 'fail');
    assert.match(model?.detail ?? '', /onnx\/vision_encoder\.onnx/);
  });
});
