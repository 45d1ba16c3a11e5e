// Encode benchmark on the default model (models/winnow-tiny):
//  - frames/s of the encode operator at batch sizes 1, 4, 8, for frames at the source size
//    (256×192, preprocessed with sharp) and frames ingest already fitted to 112×112 (no resize);
//  - the vision encoder alone (runVision on prepared pixel buffers);
//  - prune time as a share of encode time per frame (target < 5 %), still (196 tokens) and
//    video mode (49 tokens), with the bundled codebook when present, else one built from tokens.
// Ratios are measured within this one run (the machine is noisy). Run:
//   node --import tsx bench/encode/encode.bench.ts [--frames N]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, toArray } from 'rxjs';
import { encode, loadModel, type EncodeBatchStats } from '../../src/encode/index.js';
import { openVideo } from '../../src/ingest/index.js';
import { Pruner, type Codebook, type EncodedFrame } from '../../src/prune/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelDir = join(root, 'models', 'winnow-tiny');
const bundledCodebook = join(root, 'codebooks', 'winnow-tiny.safetensors');
const argFrames = process.argv.indexOf('--frames');
const N = argFrames > 0 ? Number(process.argv[argFrames + 1]) : 48;
const REPEATS = 3;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'winnow-encode-bench-'));
  try {
    const video = join(work, 'bench.mp4');
    const r = spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=256x192:rate=10:duration=${N / 10}`, '-pix_fmt', 'yuv420p', video]);
    if (r.status !== 0) throw new Error(r.stderr.toString());
    const native = await lastValueFrom(openVideo(video, { fps: 'source' }).pipe(toArray()));
    const fitted = await lastValueFrom(openVideo(video, { fps: 'source', size: { width: 112, height: 112 }, resize: 'pad' }).pipe(toArray()));

    const model = await loadModel(modelDir, { components: ['vision_encoder'] });
    const v = model.vision;
    console.log(`model ${modelDir}: ${v.numTokens} tokens × ${v.dim}, input ${v.imageWidth}×${v.imageHeight}, ${model.executionProviderReason}`);
    console.log(`${native.length} frames per run, best of ${REPEATS} runs, ${(await import('node:os')).cpus().length} cores, load average ${(await import('node:os')).loadavg()[0].toFixed(1)}\n`);

    // The vision encoder alone.
    const px = new Float32Array(8 * 3 * v.imageHeight * v.imageWidth);
    for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.001);
    const modelOnly = new Map<number, number>();
    for (const b of [1, 4, 8]) {
      await model.runVision(px, b);
      const runs = Math.max(3, Math.round(N / b));
      let bestFps = 0;
      for (let rep = 0; rep < REPEATS; rep++) {
        const t0 = performance.now();
        for (let i = 0; i < runs; i++) await model.runVision(px, b);
        bestFps = Math.max(bestFps, (runs * b * 1000) / (performance.now() - t0));
      }
      modelOnly.set(b, bestFps);
    }

    console.log('encode operator, frames/s (end to end: preprocess + vision encoder + copy-out):');
    console.log('batch | 256×192 (sharp fit+pad) | 112×112 from ingest | encoder alone | preprocess ms/frame | inference ms/frame');
    const perFrameMs = new Map<number, number>();
    for (const b of [1, 4, 8]) {
      const row: string[] = [String(b).padStart(5)];
      let pre = 0;
      let inf = 0;
      for (const [k, frames] of [['native', native], ['fitted', fitted]] as const) {
        // Warm-up pass so sharp and onnxruntime buffers for this batch shape exist.
        await lastValueFrom(from(frames.slice(0, b * 2)).pipe(encode(model, { batchSize: b, maxQueuedFrames: 1024 }), toArray()));
        // Best of REPEATS: other processes share this machine, the fastest run is the least disturbed.
        let stats: EncodeBatchStats[] = [];
        let ms = Infinity;
        for (let rep = 0; rep < REPEATS; rep++) {
          const runStats: EncodeBatchStats[] = [];
          const t0 = performance.now();
          await lastValueFrom(from(frames).pipe(encode(model, { batchSize: b, maxInFlightBatches: 2, maxQueuedFrames: 1024, onBatch: (x) => runStats.push(x) }), toArray()));
          const t = performance.now() - t0;
          if (t < ms) {
            ms = t;
            stats = runStats;
          }
        }
        row.push(`${((frames.length * 1000) / ms).toFixed(1)}`.padStart(k === 'native' ? 24 : 20));
        if (k === 'native') {
          pre = stats.reduce((a, s) => a + s.preprocessMs, 0) / frames.length;
          inf = stats.reduce((a, s) => a + s.inferenceMs, 0) / frames.length;
          perFrameMs.set(b, ms / frames.length);
        }
      }
      row.push(modelOnly.get(b)!.toFixed(1).padStart(14), pre.toFixed(2).padStart(20), inf.toFixed(2).padStart(18));
      console.log(row.join(' |'));
    }
    const best = Math.min(...perFrameMs.values());
    console.log(`\nspeed-up batch 4 vs 1: ${(perFrameMs.get(1)! / perFrameMs.get(4)!).toFixed(2)}×, batch 8 vs 1: ${(perFrameMs.get(1)! / perFrameMs.get(8)!).toFixed(2)}×`);

    // Prune share.
    const still = await lastValueFrom(from(native).pipe(encode(model, { batchSize: 8, maxQueuedFrames: 1024 }), toArray()));
    const pooled = await lastValueFrom(from(native).pipe(encode(model, { batchSize: 8, video: true, maxQueuedFrames: 1024 }), toArray()));
    let codebook: Codebook | string;
    let cbNote: string;
    if (existsSync(bundledCodebook)) {
      codebook = bundledCodebook;
      cbNote = bundledCodebook;
    } else {
      // Stand-in of a realistic size: 200 prototypes taken from the encoder's own tokens.
      const P = 200;
      const protos = new Float32Array(P * v.dim);
      for (let p = 0; p < P; p++) {
        const f = still[(p * 7) % still.length];
        const t = (p * 37) % f.numTokens;
        protos.set(f.tokens.subarray(t * v.dim, (t + 1) * v.dim), p * v.dim);
      }
      codebook = { prototypes: protos, count: P, dim: v.dim, dtype: 'F32', extraMetadata: {} };
      cbNote = `${P} prototypes sampled from encoder tokens (no codebooks/winnow-tiny.safetensors yet)`;
    }
    console.log(`\nprune share of encode time (codebook: ${cbNote}; encode time = best batch, ${best.toFixed(2)} ms/frame):`);
    console.log('strategy        | tokens | prune ms/frame (median) | share of encode');
    for (const strategy of ['threshold', 'ratio', 'double-softmax'] as const) {
      for (const [label, frames] of [['still', still], ['video', pooled]] as const) {
        const pruner = await Pruner.load({ codebook, strategy, tau: 0.9, ratio: 0.25 });
        const ms: number[] = [];
        for (const f of frames as EncodedFrame[]) {
          const t0 = performance.now();
          await pruner.prune(f);
          ms.push(performance.now() - t0);
        }
        await pruner.close();
        const m = median(ms.slice(2));
        console.log(
          `${strategy.padEnd(15)} | ${String(frames[0].numTokens).padStart(6)} | ${m.toFixed(3).padStart(23)} | ${((100 * m) / best).toFixed(2).padStart(13)} %  (${label})`,
        );
      }
    }
    await model.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
