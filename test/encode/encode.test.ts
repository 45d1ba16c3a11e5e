// The encode operator and the vision encoder against the real default model (models/winnow-tiny),
// with frames decoded by real ffmpeg through src/ingest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ort from 'onnxruntime-node';
import { Subject, firstValueFrom, from, lastValueFrom, toArray } from 'rxjs';
import { encode, loadModel, poolTokenGrid, type EncodeBatchStats, type ModelFolder } from '../../src/encode/index.js';
import { openVideo, type Frame } from '../../src/ingest/index.js';
import type { EncodedFrame } from '../../src/prune/types.js';
import { MODEL_DIR, ffmpegSync, fileTempDir, modelSkip, waitUntil } from '../shared/index.js';

const work = fileTempDir('winnow-encode-op-');
let model: ModelFolder;
let video: string;
let frames256: Frame[];

before(async () => {
  assert.equal(modelSkip, false, 'these tests run on the bundled model');
  model = await loadModel(MODEL_DIR, { executionProvider: 'cpu', intraOpThreads: 2, components: ['vision_encoder'] });
  video = join(work.dir, 'testsrc.mp4');
  ffmpegSync(['-f', 'lavfi', '-i', 'testsrc2=size=256x192:rate=10:duration=2.4', '-pix_fmt', 'yuv420p', video]);
  frames256 = await lastValueFrom(openVideo(video, { fps: 'source' }).pipe(toArray()));
  assert.equal(frames256.length, 24);
});

after(async () => {
  await model?.close();
});

const cosine = (a: Float32Array, b: Float32Array): number => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
};

test('the vision encoder reproduces the reference outputs exported with the model', async () => {
  const ref = JSON.parse(readFileSync(join(MODEL_DIR, 'reference_outputs.json'), 'utf8')) as {
    image_features: Array<{ token: number; dim: number; value: number }>;
    cls_similarity: Array<{ token: number; value: number }>;
    patch_classes?: number[];
  };
  // v[b,c,y,x] = 0.9·sin(0.07x + 0.13y + 1.7c + 0.5b), batch 1 (reference_outputs.json "pixel_pattern")
  const px = new Float32Array(3 * 112 * 112);
  for (let c = 0; c < 3; c++) for (let y = 0; y < 112; y++) for (let x = 0; x < 112; x++) px[c * 12544 + y * 112 + x] = 0.9 * Math.sin(0.07 * x + 0.13 * y + 1.7 * c);
  const out = await model.runVision(px, 1);
  const dim = model.vision.dim;
  for (const r of ref.image_features) assert.ok(Math.abs(out.features[0][r.token * dim + r.dim] - r.value) < 1e-4, `feature ${r.token},${r.dim}`);
  assert.ok(out.clsSimilarity, 'cls_similarity output');
  for (const r of ref.cls_similarity) assert.ok(Math.abs(out.clsSimilarity[0][r.token] - r.value) < 1e-4, `cls ${r.token}`);
  // A model with a temporal identity must ship its classes' reference, and every class must agree.
  assert.equal(ref.patch_classes !== undefined, model.config.winnow.temporalIdentity !== undefined);
  if (ref.patch_classes) assert.deepEqual([...out.patchClasses![0]], ref.patch_classes);
});

test('frames from ffmpeg come out in input order, batched, with the token grid of the contract', async () => {
  const batches: EncodeBatchStats[] = [];
  const done: number[] = [];
  const out = await lastValueFrom(
    from(frames256).pipe(
      encode(model, { batchSize: 4, maxInFlightBatches: 2, sourceId: 'cam', onBatch: (b) => batches.push(b), onFrameDone: (f) => done.push(f.index) }),
      toArray(),
    ),
  );
  assert.deepEqual(out.map((e) => e.frame.index), frames256.map((f) => f.index));
  assert.deepEqual(done, out.map((e) => e.frame.index));
  assert.deepEqual(batches.map((b) => b.size), [4, 4, 4, 4, 4, 4]);
  for (const e of out) {
    assert.equal(e.numTokens, 196);
    assert.equal(e.dim, model.config.hiddenSize);
    assert.deepEqual([e.gridH, e.gridW], [14, 14]);
    assert.equal(e.tokens.length, 196 * e.dim);
    assert.equal(e.clsSimilarity?.length, 196);
    assert.equal(e.sourceId, 'cam');
  }
  // Batch slicing: every frame's tokens equal a batch-of-1 run of the same frame.
  const single = await lastValueFrom(from([frames256[5], frames256[22]]).pipe(encode(model, { batchSize: 1 }), toArray()));
  for (const [k, idx] of [[0, 5], [1, 22]] as const) {
    let max = 0;
    for (let i = 0; i < single[k].tokens.length; i++) max = Math.max(max, Math.abs(single[k].tokens[i] - out[idx].tokens[i]));
    assert.ok(max < 1e-4, `frame ${idx}: max |Δ| ${max}`);
  }
  // Different frames give different tokens (nothing reused from a stale buffer).
  assert.ok(cosine(out[0].tokens, out[23].tokens) < 0.9999);
});

test('frames ffmpeg already fitted to 112×112 skip sharp and agree with sharp-fitted ones', async () => {
  const fitted = await lastValueFrom(
    openVideo(video, { fps: 'source', size: { width: 112, height: 112 }, resize: 'pad', maxFrames: 4 }).pipe(toArray()),
  );
  assert.deepEqual([fitted[0].width, fitted[0].height], [112, 112]);
  const a = await lastValueFrom(from(fitted).pipe(encode(model), toArray()));
  const b = await lastValueFrom(from(frames256.slice(0, 4)).pipe(encode(model), toArray()));
  for (let i = 0; i < 4; i++) {
    const c = cosine(a[i].tokens, b[i].tokens);
    assert.ok(c > 0.99, `frame ${i}: cosine ${c}`);
  }
});

test('video mode pools 14×14 to 7×7 as config.json winnow.video_pooling says (avg)', async () => {
  assert.deepEqual(model.config.winnow.videoPooling, { stride: 2, mode: 'avg' });
  const frames = frames256.slice(0, 3);
  const full = await lastValueFrom(from(frames).pipe(encode(model), toArray()));
  // tracker: false: this is the pooling alone (test/encode/identity.test.ts adds the temporal identity).
  const pooled = await lastValueFrom(from(frames).pipe(encode(model, { video: true, tracker: false }), toArray()));
  for (let i = 0; i < 3; i++) {
    const p = pooled[i];
    assert.deepEqual([p.numTokens, p.gridH, p.gridW], [49, 7, 7]);
    const ref = poolTokenGrid(full[i].tokens, 14, 14, p.dim, { stride: 2, mode: 'avg' });
    for (let j = 0; j < ref.tokens.length; j++) assert.ok(Math.abs(ref.tokens[j] - p.tokens[j]) < 1e-5);
    // Token (0,0) of the pooled grid is the mean of tokens (0,0),(0,1),(1,0),(1,1) by hand.
    const d = p.dim;
    const t = full[i].tokens;
    const hand = (t[0] + t[d] + t[14 * d] + t[15 * d]) / 4;
    assert.ok(Math.abs(p.tokens[0] - hand) < 1e-5);
    assert.equal(p.clsSimilarity?.length, 49);
  }
  const bil = await firstValueFrom(from(frames).pipe(encode(model, { video: true, pooling: { stride: 2, mode: 'bilinear' } })));
  assert.equal(bil.numTokens, 49);
});

test('a partial batch runs after maxWaitMs while the source stays open', async () => {
  const src = new Subject<Frame>();
  const got: EncodedFrame[] = [];
  const sizes: number[] = [];
  const sub = src.pipe(encode(model, { batchSize: 8, maxWaitMs: 30, onBatch: (b) => sizes.push(b.size) })).subscribe((e) => got.push(e));
  src.next(frames256[0]);
  src.next(frames256[1]);
  await waitUntil(() => got.length >= 2, 5000, 10);
  assert.deepEqual(got.map((e) => e.frame.index), [0, 1]);
  assert.deepEqual(sizes, [2]);
  sub.unsubscribe();
});

test('overflow: "error" fails with WINNOW_ERR_QUEUE_OVERFLOW; "drop-oldest" keeps order and counts drops', async () => {
  const many = Array.from({ length: 40 }, (_, i) => ({ ...frames256[i % 24], index: i }));
  await assert.rejects(lastValueFrom(from(many).pipe(encode(model, { batchSize: 2, maxInFlightBatches: 1, maxQueuedFrames: 8 }))), {
    code: 'WINNOW_ERR_QUEUE_OVERFLOW',
  });
  const stats: EncodeBatchStats[] = [];
  const done: number[] = [];
  const out = await lastValueFrom(
    from(many).pipe(
      encode(model, {
        batchSize: 2,
        maxInFlightBatches: 1,
        maxQueuedFrames: 8,
        overflow: 'drop-oldest',
        onBatch: (b) => stats.push(b),
        onFrameDone: (f) => done.push(f.index),
      }),
      toArray(),
    ),
  );
  const idx = out.map((e) => e.frame.index);
  assert.deepEqual(idx, [...idx].sort((a, b) => a - b));
  assert.equal(idx.at(-1), 39, 'the newest frames survive');
  assert.equal(out.length + stats.at(-1)!.droppedFrames, 40);
  assert.equal(done.length, 40, 'every frame is reported done, emitted or dropped');
});

test('openVideo ack$ + onFrameDone: a file source never overflows a small queue', async () => {
  const ack = new Subject<void>();
  const out = await lastValueFrom(
    openVideo(video, { fps: 'source', ack$: ack, maxInFlightFrames: 8 }).pipe(
      encode(model, { batchSize: 4, maxInFlightBatches: 2, maxQueuedFrames: 8, onFrameDone: () => ack.next() }),
      toArray(),
    ),
  );
  assert.equal(out.length, 24);
});

test('every onnxruntime tensor is disposed; unsubscribe and abort stop the work', async () => {
  const vision = await model.session('vision_encoder');
  const created = new Set<ort.Tensor>();
  const disposed = new Set<ort.Tensor>();
  const origRun = vision.session.run;
  const origDispose = ort.Tensor.prototype.dispose;
  const runSpy = async function (this: ort.InferenceSession, feeds: ort.InferenceSession.FeedsType, ...rest: unknown[]) {
    for (const t of Object.values(feeds)) created.add(t as ort.Tensor);
    const res = await (origRun as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>).call(this, feeds, ...rest);
    for (const t of Object.values(res)) created.add(t as ort.Tensor);
    return res;
  };
  Object.defineProperty(vision.session, 'run', { value: runSpy, configurable: true, writable: true });
  ort.Tensor.prototype.dispose = function (this: ort.Tensor) {
    disposed.add(this);
    return origDispose.call(this);
  };
  try {
    await lastValueFrom(from(frames256.slice(0, 6)).pipe(encode(model, { batchSize: 4 }), toArray()));
    const perRun = 1 + vision.session.outputNames.length;
    assert.equal(created.size, 2 * perRun, 'two runs × (pixel_values and every output: image_features, cls_similarity, patch_classes)');
    for (const t of created) assert.ok(disposed.has(t), 'tensor not disposed');

    // Unsubscribe after the first emission: no more values, running batches finish and are disposed.
    created.clear();
    const got: number[] = [];
    await new Promise<void>((resolve) => {
      const sub = from(frames256).pipe(encode(model, { batchSize: 2 })).subscribe((e) => {
        got.push(e.frame.index);
        sub.unsubscribe();
        resolve();
      });
    });
    await waitUntil(() => model.inflightRuns === 0, 5000, 5);
    await sleep(20);
    assert.deepEqual(got, [0]);
    assert.ok(created.size > 0);
    for (const t of created) assert.ok(disposed.has(t), 'tensor of a cancelled batch not disposed');

    // Abort: the stream errors with WINNOW_ERR_ABORTED.
    const ac = new AbortController();
    const p = lastValueFrom(from(frames256).pipe(encode(model, { batchSize: 2, signal: ac.signal })));
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(p, { code: 'WINNOW_ERR_ABORTED' });
  } finally {
    ort.Tensor.prototype.dispose = origDispose;
    Object.defineProperty(vision.session, 'run', { value: origRun, configurable: true, writable: true });
  }
});

test('closing the model under a running stream fails it with WINNOW_ERR_SESSION_CLOSED; close stays idempotent', async () => {
  const m = await loadModel(MODEL_DIR, { executionProvider: 'auto', components: ['vision_encoder'], warmUp: false });
  assert.equal(m.executionProvider, 'cpu');
  const p = lastValueFrom(from(frames256).pipe(encode(m, { batchSize: 2, maxInFlightBatches: 1 }), toArray()));
  setTimeout(() => void m.close(), 30);
  await assert.rejects(p, { code: 'WINNOW_ERR_SESSION_CLOSED' });
  await m.close();
  await m.close();
  assert.equal(m.inflightRuns, 0);
});
