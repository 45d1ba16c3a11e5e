import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  BACKGROUND_RGB,
  CANVAS_HEIGHT,
  CANVAS_WIDTH,
  COLOR_RGB,
  SIZE_PX,
  Rng,
  objectsAt,
  renderBackground,
  renderStill,
  sampleVideo,
  stillAt,
  videoAt,
  writeDataset,
  writeShards,
  hasApartCount,
  type PlacedObject,
  type VideoScene,
  type QaPair,
} from '../../src/synth/index.js';
import { GEN_FFMPEG, withTempDir } from '../shared/index.js';

const NUM = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

function pixel(img: Uint8Array, x: number, y: number): [number, number, number] {
  const i = (Math.round(y) * CANVAS_WIDTH + Math.round(x)) * 3;
  return [img[i], img[i + 1], img[i + 2]];
}

/** Independent re-derivation of a frame answer from the objects (plain rules of SYNTHETIC_WORLD.md). */
function deriveFrameAnswer(q: QaPair, objs: readonly PlacedObject[]): string {
  let m: RegExpMatchArray | null;
  if ((m = q.question.match(/^what color is the (\w+)\?$/))) {
    const found = objs.filter((o) => o.shape === m![1]);
    assert.equal(found.length, 1, 'F1 asked only when exactly one');
    return found[0].color;
  }
  if ((m = q.question.match(/^how many (\w+)s are there\?$/))) return NUM[objs.filter((o) => o.shape === m![1]).length];
  if ((m = q.question.match(/^is there a (\w+) (\w+)\?$/))) return objs.some((o) => o.color === m![1] && o.shape === m![2]) ? 'yes' : 'no';
  if ((m = q.question.match(/^is the (\w+) (\w+) on the left or the right\?$/))) {
    const o = objs.find((x) => x.color === m![1] && x.shape === m![2]);
    assert.ok(o && Math.abs(o.x - 128) >= 20);
    return o.x < 128 ? 'left' : 'right';
  }
  if (q.question === 'describe the picture.') {
    if (objs.length === 0) return 'nothing';
    return [...objs].sort((a, b) => a.x - b.x).map((o) => `${o.color} ${o.shape}`).join(' and ');
  }
  throw new Error(`unknown frame question ${q.question}`);
}

test('object centres carry the exact table colour; shapes have the specified size', () => {
  let checked = 0;
  for (let i = 0; i < 60; i++) {
    const t = stillAt(11, i);
    const img = renderStill(t);
    for (const o of t.scene.objects) {
      assert.deepEqual(pixel(img, o.x, o.y), [...COLOR_RGB[o.color]]);
      const h = SIZE_PX[o.size] / 2;
      // Just inside the left edge at mid-height is object colour for circle and square.
      if (o.shape !== 'triangle') assert.deepEqual(pixel(img, o.x - h + 2, o.y), [...COLOR_RGB[o.color]]);
      // Well outside the bounding box is background (not object colour).
      const out = pixel(img, Math.max(0, o.x - h - 3), o.y);
      assert.notDeepEqual(out, [...COLOR_RGB[o.color]]);
      checked++;
    }
  }
  assert.ok(checked > 60);
});

test('background = base colour + ±20 linear gradient + uniform noise in [−10, 10]', () => {
  for (const angle of [0, Math.PI / 2, 1.1, 4]) {
    const bg = { name: 'teal' as const, gradientAngleRad: angle, noiseSeed: 99 };
    const img = renderBackground(bg, CANVAS_WIDTH, CANVAS_HEIGHT);
    const base = BACKGROUND_RGB.teal;
    const ux = Math.cos(angle);
    const uy = Math.sin(angle);
    const reach = Math.abs(ux) * (CANVAS_WIDTH - 1) / 2 + Math.abs(uy) * (CANVAS_HEIGHT - 1) / 2;
    let sum = 0;
    let sumSq = 0;
    let n = 0;
    let minG = Infinity;
    let maxG = -Infinity;
    for (let y = 0; y < CANVAS_HEIGHT; y++) {
      for (let x = 0; x < CANVAS_WIDTH; x++) {
        const g = 20 * (((x + 0.5 - 128) * ux + (y + 0.5 - 96) * uy) / reach);
        minG = Math.min(minG, g);
        maxG = Math.max(maxG, g);
        for (let c = 0; c < 3; c++) {
          const noise = img[(y * CANVAS_WIDTH + x) * 3 + c] - (base[c] + g);
          assert.ok(noise >= -10.5 && noise <= 10.5, `noise ${noise}`);
          sum += noise;
          sumSq += noise * noise;
          n++;
        }
      }
    }
    assert.ok(minG < -19 && maxG > 19, 'gradient spans ±20');
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    assert.ok(Math.abs(mean) < 0.1, `noise mean ${mean}`);
    // Uniform integers in [−10, 10] have std sqrt((21² − 1) / 12) ≈ 6.06 (+ rounding of the gradient).
    assert.ok(std > 5.8 && std < 6.4, `noise std ${std}`);
  }
});

test('every still answer is re-derived from the scene; rules on counts, gaps and canvas hold', () => {
  const families = new Map<string, number>();
  let yes = 0;
  let no = 0;
  for (let i = 0; i < 300; i++) {
    const t = stillAt(21, i);
    const objs = t.scene.objects;
    assert.ok(objs.length <= 3);
    for (const q of t.qa) {
      assert.equal(q.answer, deriveFrameAnswer(q, objs), q.question);
      families.set(q.id, (families.get(q.id) ?? 0) + 1);
      if (q.id === 'F3') q.answer === 'yes' ? yes++ : no++;
    }
    for (let a = 0; a < objs.length; a++) {
      const ha = SIZE_PX[objs[a].size] / 2;
      assert.ok(objs[a].x - ha >= 0 && objs[a].x + ha <= CANVAS_WIDTH && objs[a].y - ha >= 0 && objs[a].y + ha <= CANVAS_HEIGHT);
      for (let b = a + 1; b < objs.length; b++) {
        const hb = SIZE_PX[objs[b].size] / 2;
        const gap = Math.max(Math.abs(objs[a].x - objs[b].x) - ha - hb, Math.abs(objs[a].y - objs[b].y) - ha - hb);
        assert.ok(gap >= 4, `gap ${gap}`);
        assert.ok(!(objs[a].shape === objs[b].shape && objs[a].color === objs[b].color));
      }
    }
  }
  for (const f of ['F1', 'F2', 'F3', 'F4', 'C1']) assert.ok((families.get(f) ?? 0) > 50, f);
  assert.ok(Math.abs(yes / (yes + no) - 0.5) < 0.1, `F3 yes share ${yes / (yes + no)}`);
});

test('videos: tracks stay in the canvas, apart, unique while present; V answers re-derived', () => {
  for (let v = 0; v < 12; v++) {
    const truth = videoAt(31, v, 30_000);
    const scene = truth.scene;
    for (let t = 0; t < scene.durationMs; t += 100) {
      const objs = objectsAt(scene, t);
      assert.ok(objs.length <= 3);
      for (let a = 0; a < objs.length; a++) {
        const ha = SIZE_PX[objs[a].size] / 2;
        assert.ok(objs[a].x - ha >= -1e-6 && objs[a].x + ha <= CANVAS_WIDTH + 1e-6, `x ${objs[a].x}`);
        assert.ok(objs[a].y - ha >= -1e-6 && objs[a].y + ha <= CANVAS_HEIGHT + 1e-6, `y ${objs[a].y}`);
        for (let b = a + 1; b < objs.length; b++) {
          const hb = SIZE_PX[objs[b].size] / 2;
          const gap = Math.max(Math.abs(objs[a].x - objs[b].x) - ha - hb, Math.abs(objs[a].y - objs[b].y) - ha - hb);
          assert.ok(gap >= 4 - 1e-6, `gap ${gap} at ${t}`);
          assert.ok(!(objs[a].shape === objs[b].shape && objs[a].color === objs[b].color));
        }
      }
    }
    for (const o of scene.objects) {
      for (const s of o.segments) assert.ok(Math.hypot(s.vxPxPerS, s.vyPxPerS) <= 30 + 1e-9);
    }
    for (const q of truth.qa) {
      const seen = scene.objects.filter((o) => o.appearMs <= q.tMs);
      let m: RegExpMatchArray | null;
      if ((m = q.question.match(/^did a (\w+) (\w+) appear\?$/))) assert.equal(q.answer, seen.some((o) => o.color === m![1] && o.shape === m![2]) ? 'yes' : 'no');
      else if ((m = q.question.match(/^how many (\w+)s appeared\?$/))) assert.equal(q.answer, NUM[seen.filter((o) => o.shape === m![1]).length]);
      else if ((m = q.question.match(/^what color was the first (\w+) to appear\?$/))) {
        const first = seen.filter((o) => o.shape === m![1]).sort((a, b) => a.appearMs - b.appearMs);
        assert.ok(first.length > 0);
        assert.equal(q.answer, first[0].color);
      } else assert.equal(q.answer, deriveFrameAnswer(q, objectsAt(scene, q.tMs)), q.question);
    }
  }
});

test('deterministic from the seed; different seeds differ', () => {
  assert.deepEqual(stillAt(5, 3), stillAt(5, 3));
  assert.deepEqual(Buffer.from(renderStill(stillAt(5, 3))), Buffer.from(renderStill(stillAt(5, 3))));
  assert.notDeepEqual(stillAt(5, 3).scene, stillAt(6, 3).scene);
  assert.deepEqual(sampleVideo(new Rng(8), { durationMs: 20_000 }), sampleVideo(new Rng(8), { durationMs: 20_000 }));
});

test('dataset: PNG + JSON and H.264 MP4 whose decoded frames show the objects at their tracked positions', async () => {
  await withTempDir('winnow-synth-', async (dir) => {
    const { files } = await writeDataset({ outDir: dir, seed: 41, stills: 2, videos: 1, durationS: 6, ffmpegPath: GEN_FFMPEG });
    assert.equal(files.length, 3);
    const names = (await readdir(dir)).sort();
    assert.deepEqual(names, ['still_00000.json', 'still_00000.png', 'still_00001.json', 'still_00001.png', 'video_00000.json', 'video_00000.mp4']);
    const truth = JSON.parse(await readFile(join(dir, 'video_00000.json'), 'utf8')) as ReturnType<typeof videoAt>;
    assert.deepEqual(truth, JSON.parse(JSON.stringify(videoAt(41, 0, 6000))));
    // Decode frame at t = 2 s (frame 20 at 10 fps) and compare object-centre colours within H.264 tolerance.
    const r = spawnSync(GEN_FFMPEG, ['-v', 'error', '-i', join(dir, 'video_00000.mp4'), '-vf', 'select=eq(n\\,20)', '-vsync', '0', '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 24 });
    assert.equal(r.status, 0, r.stderr?.toString());
    const img = new Uint8Array(r.stdout);
    assert.equal(img.length, CANVAS_WIDTH * CANVAS_HEIGHT * 3);
    for (const o of objectsAt(truth.scene, 2000)) {
      const got = pixel(img, o.x, o.y);
      const want = COLOR_RGB[o.color];
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[c] - want[c]) <= 24, `${o.color} ${got} vs ${want}`);
    }
  });
});

test('training shards: model-input frames, patch labels and QA line up', async () => {
  await withTempDir('winnow-shards-', async (dir) => {
    const filter = 'scale=112:112:force_original_aspect_ratio=decrease:flags=bicubic,pad=112:112:(ow-iw)/2:(oh-ih)/2:color=0x7f7f7f';
    await writeShards({ outDir: dir, seed: 51, stills: 12, videos: 2, minDurationS: 5, maxDurationS: 6, geometry: { inputSize: 112, patchSize: 8, mode: 'fit' }, inputFilter: filter, concurrency: 1, ffmpegPath: GEN_FFMPEG });
    const rgb = await readFile(join(dir, 'stills_0000.rgb'));
    const labels = await readFile(join(dir, 'stills_0000.labels'));
    const lines = (await readFile(join(dir, 'stills_0000.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { objects: PlacedObject[] });
    assert.equal(rgb.length, 12 * 112 * 112 * 3);
    assert.equal(labels.length, 12 * 196 * 3);
    for (let i = 0; i < 12; i++) {
      // Letterbox rows (0..13) are the pad colour 127 after H.264 (± a little).
      const top = rgb[(i * 112 * 112 + 5 * 112 + 50) * 3];
      assert.ok(Math.abs(top - 127) <= 3);
      for (const o of lines[i].objects) {
        const ix = Math.floor((o.x * 0.4375) / 8);
        const iy = Math.floor((o.y * 0.4375 + 14) / 8);
        assert.equal(labels[(i * 196 + iy * 14 + ix) * 3 + 1], 1, 'centre flag at the object centre patch');
        assert.ok(labels[(i * 196 + iy * 14 + ix) * 3] > 0, 'object class at its centre patch');
      }
    }
    const vids = (await readFile(join(dir, 'videos_0000.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { numFrames: number; durationMs: number });
    const vrgb = await readFile(join(dir, 'videos_0000.rgb'));
    const frames = vids.reduce((a, v) => a + v.numFrames, 0);
    assert.equal(vrgb.length, frames * 112 * 112 * 3);
    for (const v of vids) assert.equal(v.numFrames, v.durationMs / 1000);
  });
});

function trackScene(durationMs: number, tracks: { shape: 'circle' | 'square'; color: 'red' | 'blue'; appearMs: number; leaveMs: number; x: number }[]): VideoScene {
  return {
    kind: 'video', width: CANVAS_WIDTH, height: CANVAS_HEIGHT, fps: 10, durationMs,
    background: { name: 'gray', gradientAngleRad: 0, noiseSeed: 1 },
    objects: tracks.map((t, id) => ({ id, shape: t.shape, color: t.color, size: 'small', appearMs: t.appearMs, leaveMs: t.leaveMs, segments: [{ tMs: t.appearMs, x: t.x, y: 96, vxPxPerS: 0, vyPxPerS: 0 }] })),
  };
}

test('hasApartCount: objects of a shape that never coexist vs ones seen together', () => {
  type Track = Parameters<typeof trackScene>[1][number];
  const cases: [string, Track[], boolean][] = [
    ['two circles one after the other: "two circles appeared", never two in one frame', [
      { shape: 'circle', color: 'red', appearMs: 0, leaveMs: 4000, x: 60 },
      { shape: 'circle', color: 'blue', appearMs: 5000, leaveMs: 10_000, x: 180 },
    ], true],
    ['the same two circles overlapping for one sampled second', [
      { shape: 'circle', color: 'red', appearMs: 0, leaveMs: 5500, x: 60 },
      { shape: 'circle', color: 'blue', appearMs: 5000, leaveMs: 10_000, x: 180 },
    ], false],
    ['different shapes one after the other', [
      { shape: 'circle', color: 'red', appearMs: 0, leaveMs: 4000, x: 60 },
      { shape: 'square', color: 'red', appearMs: 5000, leaveMs: 10_000, x: 180 },
    ], false],
    // V3 counts every object that appeared, also one a 1-fps sample never caught.
    ['a second circle present only between two sampled frames', [
      { shape: 'circle', color: 'red', appearMs: 0, leaveMs: 4000, x: 60 },
      { shape: 'circle', color: 'blue', appearMs: 5200, leaveMs: 5800, x: 180 },
    ], true],
  ];
  for (const [what, tracks, want] of cases) assert.equal(hasApartCount(trackScene(10_000, tracks), 1), want, what);
});

test("training shards with video mix 'apart-rich' keep only videos whose V3 needs counting over time", async () => {
  await withTempDir('winnow-shards-', async (dir) => {
    const filter = 'scale=112:112:force_original_aspect_ratio=decrease:flags=bicubic,pad=112:112:(ow-iw)/2:(oh-ih)/2:color=0x7f7f7f';
    await writeShards({ outDir: dir, seed: 52, stills: 0, videos: 4, minDurationS: 10, maxDurationS: 12, geometry: { inputSize: 112, patchSize: 8, mode: 'fit' }, inputFilter: filter, concurrency: 1, ffmpegPath: GEN_FFMPEG, videoMix: 'apart-rich' });
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { videoMix: string };
    assert.equal(meta.videoMix, 'apart-rich');
    type Line = { objects: { id: number; shape: string; appearMs: number; leaveMs: number }[]; frames: { tMs: number; qa: QaPair[] }[] };
    const vids = (await readFile(join(dir, 'videos_0000.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Line);
    assert.equal(vids.length, 4);
    for (const v of vids) {
      // Re-derived from the written tracks and answers: at the last frame some V3 answer exceeds
      // the most objects of that shape present in any one sampled frame.
      const most = new Map<string, number>();
      for (const f of v.frames) {
        const now = new Map<string, number>();
        for (const o of v.objects) if (o.appearMs <= f.tMs && f.tMs < o.leaveMs) now.set(o.shape, (now.get(o.shape) ?? 0) + 1);
        for (const [k, n] of now) most.set(k, Math.max(most.get(k) ?? 0, n));
      }
      const v3 = v.frames[v.frames.length - 1].qa.filter((q) => q.id === 'V3').map((q) => ({ shape: q.question.split(' ')[2].slice(0, -1), n: NUM.indexOf(q.answer) }));
      assert.ok(v3.some((q) => q.n > (most.get(q.shape) ?? 0)), 'an apart count in every kept video');
      for (const q of v3) assert.ok(q.n >= (most.get(q.shape) ?? 0));
    }
  });
});
