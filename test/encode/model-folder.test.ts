import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { loadModel, ModelFolder } from '../../src/encode/index.js';
import type { WinnowError } from '../../src/errors.js';
import { buildModel, rejection } from '../shared/index.js';
import { patchEncoder, patchEncoderWeights } from './helpers/patch-encoder.js';
import { CONFIG_32, PRE_112, TempFolders } from './helpers/fixtures.js';

const folders = new TempFolders();
after(() => folders.dispose());

function loadError(dir: string, opts: Parameters<typeof loadModel>[1] = {}): Promise<WinnowError> {
  return rejection(loadModel(dir, { executionProvider: 'cpu', warmUp: false, ...opts }).then((m) => m.close()));
}

test('a folder with the contract loads; vision facts come from metadata and the warm-up run', async () => {
  const m = await loadModel(folders.make(), { executionProvider: 'cpu', intraOpThreads: 1 });
  try {
    assert.deepEqual(
      { ...m.vision },
      { inputType: 'float32', imageHeight: 112, imageWidth: 112, numTokens: 196, dim: 32, gridH: 14, gridW: 14, hasClsSimilarity: true, hasPatchClasses: false },
    );
    assert.equal(m.executionProvider, 'cpu');
    assert.equal(m.config.hiddenSize, 32);
    assert.equal(m.config.imageTokenId, 5);
    assert.deepEqual(m.config.winnow.videoPooling, { stride: 2, mode: 'avg' });
    assert.equal(m.generationConfig, undefined);
    const vision = await m.session('vision_encoder');
    assert.deepEqual(vision.session.inputNames, ['pixel_values']);
  } finally {
    await m.close();
  }
});

test('missing files fail with WINNOW_ERR_MODEL_MISSING_FILE naming the file', async () => {
  const cases: Array<[Parameters<TempFolders['make']>[0], string, Parameters<typeof loadModel>[1]?]> = [
    [{ config: null }, 'config.json'],
    [{ preprocessor: null }, 'preprocessor_config.json'],
    [{ vision: null }, join('onnx', 'vision_encoder.onnx')],
    [{ decoder: null }, join('onnx', 'decoder_model_merged.onnx')],
    [{ embed: null }, join('onnx', 'embed_tokens.onnx')],
    [{ tokenizer: false }, 'tokenizer.json'],
    [{}, join('onnx', 'vision_encoder_q4.onnx'), { dtype: 'q4' }],
    [{}, join('onnx', 'decoder_model_merged_fp16.onnx'), { dtype: { decoder_model_merged: 'fp16' } }],
  ];
  for (const [spec, file, opts] of cases) {
    const dir = folders.make(spec);
    const e = await loadError(dir, opts);
    assert.equal(e.code, 'WINNOW_ERR_MODEL_MISSING_FILE', `${file}: ${e.message}`);
    assert.equal(e.details.file, join(dir, file));
  }
});

test('a vision-only load needs neither the LLM files nor the tokenizer', async () => {
  const m = await loadModel(folders.make({ decoder: null, embed: null, tokenizer: false }), {
    executionProvider: 'cpu',
    components: ['vision_encoder'],
    warmUp: false,
  });
  assert.equal(m.vision.numTokens, 196);
  await assert.rejects(m.session('decoder_model_merged'), { code: 'WINNOW_ERR_MODEL_MISSING_FILE' });
  await m.close();
});

test('dtype picks the suffixed files', async () => {
  const m = await loadModel(folders.make({ suffix: '_quantized' }), { executionProvider: 'cpu', dtype: 'quantized', warmUp: false });
  assert.match(m.files.components.vision_encoder ?? '', /vision_encoder_quantized\.onnx$/);
  assert.equal((await m.session('embed_tokens')).dtype, 'quantized');
  await m.close();
});

test('unexpected inputs/outputs fail with WINNOW_ERR_MODEL_CONTRACT', async () => {
  const cases: Array<[string, Parameters<TempFolders['make']>[0]]> = [
    ['input named images', { vision: patchEncoder({ inputName: 'images' }) }],
    ['no image_features output', { vision: patchEncoder({ featuresName: 'last_hidden_state' }) }],
    ['width ≠ hidden_size', { config: { ...CONFIG_32, text_config: { hidden_size: 64 } } }],
    ['model takes 112, preprocessor makes 224', { preprocessor: { ...PRE_112, size: { height: 224, width: 224 } } }],
    ['not an ONNX file', { vision: new TextEncoder().encode('not a model') }],
    [
      'extra input',
      {
        vision: buildModel({
          nodes: [{ op: 'Add', inputs: ['pixel_values', 'other'], outputs: ['image_features'] }],
          inputs: [
            { name: 'pixel_values', type: 'float32', shape: ['b', 3, 112, 112] },
            { name: 'other', type: 'float32', shape: ['b', 3, 112, 112] },
          ],
          outputs: [{ name: 'image_features', type: 'float32', shape: ['b', 3, 112, 112] }],
        }),
      },
    ],
    [
      '4-D features',
      {
        vision: buildModel({
          nodes: [{ op: 'Identity', inputs: ['pixel_values'], outputs: ['image_features'] }],
          inputs: [{ name: 'pixel_values', type: 'float32', shape: ['b', 3, 112, 112] }],
          outputs: [{ name: 'image_features', type: 'float32', shape: ['b', 3, 112, 112] }],
        }),
      },
    ],
  ];
  for (const [name, spec] of cases) {
    const e = await loadError(folders.make(spec), { warmUp: true });
    assert.equal(e.code, 'WINNOW_ERR_MODEL_CONTRACT', `${name}: ${e.code} ${e.message}`);
  }
});

test('the token grid comes from patch_size and the input size, so non-square inputs work', async () => {
  const pre = { ...PRE_112, size: { height: 64, width: 112 } };
  const vision = patchEncoder({ imageHeight: 64, imageSize: 112, patch: 8 });
  const m = await loadModel(folders.make({ vision, preprocessor: pre, config: { ...CONFIG_32, vision_config: { patch_size: 8 } } }), {
    executionProvider: 'cpu',
  });
  assert.deepEqual([m.vision.numTokens, m.vision.gridH, m.vision.gridW], [112, 8, 14]);
  await m.close();
  // Without patch_size, 112 tokens form no square grid: refused at load.
  const e = await loadError(folders.make({ vision, preprocessor: pre, config: { ...CONFIG_32, vision_config: {} } }));
  console.log('MSG', e.message);
  assert.equal(e.code, 'WINNOW_ERR_MODEL_CONTRACT');
});

test('config.json and preprocessor_config.json problems fail with WINNOW_ERR_MODEL_CONFIG', async () => {
  for (const spec of [
    { config: { text_config: { hidden_size: 'wide' } } },
    { preprocessor: { ...PRE_112, size: { shortest_edge: 112 } } },
    { config: { ...CONFIG_32, winnow: { video_pooling: { stride: 2, mode: 'median' } } } },
  ]) {
    const e = await loadError(folders.make(spec));
    assert.equal(e.code, 'WINNOW_ERR_MODEL_CONFIG');
  }
});

test("lazily opened components are validated and shared: embed_tokens ok, a bad decoder is refused", async () => {
  const m = await loadModel(folders.make(), { executionProvider: 'cpu', warmUp: false });
  try {
    const [a, b] = await Promise.all([m.session('embed_tokens'), m.session('embed_tokens')]);
    assert.equal(a, b);
    assert.equal(a.session, (await m.session('embed_tokens')).session);
    assert.deepEqual([...a.outputs.keys()], ['inputs_embeds']);
    const e = await m.session('decoder_model_merged').then(
      () => assert.fail('bad decoder accepted'),
      (x: WinnowError) => x,
    );
    console.log('MSG', e.message);
  assert.equal(e.code, 'WINNOW_ERR_MODEL_CONTRACT');
    assert.equal(e.details.component, 'decoder_model_merged');
  } finally {
    await m.close();
  }
});

test("executionProvider 'cuda' fails with WINNOW_ERR_EXECUTION_PROVIDER on this CPU machine; 'auto' falls back to cpu and says so", async () => {
  const dir = folders.make();
  const e = await loadError(dir, { executionProvider: 'cuda' });
  assert.equal(e.code, 'WINNOW_ERR_EXECUTION_PROVIDER');
  const m = await loadModel(dir, { executionProvider: 'auto', warmUp: false });
  assert.equal(m.executionProvider, 'cpu');
  assert.match(m.executionProviderReason, /^cpu \(auto: CUDA unavailable/);
  // Every component of one model runs on the provider chosen first.
  assert.equal((await m.session('embed_tokens')).executionProvider, 'cpu');
  await m.close();
});

test('close() is idempotent, waits for running inferences and refuses new work', async () => {
  const m = await ModelFolder.load(folders.make(), { executionProvider: 'cpu', warmUp: false });
  const px = new Float32Array(2 * 3 * 112 * 112).fill(0.25);
  const running = m.runVision(px, 2);
  assert.equal(m.inflightRuns, 1);
  const c1 = m.close();
  const c2 = m.close();
  assert.equal(c1, c2);
  const out = await running; // a run started before close completes normally
  assert.equal(out.features.length, 2);
  assert.equal(out.features[0].length, 196 * 32);
  await c1;
  assert.equal(m.closed, true);
  assert.equal(m.inflightRuns, 0);
  await assert.rejects(m.runVision(px, 1), { code: 'WINNOW_ERR_SESSION_CLOSED' });
  await assert.rejects(m.session('embed_tokens'), { code: 'WINNOW_ERR_SESSION_CLOSED' });
  await m.close();
});

test('an aborted load fails with WINNOW_ERR_ABORTED', async () => {
  const ac = new AbortController();
  ac.abort();
  const e = await loadError(folders.make(), { signal: ac.signal });
  assert.equal(e.code, 'WINNOW_ERR_ABORTED');
});

test('float16 encoders (fp16 / q4f16 exports): pixels go in as float16, tokens come out as float32', async () => {
  const dir32 = folders.make();
  const dir16 = folders.make({ vision: patchEncoder({ float16: true }), suffix: '_fp16' });
  const m32 = await loadModel(dir32, { executionProvider: 'cpu', components: ['vision_encoder'] });
  const m16 = await loadModel(dir16, { executionProvider: 'cpu', components: ['vision_encoder'], dtype: 'fp16' });
  try {
    assert.equal(m16.vision.inputType, 'float16');
    assert.equal(m16.vision.dim, 32);
    const px = new Float32Array(3 * 112 * 112);
    for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.01);
    const [a, b] = await Promise.all([m32.runVision(px, 1), m16.runVision(px, 1)]);
    assert.ok(b.features[0] instanceof Float32Array);
    let max = 0;
    for (let i = 0; i < a.features[0].length; i++) max = Math.max(max, Math.abs(a.features[0][i] - b.features[0][i]));
    assert.ok(max < 5e-3, `fp16 round trip max |Δ| ${max}`);
    assert.ok(Math.abs(a.clsSimilarity![0][7] - b.clsSimilarity![0][7]) < 5e-3);
  } finally {
    await Promise.all([m32.close(), m16.close()]);
  }
});

test('weights in a *.onnx_data file beside the model (external data, as large exports ship) load and match', async () => {
  const inline = folders.make();
  const external = folders.make({ vision: patchEncoder({ externalWeights: 'vision_encoder.onnx_data' }) });
  const w = patchEncoderWeights();
  writeFileSync(join(external, 'onnx', 'vision_encoder.onnx_data'), new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  assert.ok(statSync(join(external, 'onnx', 'vision_encoder.onnx')).size < w.byteLength, 'the weights are not inside the .onnx');
  const a = await loadModel(inline, { executionProvider: 'cpu', components: ['vision_encoder'] });
  const b = await loadModel(external, { executionProvider: 'cpu', components: ['vision_encoder'] });
  try {
    const px = new Float32Array(3 * 112 * 112);
    for (let i = 0; i < px.length; i++) px[i] = Math.cos(i * 0.003);
    const [ra, rb] = await Promise.all([a.runVision(px, 1), b.runVision(px, 1)]);
    assert.deepEqual(Array.from(rb.features[0]), Array.from(ra.features[0]));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  // Without its data file the model cannot load: the missing-file error, naming the data file.
  rmSync(join(external, 'onnx', 'vision_encoder.onnx_data'));
  const e = await loadError(external, { components: ['vision_encoder'] });
  assert.equal(e.code, 'WINNOW_ERR_MODEL_MISSING_FILE');
  const details = e.details as { file?: string; model?: string } | undefined;
  assert.match(String(details?.file), /onnx[\\/]vision_encoder\.onnx_data$/);
  assert.match(String(details?.model), /vision_encoder\.onnx$/);
});
