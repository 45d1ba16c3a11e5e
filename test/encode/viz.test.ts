// `winnow viz` against the default model: the picture's pixels say which tokens were kept.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { firstValueFrom, of } from 'rxjs';
import { runViz } from '../../src/cli/commands/viz.js';
import { encode, loadModel, parsePreprocessorConfig } from '../../src/encode/index.js';
import { renderTokenTile } from '../../src/encode/viz.js';
import { saveCodebook } from '../../src/prune/index.js';
import { MODEL_DIR, ffmpegSync, fileTempDir, modelSkip } from '../shared/index.js';
import { PRE_112 } from './helpers/fixtures.js';

const work = fileTempDir('winnow-viz-');
let still: string;
let stillRgb: Uint8Array;

async function readPng(path: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

const pixel = (img: { width: number; data: Uint8Array }, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

before(async () => {
  assert.equal(modelSkip, false, 'these tests run on the bundled model');
  // A 256×192 picture (the synthetic world's size): orange square on a blue-green gradient.
  stillRgb = new Uint8Array(256 * 192 * 3);
  for (let y = 0; y < 192; y++) {
    for (let x = 0; x < 256; x++) {
      const i = (y * 256 + x) * 3;
      const sq = x > 90 && x < 170 && y > 60 && y < 140;
      stillRgb.set(sq ? [240, 140, 20] : [30, 90 + (x >> 2), 160 - (y >> 2)], i);
    }
  }
  still = join(work.dir, 'still.png');
  writeFileSync(still, await sharp(stillRgb, { raw: { width: 256, height: 192, channels: 3 } }).png().toBuffer());
});

test('tile rendering: kept cells untouched, pruned cells dimmed, caption below', async () => {
  const plan = parsePreprocessorConfig(PRE_112);
  const frame = { width: 112, height: 112, data: new Uint8Array(112 * 112 * 3).fill(200) };
  const tile = await renderTokenTile(frame, plan, { gridH: 14, gridW: 14, kept: [0, 15] }, { displayScale: 2, caption: ['kept 2/196'] });
  assert.equal(tile.width, 224);
  assert.ok(tile.height > 224, 'caption strip');
  assert.deepEqual(pixel(tile, 8, 8), [200, 200, 200]); // cell 0 kept
  assert.deepEqual(pixel(tile, 24, 24), [200, 200, 200]); // cell 15 = (1,1) kept
  assert.deepEqual(pixel(tile, 24, 8), [56, 56, 56]); // cell 1 pruned: 200 · 0.28
  assert.deepEqual(frame.data.subarray(0, 3), Uint8Array.from([200, 200, 200]), 'input frame not modified');
  await assert.rejects(renderTokenTile(frame, plan, { gridH: 14, gridW: 14, kept: [196] }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});

test('viz of a still with a codebook of the letterbox tokens dims exactly the letterbox rows', async () => {
  // Codebook = the encoder's own tokens of grid rows 0 and 13 (pure pad for a 256×192 frame).
  const model = await loadModel(MODEL_DIR, { executionProvider: 'cpu', components: ['vision_encoder'] });
  const e = await firstValueFrom(of({ index: 0, ptsMs: 0, width: 256, height: 192, data: stillRgb }).pipe(encode(model)));
  await model.close();
  const rows = [0, 13];
  const D = e.dim;
  const protos = new Float32Array(rows.length * 14 * D);
  rows.forEach((r, k) => protos.set(e.tokens.subarray(r * 14 * D, (r + 1) * 14 * D), k * 14 * D));
  const cbPath = join(work.dir, 'pad.safetensors');
  await saveCodebook(cbPath, { prototypes: protos, count: 28, dim: D, dtype: 'F32', extraMetadata: {} }, { dtype: 'F32' });

  const out = join(work.dir, 'still-viz.png');
  const r = await runViz(still, { out, codebook: cbPath, strategy: 'threshold', tau: 0.999 });
  assert.equal(r.isVideo, false);
  assert.equal(r.total, 196);
  assert.ok(r.kept <= 196 - 28 && r.kept > 100, `kept ${r.kept}`);
  const png = await readPng(out);
  assert.equal(png.width, 448);
  assert.ok(png.height > 448);
  // Display: the frame fitted into 448×448 (448×336, 56-px bars); cells are 32 px.
  assert.deepEqual(pixel(png, 16, 16), [35, 35, 35], 'row 0 (pad, in the codebook): 127 · 0.28');
  assert.deepEqual(pixel(png, 16 + 32 * 7, 16 + 32 * 13), [35, 35, 35], 'row 13 (pad, in the codebook)');
  const square = pixel(png, 16 + 32 * 7, 16 + 32 * 7); // centre of the orange square
  assert.ok(square[0] > 200 && square[2] < 60, `kept content shows at full brightness: ${square}`);
});

test('viz of a video writes a contact sheet of pooled 7×7 grids', async () => {
  const video = join(work.dir, 'clip.mp4');
  ffmpegSync(['-f', 'lavfi', '-i', 'testsrc2=size=256x192:rate=10:duration=4', '-pix_fmt', 'yuv420p', video]);
  const out = join(work.dir, 'sheet.png');
  const r = await runViz(video, { out, strategy: 'random', ratio: 0.25, frames: 4, columns: 2 });
  assert.equal(r.isVideo, true);
  assert.equal(r.frames, 4);
  assert.equal(r.total, 4 * 49);
  assert.equal(r.kept, 4 * Math.round(49 * 0.25));
  const png = await readPng(out);
  assert.equal(png.width, r.width);
  assert.ok(png.width > 2 * 224 && png.height > 2 * 224, `${png.width}×${png.height}`);
});
