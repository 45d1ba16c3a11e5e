import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  fitSize,
  geometricTransform,
  normalizationTable,
  parsePreprocessorConfig,
  pixelValues,
  rgbToNormalizedChw,
  type RgbImage,
} from '../../src/encode/index.js';
import { GEN_FFMPEG } from '../shared/index.js';
import { PRE_112 } from './helpers/fixtures.js';

function solid(width: number, height: number, rgb: readonly [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) data.set(rgb, i);
  return { width, height, data };
}

/** A smooth but non-trivial picture: gradients plus a square, so resampling differences show. */
function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inSquare = x > width / 3 && x < (2 * width) / 3 && y > height / 3 && y < (2 * height) / 3;
      data[i] = Math.round((255 * x) / (width - 1));
      data[i + 1] = Math.round((255 * y) / (height - 1));
      data[i + 2] = inSquare ? 230 : 40;
    }
  }
  return { width, height, data };
}

const plan = parsePreprocessorConfig(PRE_112);

test('normalized values equal numpy float32 (x·(1/255) − 0.5) / 0.5 exactly', () => {
  // Reference printed by numpy 2.4: ((v.astype(f64)*(1/255)).astype(f32) - f32(.5)) / f32(.5)
  const bytes = [0, 50, 100, 127, 128, 200, 255];
  const numpy = [-1.0, -0.6078431606292725, -0.21568626165390015, -0.003921568393707275, 0.003921627998352051, 0.5686274766921997, 1.0];
  const lut = normalizationTable(plan);
  bytes.forEach((v, k) => {
    for (let c = 0; c < 3; c++) assert.equal(lut[c * 256 + v], numpy[k], `byte ${v} channel ${c}`);
  });
});

test('a known-colour model-sized frame gives exact CHW planes (CLIP statistics)', () => {
  const clip = parsePreprocessorConfig({ ...PRE_112, image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711] });
  const img = solid(112, 112, [200, 100, 50]);
  const out = new Float32Array(2 * 3 * 112 * 112).fill(NaN);
  const plane = 112 * 112;
  rgbToNormalizedChw(img, clip, out, 3 * plane); // second image of a batch
  // numpy: ((img*(1/255)).astype(f32) - mean_f32) / std_f32
  const numpy = [1.12742280960083, -0.2513202726840973, -0.7692164778709412];
  for (let c = 0; c < 3; c++) {
    const p = out.subarray(3 * plane + c * plane, 3 * plane + (c + 1) * plane);
    assert.ok(p.every((x) => x === numpy[c]), `channel ${c}`);
  }
  assert.ok(out.subarray(0, 3 * plane).every((x) => Number.isNaN(x)), 'first image of the batch untouched');
});

test('HWC → CHW keeps pixel positions', () => {
  const img = pattern(112, 112);
  const out = new Float32Array(3 * 112 * 112);
  const lut = normalizationTable(plan);
  rgbToNormalizedChw(img, plan, out, 0, lut);
  for (const [x, y] of [[0, 0], [111, 0], [5, 77], [111, 111]]) {
    for (let c = 0; c < 3; c++) {
      assert.equal(out[c * 112 * 112 + y * 112 + x], lut[c * 256 + img.data[(y * 112 + x) * 3 + c]]);
    }
  }
});

test('a 256×192 frame is fitted to 112×84 and padded with 14 rows of (127,127,127) above and below', async () => {
  const colour = [200, 30, 90] as const;
  const px = await pixelValues(solid(256, 192, colour), plan);
  const lut = normalizationTable(plan);
  const padValue = lut[127];
  assert.equal(padValue, -0.003921568393707275);
  const plane = 112 * 112;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 112; y++) {
      const row = px.subarray(c * plane + y * 112, c * plane + (y + 1) * 112);
      const expected = y < 14 || y >= 98 ? padValue : lut[c * 256 + colour[c]];
      assert.ok(row.every((v) => v === expected), `channel ${c} row ${y}`);
    }
  }
});

test('frames already at the model size skip the geometric work', async () => {
  const img = pattern(112, 112);
  const out = await geometricTransform(img, plan);
  assert.equal(out, img);
});

test('fit + pad matches the ffmpeg filter chain ingest and the training shards use', async (t) => {
  const probe = spawnSync(GEN_FFMPEG, ['-version']);
  if (probe.status !== 0) {
    // WINNOW_FFMPEG, PATH or the bundled build (test/shared/ffmpeg.ts): `npm ci` always leaves one, so its absence is a broken install.
    assert.fail(`ffmpeg does not run: ${GEN_FFMPEG}`);
  }
  const img = pattern(256, 192);
  const r = spawnSync(
    GEN_FFMPEG,
    [
      '-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '256x192', '-i', 'pipe:0',
      '-vf', 'scale=112:112:force_original_aspect_ratio=decrease:flags=bicubic,pad=112:112:(ow-iw)/2:(oh-ih)/2:color=0x7f7f7f',
      '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
    ],
    { input: img.data, maxBuffer: 1 << 20 },
  );
  assert.equal(r.status, 0, r.stderr.toString());
  const ff = new Uint8Array(r.stdout);
  assert.equal(ff.length, 112 * 112 * 3);
  const ours = await geometricTransform(img, plan);
  // Same content rectangle: the bars are identical byte for byte.
  for (const y of [0, 13, 98, 111]) {
    assert.deepEqual(ours.data.subarray(y * 336, (y + 1) * 336), ff.subarray(y * 336, (y + 1) * 336), `row ${y}`);
  }
  // Inside, two bicubic implementations differ by rounding only.
  let sum = 0;
  let max = 0;
  for (let i = 14 * 336; i < 98 * 336; i++) {
    const d = Math.abs(ours.data[i] - ff[i]);
    sum += d;
    max = Math.max(max, d);
  }
  const mean = sum / (84 * 336);
  t.diagnostic(`sharp vs ffmpeg content: mean |Δ| ${mean.toFixed(3)}, max ${max}`);
  assert.ok(mean < 2, `mean abs difference ${mean}`);
});

test('fitSize rounds like ffmpeg force_original_aspect_ratio=decrease', () => {
  assert.deepEqual(fitSize(256, 192, 112, 112), { width: 112, height: 84 });
  assert.deepEqual(fitSize(640, 360, 112, 112), { width: 112, height: 63 });
  assert.deepEqual(fitSize(360, 640, 112, 112), { width: 63, height: 112 });
  assert.deepEqual(fitSize(1000, 3, 112, 112), { width: 112, height: 1 });
});

test('LLaVA-1.5 expand2square pads at source resolution with floor(mean·255)', async () => {
  const p = parsePreprocessorConfig({
    do_resize: true,
    size: { height: 4, width: 4 },
    do_pad: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
  });
  assert.equal(p.pad, 'square');
  assert.deepEqual(p.padColor, [122, 116, 104]);
  const img = pattern(4, 2);
  const out = await geometricTransform(img, p);
  // 4×2 → 4×4 canvas, content at rows 1..2 ((4 − 2) // 2 = 1); no resize needed after.
  for (const y of [0, 3]) for (let x = 0; x < 4; x++) assert.deepEqual([...out.data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3)], [122, 116, 104]);
  assert.deepEqual(out.data.subarray(4 * 3, 12 * 3), img.data);
});

test('centre crop takes (h − ch) // 2, (w − cw) // 2 after a shortest-edge resize', async () => {
  const p = parsePreprocessorConfig({
    do_resize: true,
    size: { shortest_edge: 8 },
    resample: 0,
    do_center_crop: true,
    crop_size: { height: 4, width: 4 },
  });
  assert.equal(p.outHeight, 4);
  assert.equal(p.outWidth, 4);
  const img = pattern(13, 8); // short edge already 8: no resize; crop top 2, left (13 − 4) // 2 = 4
  const out = await geometricTransform(img, p);
  for (let y = 0; y < 4; y++) {
    const src = ((y + 2) * 13 + 4) * 3;
    assert.deepEqual(out.data.subarray(y * 12, y * 12 + 12), img.data.subarray(src, src + 12), `row ${y}`);
  }
  // Shortest edge 16 → 26×16 (long side truncated: floor(16·13/8) = 26), then crop.
  const p2 = parsePreprocessorConfig({ size: { shortest_edge: 16 }, do_center_crop: true, crop_size: 16 });
  const out2 = await geometricTransform(img, p2);
  assert.equal(out2.width, 16);
  assert.equal(out2.height, 16);
});

test('resample codes map to sharp kernels; bad preprocessor configs fail with WINNOW_ERR_MODEL_CONFIG', () => {
  assert.equal(parsePreprocessorConfig({ ...PRE_112, resample: 0 }).kernel, 'nearest');
  assert.equal(parsePreprocessorConfig({ ...PRE_112, resample: 1 }).kernel, 'lanczos3');
  assert.equal(parsePreprocessorConfig({ ...PRE_112, resample: 2 }).kernel, 'linear');
  assert.equal(parsePreprocessorConfig({ ...PRE_112, resample: 3 }).kernel, 'cubic');
  const bad: unknown[] = [
    { do_resize: true },
    { size: { shortest_edge: 224 } },
    { ...PRE_112, image_std: [0.5, 0, 0.5] },
    { ...PRE_112, resample: 9 },
    { ...PRE_112, do_center_crop: true },
    { ...PRE_112, size: { shortest_edge: 112 } },
  ];
  for (const cfg of bad) {
    assert.throws(() => parsePreprocessorConfig(cfg), { code: 'WINNOW_ERR_MODEL_CONFIG' }, JSON.stringify(cfg));
  }
});

test('a frame whose buffer does not match its size fails with WINNOW_ERR_INVALID_ARGUMENT', async () => {
  await assert.rejects(geometricTransform({ width: 64, height: 48, data: new Uint8Array(10) }, plan), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  await assert.rejects(geometricTransform({ width: 0, height: 48, data: new Uint8Array(0) }, plan), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});
