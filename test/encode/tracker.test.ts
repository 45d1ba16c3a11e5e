// The temporal-identity tracker: its rule case by case, parity with the trainer's rule
// (tools/default-model/model.py track_ordinals) on real tower predictions, and the config that
// declares it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectTracker, parseModelConfig, type TemporalIdentitySpec } from '../../src/encode/index.js';

const here = import.meta.dirname;

/** winnow-tiny's classes: 0 background, 1 + shape·6 + colour; groups are shapes 1..3. */
function spec(over: Partial<TemporalIdentitySpec> = {}): TemporalIdentitySpec {
  const maxOrdinal = over.maxOrdinal ?? 9;
  const dim = over.dim ?? 4;
  const embeddings = new Float32Array(maxOrdinal * dim);
  // Row k−1 holds k in every column: added identities read back as the ordinal.
  for (let k = 1; k <= maxOrdinal; k++) embeddings.fill(k, (k - 1) * dim, k * dim);
  return {
    minPatches: 2,
    gapFrames: 2,
    maxOrdinal,
    classGroups: Int32Array.from({ length: 19 }, (_, c) => (c === 0 ? 0 : Math.floor((c - 1) / 6) + 1)),
    embeddings,
    dim,
    ...over,
  };
}

/** A 16-token frame holding `objects` as {class: token indices}. */
function frame(objects: Record<number, number[]> = {}): Int32Array {
  const f = new Int32Array(16);
  for (const [c, tokens] of Object.entries(objects)) for (const t of tokens) f[t] = Number(c);
  return f;
}

const RED_CIRCLE = 1;
const BLUE_CIRCLE = 3;
const RED_SQUARE = 7;

test('objects are numbered per shape in order of appearance and keep their number while present', () => {
  const t = new ObjectTracker(spec());
  assert.deepEqual([...t.observe(frame({ [RED_CIRCLE]: [0, 1] }))].slice(0, 2), [1, 1]);
  const f2 = t.observe(frame({ [RED_CIRCLE]: [1, 2], [RED_SQUARE]: [8, 9], [BLUE_CIRCLE]: [12, 13] }));
  assert.deepEqual([f2[1], f2[2], f2[8], f2[9], f2[12], f2[13]], [1, 1, 1, 1, 2, 2]);
  assert.equal(f2[0], 0, 'background carries no ordinal');
  const f3 = t.observe(frame({ [BLUE_CIRCLE]: [13, 14] }));
  assert.deepEqual([f3[13], f3[14]], [2, 2]);
  assert.equal(t.frames, 3);
});

test('a class missing for fewer than gapFrames frames is the same object; for gapFrames or more, a new one', () => {
  const t = new ObjectTracker(spec());
  t.observe(frame({ [RED_CIRCLE]: [0, 1] }));
  t.observe(frame()); // one frame without it: the tower missed it
  assert.equal(t.observe(frame({ [RED_CIRCLE]: [0, 1] }))[0], 1);
  t.observe(frame());
  t.observe(frame()); // two frames without it: gone
  assert.equal(t.observe(frame({ [RED_CIRCLE]: [4, 5] }))[4], 2, 'a second red circle, after the first left');
});

test('a class on fewer than minPatches tokens is neither counted nor marked', () => {
  const t = new ObjectTracker(spec());
  const f1 = t.observe(frame({ [RED_CIRCLE]: [3] }));
  assert.equal(f1[3], 0);
  assert.equal(t.observe(frame({ [BLUE_CIRCLE]: [5, 6] }))[5], 1, 'the lone token did not take ordinal 1');
  const f3 = t.observe(frame({ [BLUE_CIRCLE]: [5, 6], [RED_CIRCLE]: [9] }));
  assert.equal(f3[9], 0);
});

test('ordinals stop at maxOrdinal; reset starts the count again', () => {
  const t = new ObjectTracker(spec({ maxOrdinal: 2, gapFrames: 1 }));
  t.observe(frame({ [RED_CIRCLE]: [0, 1] }));
  t.observe(frame());
  t.observe(frame({ [RED_CIRCLE]: [0, 1] }));
  t.observe(frame());
  assert.equal(t.observe(frame({ [RED_CIRCLE]: [0, 1] }))[0], 2, 'the third circle shares the last ordinal');
  t.reset();
  assert.equal(t.frames, 0);
  assert.equal(t.observe(frame({ [RED_CIRCLE]: [0, 1] }))[0], 1);
});

test('addIdentity adds ordinal k’s embedding row to exactly the tokens that carry k', () => {
  const s = spec({ dim: 3 });
  const t = new ObjectTracker(s);
  t.observe(frame({ [RED_SQUARE]: [0, 1] }));
  const features = new Float32Array(16 * 3).fill(0.5);
  t.addIdentity(features, frame({ [RED_SQUARE]: [0, 1], [BLUE_CIRCLE]: [15, 14], [RED_CIRCLE]: [7] }));
  assert.deepEqual([...features.subarray(0, 3)], [1.5, 1.5, 1.5], 'square ordinal 1');
  assert.deepEqual([...features.subarray(15 * 3, 16 * 3)], [1.5, 1.5, 1.5], 'first circle: ordinal 1');
  assert.deepEqual([...features.subarray(7 * 3, 8 * 3)], [0.5, 0.5, 0.5], 'lone token untouched');
  assert.deepEqual([...features.subarray(3 * 3, 4 * 3)], [0.5, 0.5, 0.5], 'background untouched');
  assert.throws(() => t.addIdentity(new Float32Array(10), frame()), { code: 'WINNOW_ERR_MODEL_CONTRACT' });
});

test('a class id outside class_groups is a contract error, not a silent miss', () => {
  const t = new ObjectTracker(spec());
  assert.throws(() => t.observe(Int32Array.of(0, 19)), { code: 'WINNOW_ERR_MODEL_CONTRACT' });
  assert.throws(() => t.observe(Int32Array.of(-1)), { code: 'WINNOW_ERR_MODEL_CONTRACT' });
});

interface Fixture {
  min_patches: number;
  gap_frames: number;
  max_ordinal: number;
  class_groups: number[];
  num_tokens: number;
  videos: { classes: [number, number][][]; ordinals: [number, number][][]; max_ordinal_seen: number }[];
}

test('same ordinals as the trainer’s track_ordinals on the tower’s predictions for rendered videos', () => {
  const fx = JSON.parse(readFileSync(join(here, 'fixtures', 'track-ordinals.json'), 'utf8')) as Fixture;
  const s = spec({ minPatches: fx.min_patches, gapFrames: fx.gap_frames, maxOrdinal: fx.max_ordinal, classGroups: Int32Array.from(fx.class_groups) });
  assert.ok(fx.videos.length >= 3 && fx.videos.some((v) => v.max_ordinal_seen >= 3), 'the fixture holds videos with several objects of one shape');
  let marked = 0;
  for (const v of fx.videos) {
    const t = new ObjectTracker(s);
    v.classes.forEach((pairs, k) => {
      const classes = new Int32Array(fx.num_tokens);
      for (const [i, c] of pairs) classes[i] = c;
      const want = new Int32Array(fx.num_tokens);
      for (const [i, o] of v.ordinals[k]) want[i] = o;
      assert.deepEqual([...t.observe(classes)], [...want], `video frame ${k}`);
      marked += v.ordinals[k].length;
    });
  }
  assert.ok(marked > 100, `${marked} marked tokens`);
});

function configWith(identity: unknown): unknown {
  return { model_type: 'llava', text_config: { hidden_size: 2 }, winnow: { temporal_identity: identity } };
}

test('config.json winnow.temporal_identity is parsed, and a malformed one fails at load', () => {
  const ok = parseModelConfig(configWith({ min_patches: 2, gap_frames: 2, max_ordinal: 2, class_groups: [0, 1, 1], embeddings: [[1, 2], [3, 4]] }));
  const ti = ok.winnow.temporalIdentity!;
  assert.equal(ti.dim, 2);
  assert.deepEqual([...ti.embeddings], [1, 2, 3, 4]);
  assert.deepEqual([...ti.classGroups], [0, 1, 1]);
  assert.equal(parseModelConfig({ model_type: 'llava' }).winnow.temporalIdentity, undefined);
  for (const bad of [
    { min_patches: 2, gap_frames: 2, max_ordinal: 3, class_groups: [0, 1], embeddings: [[1, 2], [3, 4]] }, // rows ≠ max_ordinal
    { min_patches: 2, gap_frames: 2, max_ordinal: 2, class_groups: [0, 1], embeddings: [[1, 2, 3], [3, 4, 5]] }, // width ≠ hidden_size
    { min_patches: 0, gap_frames: 2, max_ordinal: 2, class_groups: [0, 1], embeddings: [[1, 2], [3, 4]] },
    { min_patches: 2, gap_frames: 2, max_ordinal: 2, class_groups: [0, -1], embeddings: [[1, 2], [3, 4]] },
  ]) {
    assert.throws(() => parseModelConfig(configWith(bad)), { code: 'WINNOW_ERR_MODEL_CONFIG' });
  }
});
