// The prompt layout shared by the LM runtime and the codebook builder: prefix, frame markers,
// question placement and the position rule of each scheme.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { TextTokenizer, VideoPromptLayout, formatFrameMarker, parseLanguageModelConfig } from '../../src/llm/index.js';
import { fileTempDir } from '../shared/index.js';
import { writeTinyModel } from './tiny-model.js';

const tmp = fileTempDir('winnow-layout-');
let tokenizer: TextTokenizer;

before(async () => {
  await writeTinyModel(tmp.dir, {});
  tokenizer = await TextTokenizer.load(tmp.dir);
});

const layoutFor = (winnow: Record<string, unknown>, bos: number | null = 1): VideoPromptLayout =>
  new VideoPromptLayout(tokenizer, parseLanguageModelConfig({ image_token_index: 3, ...(bos === null ? {} : { bos_token_id: bos }), winnow }, null));

test('prefix is bos (none without one); the marker comes from the template; the question is the templated user turn', () => {
  const l = layoutFor({ visual_position_scheme: 'frame-shared', frame_marker: 't={s}s' });
  assert.deepEqual(l.prefixIds, [1]);
  assert.deepEqual(layoutFor({}, null).prefixIds, []);
  assert.equal(l.imageTokenId, 3);
  assert.equal(l.frameMarker(12_999), 't=12s');
  assert.equal(formatFrameMarker('{ms}ms', 12.6), '13ms');
  assert.deepEqual(l.frame(12_400, 4).markerIds, tokenizer.encode('t=12s'));
  assert.deepEqual(l.frame(0, 4, '').markerIds, []);
  assert.deepEqual(l.questionIds('is the circle red?'), tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: 'is the circle red?' }])));
});

test('frame-shared: a frame’s visual tokens share one position; sequential: they count up', () => {
  const shared = layoutFor({ visual_position_scheme: 'frame-shared' });
  const seq = layoutFor({});
  assert.equal(seq.scheme, 'sequential');
  // "t = 3 s": four marker tokens.
  const f = shared.frame(3000, 5);
  assert.equal(f.markerIds.length, 4);
  assert.deepEqual([f.visualCount, f.tokenCount, f.positionCount], [5, 9, 5]);
  assert.equal(seq.frame(3000, 5).positionCount, 9);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => shared.visualPosition(10, i)), [10, 10, 10, 10, 10]);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => seq.visualPosition(10, i)), [10, 11, 12, 13, 14]);
  // A frame pruned to nothing takes its marker's positions only.
  assert.deepEqual([shared.visualPositionCount(0), seq.visualPositionCount(0), shared.frame(0, 0).positionCount], [0, 0, 4]);
});
