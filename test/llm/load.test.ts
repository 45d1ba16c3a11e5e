// LanguageModel loading through the shared ONNX opener (src/model): execution-provider choice and
// its errors, dtype files, and config.json parsed once with one schema (a folder's parse is reused).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LanguageModel, languageModelConfig, loadLanguageModelConfig, parseLanguageModelConfig, type LanguageModelSource } from '../../src/llm/index.js';
import { loadModel } from '../../src/encode/index.js';
import { OnnxSessionOpener, loadModelConfigFiles, parseModelConfig } from '../../src/model/index.js';
import { MODEL_DIR, fileTempDir, rejection } from '../shared/index.js';
import { writeTinyModel } from './tiny-model.js';

const tmp = fileTempDir('winnow-llm-load-');
let dir: string;

before(async () => {
  dir = join(tmp.dir, 'tiny');
  await writeTinyModel(dir, { frameShared: true });
});

test("executionProvider: 'cuda' fails with WINNOW_ERR_EXECUTION_PROVIDER here; 'auto' falls back to cpu; 'cpu' says requested", async () => {
  const e = await rejection(LanguageModel.load(dir, { executionProvider: 'cuda' }));
  assert.equal(e.code, 'WINNOW_ERR_EXECUTION_PROVIDER');
  assert.equal(e.details.requested, 'cuda');
  const auto = await LanguageModel.load(dir, { executionProvider: 'auto', intraOpThreads: 1 });
  assert.equal(auto.executionProvider, 'cpu');
  assert.match(auto.executionProviderReason, /^cpu \(auto: CUDA unavailable/);
  await auto.close();
  const cpu = await LanguageModel.load(dir, { executionProvider: 'cpu' });
  assert.equal(cpu.executionProvider, 'cpu');
  assert.equal(cpu.executionProviderReason, 'cpu (requested)');
  await cpu.close();
});

test('dtype: a missing variant is WINNOW_ERR_MODEL_MISSING_FILE naming the file; an unknown one is WINNOW_ERR_INVALID_ARGUMENT', async () => {
  const e = await rejection(LanguageModel.load(dir, { dtype: 'fp16' }));
  assert.equal(e.code, 'WINNOW_ERR_MODEL_MISSING_FILE');
  assert.equal(e.details.file, join(dir, 'onnx', 'embed_tokens_fp16.onnx'));
  const u = await rejection(LanguageModel.load(dir, { dtype: 'int3' as 'fp16' }));
  assert.equal(u.code, 'WINNOW_ERR_INVALID_ARGUMENT');
  const p = await rejection(LanguageModel.load(dir, { dtype: 'constructor' as 'fp16' }));
  assert.equal(p.code, 'WINNOW_ERR_INVALID_ARGUMENT');
});

test('one opener, one provider: concurrent opens wait for the first decision', async () => {
  const opener = new OnnxSessionOpener({ executionProvider: 'auto' });
  assert.equal(opener.provider, undefined);
  const [a, b] = await Promise.all([opener.open(join(dir, 'onnx', 'embed_tokens.onnx')), opener.open(join(dir, 'onnx', 'decoder_model_merged.onnx'))]);
  assert.deepEqual([a.provider, b.provider, opener.provider], ['cpu', 'cpu', 'cpu']);
  await Promise.all([a.session.release(), b.session.release()]);
  const missing = await rejection(opener.open(join(dir, 'onnx', 'nope.onnx')));
  assert.equal(missing.code, 'WINNOW_ERR_MODEL_MISSING_FILE');
  const notOnnx = await rejection(opener.open(join(dir, 'config.json')));
  assert.equal(notOnnx.code, 'WINNOW_ERR_MODEL_CONTRACT');
});

test('fromModelFolder takes the config from the folder’s parse, and it equals loading the directory', async () => {
  const folder = await loadModel(MODEL_DIR, { executionProvider: 'cpu', warmUp: false });
  try {
    const viaFolder = await LanguageModel.fromModelFolder(folder);
    const viaDir = await LanguageModel.load(MODEL_DIR, { executionProvider: 'cpu' });
    assert.deepEqual(viaFolder.config, viaDir.config);
    assert.deepEqual(viaFolder.config, await loadLanguageModelConfig(MODEL_DIR));
    assert.equal(viaFolder.executionProvider, folder.executionProvider);
    assert.equal(viaFolder.config.maxPositionEmbeddings, 16384);
    assert.equal(viaFolder.config.generation.maxNewTokens, 24);
    await Promise.all([viaFolder.close(), viaDir.close()]);
    // config.json is not read again: a source whose parse says otherwise wins.
    const source: LanguageModelSource = {
      dir: folder.dir,
      config: { ...folder.config, winnow: { ...folder.config.winnow, frameMarker: '[{ms}]' } },
      generationConfig: folder.generationConfig,
      files: folder.files,
      executionProvider: folder.executionProvider,
      executionProviderReason: folder.executionProviderReason,
      session: (c, o) => folder.session(c, o),
    };
    const lm = await LanguageModel.fromModelFolder(source);
    assert.equal(lm.config.frameMarker, '[{ms}]');
    await lm.close();
  } finally {
    await folder.close();
  }
});

test('config schema: text_config wins over the top level; wrong types and unknown schemes are WINNOW_ERR_MODEL_CONFIG', async () => {
  const c = parseLanguageModelConfig(
    { image_token_index: 3, hidden_size: 64, num_attention_heads: 4, text_config: { hidden_size: 32, eos_token_id: [2, 7], pad_token_id: null } },
    { eos_token_id: 5, max_new_tokens: 9, do_sample: true, temperature: 0.5 },
  );
  assert.equal(c.hiddenSize, 32);
  assert.equal(c.headDim, 8);
  assert.equal(c.numKeyValueHeads, 4);
  assert.deepEqual(c.eosTokenIds, [2, 7, 5]);
  assert.equal(c.padTokenId, null);
  assert.deepEqual(c.generation, { doSample: true, temperature: 0.5, topK: 0, topP: 1, maxNewTokens: 9 });
  assert.equal(c.maxPositionEmbeddings, 4096);
  assert.equal(parseLanguageModelConfig({ image_token_id: 1, winnow: { visual_position_scheme: 'default' } }, null).visualPositionScheme, 'sequential');
  for (const [config, generation] of [
    [{ image_token_index: 3, num_hidden_layers: 'four' }, null],
    [{ image_token_index: 3, text_config: { eos_token_id: 'x' } }, null],
    [{ image_token_index: 3 }, { top_p: 2 }],
    [{ image_token_index: 3, winnow: { visual_position_scheme: 'weird' } }, null],
  ] as const) {
    assert.throws(() => parseLanguageModelConfig(config, generation), { code: 'WINNOW_ERR_MODEL_CONFIG' });
  }
  // The folder side reads the same keys from the same parse.
  const m = parseModelConfig({ image_token_index: 3, text_config: { hidden_size: 32, num_hidden_layers: 2 }, hidden_size: 64 });
  assert.equal(m.hiddenSize, 32);
  assert.equal(languageModelConfig(m, undefined).numLayers, 2);
  assert.throws(() => languageModelConfig(parseModelConfig({}), undefined), { code: 'WINNOW_ERR_MODEL_CONFIG' });
});

test('config files: bad JSON is WINNOW_ERR_MODEL_CONFIG, a missing config.json WINNOW_ERR_MODEL_MISSING_FILE, no generation_config is fine', async () => {
  const d = join(tmp.dir, 'files');
  await writeTinyModel(d, {});
  await rm(join(d, 'generation_config.json'));
  const files = await loadModelConfigFiles(d);
  assert.equal(files.generation, undefined);
  assert.equal((await loadLanguageModelConfig(d)).generation.maxNewTokens, null);
  const good = await readFile(join(d, 'config.json'), 'utf8');
  await writeFile(join(d, 'config.json'), good.slice(0, -3));
  assert.equal((await rejection(loadLanguageModelConfig(d))).code, 'WINNOW_ERR_MODEL_CONFIG');
  await rm(join(d, 'config.json'));
  const e = await rejection(LanguageModel.load(d));
  assert.equal(e.code, 'WINNOW_ERR_MODEL_MISSING_FILE');
  assert.equal(e.details.file, join(d, 'config.json'));
});
