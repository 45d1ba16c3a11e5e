// The temporal identity end to end on the default model: a rendered video (real ffmpeg), the real
// vision encoder's patch classes, the tracker, and the identity that encode() adds to video frames.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import { ObjectTracker, encode, loadModel, poolTokenGrid, videoPooling, type ModelFolder } from '../../src/encode/index.js';
import { openVideo, type Frame } from '../../src/ingest/index.js';
import { COLORS, SHAPES, writeVideo, type TrackedObject, type VideoScene } from '../../src/synth/index.js';
import { MODEL_DIR, fileTempDir } from '../shared/index.js';

const work = fileTempDir('winnow-identity-');
let model: ModelFolder;
let frames: Frame[];

function still(id: number, shape: TrackedObject['shape'], color: TrackedObject['color'], x: number, y: number, appearMs: number, leaveMs: number): TrackedObject {
  return { id, shape, color, size: 'large', appearMs, leaveMs, segments: [{ tMs: appearMs, x, y, vxPxPerS: 0, vyPxPerS: 0 }] };
}

// Two red circles that never meet (the second comes after the first has left), a blue square
// throughout, and a green circle from 8 s.
const scene: VideoScene = {
  kind: 'video',
  width: 256,
  height: 192,
  fps: 10,
  durationMs: 12000,
  background: { name: 'gray', gradientAngleRad: 0.3, noiseSeed: 7 },
  objects: [
    still(0, 'circle', 'red', 60, 60, 0, 3000),
    still(1, 'square', 'blue', 200, 50, 0, 12000),
    still(2, 'circle', 'red', 180, 130, 6000, 12000),
    still(3, 'circle', 'green', 60, 140, 8000, 12000),
  ],
};


before(async () => {
  model = await loadModel(MODEL_DIR, { executionProvider: 'cpu', intraOpThreads: 2, components: ['vision_encoder'] });
  const mp4 = join(work.dir, 'apart.mp4');
  await writeVideo(scene, mp4);
  frames = await lastValueFrom(openVideo(mp4, { fps: 1 }).pipe(toArray()));
  assert.equal(frames.length, 12);
});

after(async () => {
  await model?.close();
});

test('the default model declares a temporal identity and its encoder classifies patches', () => {
  const spec = model.config.winnow.temporalIdentity;
  assert.ok(spec, 'config.json winnow.temporal_identity');
  assert.ok(model.vision.hasPatchClasses);
  assert.equal(spec.dim, model.vision.dim);
});

/** The tower's class of an object: 1 + shape·6 + colour (the shards' label format). */
function classOf(o: TrackedObject): number {
  return 1 + SHAPES.indexOf(o.shape) * COLORS.length + COLORS.indexOf(o.color);
}

test('objects are numbered by appearance from the tower’s own classes: the second red circle is circle 2', async () => {
  const full = await lastValueFrom(from(frames).pipe(encode(model, { video: false }), toArray()));
  const tracker = new ObjectTracker(model.config.winnow.temporalIdentity!);
  // Ordinal of each object while present: red circle 1, blue square 1, red circle (the second,
  // same colour, after the first had gone) 2, green circle 3.
  const want = [1, 1, 2, 3];
  for (let k = 0; k < full.length; k++) {
    assert.ok(full[k].patchClasses, 'patch classes');
    const classes = full[k].patchClasses!;
    const ordinals = tracker.observe(classes);
    const tMs = k * 1000;
    scene.objects.forEach((o, j) => {
      if (tMs < o.appearMs || tMs >= o.leaveMs) return;
      const tokens = [...classes.keys()].filter((i) => classes[i] === classOf(o));
      assert.ok(tokens.length >= 2, `frame ${k}: object ${j} seen on ${tokens.length} tokens`);
      assert.deepEqual(new Set(tokens.map((i) => ordinals[i])), new Set([want[j]]), `frame ${k}: object ${j}`);
    });
  }
});

test('encode() in video mode adds each ordinal’s embedding before pooling; tracker: false leaves it out', async () => {
  const spec = model.config.winnow.temporalIdentity!;
  const [withId, without, full] = await Promise.all([
    lastValueFrom(from(frames).pipe(encode(model, { video: true }), toArray())),
    lastValueFrom(from(frames).pipe(encode(model, { video: true, tracker: false }), toArray())),
    lastValueFrom(from(frames).pipe(encode(model, { video: false }), toArray())),
  ]);
  const tracker = new ObjectTracker(spec);
  const pooling = videoPooling(model);
  let marked = 0;
  for (let k = 0; k < frames.length; k++) {
    const ordinals = tracker.observe(full[k].patchClasses!);
    const grid = new Float32Array(196 * spec.dim);
    for (let i = 0; i < 196; i++) {
      if (!ordinals[i]) continue;
      marked++;
      grid.set(spec.embeddings.subarray((ordinals[i] - 1) * spec.dim, ordinals[i] * spec.dim), i * spec.dim);
    }
    const delta = poolTokenGrid(grid, 14, 14, spec.dim, pooling).tokens;
    assert.equal(withId[k].tokens.length, delta.length);
    let maxErr = 0;
    for (let j = 0; j < delta.length; j++) maxErr = Math.max(maxErr, Math.abs(withId[k].tokens[j] - without[k].tokens[j] - delta[j]));
    assert.ok(maxErr < 1e-5, `frame ${k}: max error ${maxErr}`);
    assert.equal(withId[k].patchClasses, undefined, 'a pooled frame drops the full-grid classes');
  }
  assert.ok(marked >= 12 * 4, `${marked} marked tokens`);
});
