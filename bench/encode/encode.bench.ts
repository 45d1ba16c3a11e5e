// Encode benchmark on the default model (models/winnow-tiny):
//  - frames/s of the encode operator at batch sizes 1, 4, 8, for frames at the source size
//    (256×192, preprocessed with sharp) and frames ingest already fitted to 112×112 (no resize);
//  - the vision encoder alone (runVision on prepared pixel buffers);
//  - prune time as a share of encode time per frame (target < 5 %), still (196 tokens) and
//    video mode (49 tokens), one frame per scoring run and 8 (an encode batch), with the shipped
//    codebook (or --codebook FILE) and the same codebook with near-duplicates merged; a stand-in
//    codebook sampled from tokens only when there is none (the table says so); the exact scorer
//    with 1 and with 2 onnxruntime threads;
//  - what pruning adds to a running stream: encode alone vs encode → prune (the operators as a
//    pipeline uses them), alternating runs.
// Ratios are measured within this one run (the machine is noisy); CPU-time columns are the
// better guide when other processes compete for the cores. Run:
//   node --import tsx bench/encode/encode.bench.ts [--quick] [--frames N] [--codebook FILE]
// --quick: 16 frames (unless --frames), a 96-frame stream and 3 alternating runs for the pipeline cost.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, toArray } from 'rxjs';
import { encode, loadModel, type EncodeBatchStats } from '../../src/encode/index.js';
import { openVideo, resolveFfmpegPath } from '../../src/ingest/index.js';
import { DEFAULT_MERGE_COSINE, mergeNearDuplicates } from '../../src/prune/build/merge.js';
import { Pruner, loadCodebook, prune, type Codebook } from '../../src/prune/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelDir = join(root, 'models', 'winnow-tiny');
const bundledCodebook = join(root, 'codebooks', 'winnow-tiny.safetensors');
const quick = process.argv.includes('--quick');
const argFrames = process.argv.indexOf('--frames');
const N = argFrames > 0 ? Number(process.argv[argFrames + 1]) : quick ? 16 : 48;
const STREAM_FRAMES = quick ? 96 : 384;
const STREAM_RUNS = quick ? 3 : 7;
const argCb = process.argv.indexOf('--codebook');
const argCodebook = argCb > 0 ? resolve(process.argv[argCb + 1]) : undefined;
/** CPU time of this process (all threads), ms: under contention it moves far less than wall time. */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const REPEATS = 3;


async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'winnow-encode-bench-'));
  try {
    const video = join(work, 'bench.mp4');
    const r = spawnSync(resolveFfmpegPath().path, ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=256x192:rate=10:duration=${N / 10}`, '-pix_fmt', 'yuv420p', video]);
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
    const encodeCpuMs = new Map<number, number>();
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
        let cpu = Infinity;
        for (let rep = 0; rep < REPEATS; rep++) {
          const runStats: EncodeBatchStats[] = [];
          const c0 = cpuMs();
          const t0 = performance.now();
          await lastValueFrom(from(frames).pipe(encode(model, { batchSize: b, maxInFlightBatches: 2, maxQueuedFrames: 1024, onBatch: (x) => runStats.push(x) }), toArray()));
          const t = performance.now() - t0;
          cpu = Math.min(cpu, cpuMs() - c0);
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
          encodeCpuMs.set(b, cpu / frames.length);
        }
      }
      row.push(modelOnly.get(b)!.toFixed(1).padStart(14), pre.toFixed(2).padStart(20), inf.toFixed(2).padStart(18));
      console.log(row.join(' |'));
    }
    const best = Math.min(...perFrameMs.values());
    const bestBatch = [...perFrameMs.entries()].find(([, v]) => v === best)![0];
    console.log(`\nspeed-up batch 4 vs 1: ${(perFrameMs.get(1)! / perFrameMs.get(4)!).toFixed(2)}×, batch 8 vs 1: ${(perFrameMs.get(1)! / perFrameMs.get(8)!).toFixed(2)}×`);

    // Prune share: the shipped codebook (or --codebook FILE), the same codebook merged the way
    // `winnow codebook build` now merges near-duplicates, and a stand-in only when neither exists.
    const still = await lastValueFrom(from(native).pipe(encode(model, { batchSize: 8, maxQueuedFrames: 1024 }), toArray()));
    const pooled = await lastValueFrom(from(native).pipe(encode(model, { batchSize: 8, video: true, maxQueuedFrames: 1024 }), toArray()));
    const codebooks: Array<{ label: string; codebook: Codebook }> = [];
    const cbPath = argCodebook ?? (existsSync(bundledCodebook) ? bundledCodebook : undefined);
    if (cbPath) {
      const shipped = await loadCodebook(cbPath);
      codebooks.push({ label: `${relative(root, cbPath) || cbPath}: ${shipped.count} × ${shipped.dim} ${shipped.dtype}`, codebook: shipped });
      const merged = mergeNearDuplicates(shipped.prototypes, shipped.count, shipped.dim, DEFAULT_MERGE_COSINE);
      if (merged.keep.length < shipped.count) {
        const protos = new Float32Array(merged.keep.length * shipped.dim);
        merged.keep.forEach((r, k) => protos.set(shipped.prototypes.subarray(r * shipped.dim, (r + 1) * shipped.dim), k * shipped.dim));
        codebooks.push({
          label: `the same merged at cosine ≥ ${DEFAULT_MERGE_COSINE} (codebook build's default): ${merged.keep.length} × ${shipped.dim}`,
          codebook: { ...shipped, prototypes: protos, count: merged.keep.length },
        });
      }
    } else {
      // Stand-in of a realistic size: 200 prototypes taken from the encoder's own tokens.
      const P = 200;
      const protos = new Float32Array(P * v.dim);
      for (let p = 0; p < P; p++) {
        const f = still[(p * 7) % still.length];
        const t = (p * 37) % f.numTokens;
        protos.set(f.tokens.subarray(t * v.dim, (t + 1) * v.dim), p * v.dim);
      }
      codebooks.push({ label: `STAND-IN: ${P} × ${v.dim} sampled from encoder tokens (no codebooks/winnow-tiny.safetensors)`, codebook: { prototypes: protos, count: P, dim: v.dim, dtype: 'F32', extraMetadata: {} } });
    }
    const encodeCpu = encodeCpuMs.get(bestBatch)!;
    console.log(`\nprune share of encode time (encode = best batch ${bestBatch}: ${best.toFixed(2)} ms/frame wall, ${encodeCpu.toFixed(2)} ms/frame CPU of all threads).`);
    console.log('Prune: best of 3 passes over the frames, one frame per call vs 8 frames per call (pruneBatch, what the prune() operator does with an encode batch); exact scorer with 1 and with 2 onnxruntime threads.');
    for (const { label, codebook } of codebooks) for (const threads of [1, 2]) {
      console.log(`\ncodebook ${label}, ${threads} scorer thread${threads > 1 ? 's' : ''}`);
      console.log('strategy        | tokens | 1/call ms/frame | 8/call ms/frame | 8/call CPU ms/frame | share of encode (wall) | share (CPU)');
      for (const strategy of ['threshold', 'ratio', 'double-softmax'] as const) {
        for (const [label2, frames] of [['still', still], ['video', pooled]] as const) {
          const pruner = await Pruner.load({ codebook, strategy, tau: codebook.defaults?.tau ?? 0.45, ratio: strategy === 'ratio' ? 0.25 : 0.5, index: { threads } });
          const timePasses = async (perCall: number): Promise<{ wall: number; cpu: number }> => {
            await pruner.pruneBatch(frames.slice(0, perCall)); // warm-up of this batch shape
            let wall = Infinity;
            let cpu = Infinity;
            for (let rep = 0; rep < REPEATS; rep++) {
              const c0 = cpuMs();
              const t0 = performance.now();
              for (let i = 0; i < frames.length; i += perCall) await pruner.pruneBatch(frames.slice(i, i + perCall));
              wall = Math.min(wall, (performance.now() - t0) / frames.length);
              cpu = Math.min(cpu, (cpuMs() - c0) / frames.length);
            }
            return { wall, cpu };
          };
          const one = await timePasses(1);
          const eight = await timePasses(8);
          await pruner.close();
          console.log(
            [
              strategy.padEnd(15),
              String(frames[0].numTokens).padStart(6),
              one.wall.toFixed(3).padStart(15),
              eight.wall.toFixed(3).padStart(15),
              eight.cpu.toFixed(3).padStart(19),
              `${((100 * eight.wall) / best).toFixed(2).padStart(20)} %`,
              `${((100 * eight.cpu) / encodeCpu).toFixed(2).padStart(9)} %  (${label2})`,
            ].join(' | '),
          );
        }
      }
    }
    // What pruning costs a running stream: the same frames through encode alone and through
    // encode → prune (the operators as a pipeline uses them; prune works on batch k while the
    // encoder runs batch k+1). Runs alternate so drift in the machine's load hits both alike.
    const stream = Array.from({ length: Math.max(STREAM_FRAMES, fitted.length) }, (_, i) => ({ ...fitted[i % fitted.length], index: i }));
    const shipped = codebooks[0].codebook;
    console.log(`\npipeline cost of pruning: ${stream.length} frames (112×112 from ingest), encode batch 8, best of ${STREAM_RUNS} alternating runs each.`);
    console.log('setting                         | encode alone ms/frame | encode → prune ms/frame | added time | CPU added');
    for (const [label, opts] of [
      [`default (${shipped.defaults?.strategy ?? 'ratio'}), 1 scorer thread`, {}],
      ['threshold, 1 scorer thread', { strategy: 'threshold' as const }],
      ['default, 2 scorer threads', { index: { threads: 2 } }],
      ['video mode (2×2 pooled), default', { video: true }],
    ] as const) {
      const { video: pooledMode, ...pruneOpts } = { video: false, ...opts };
      // Explicit defaults so a stand-in codebook (no metadata) runs the same rules.
      const pruner = await Pruner.load({ codebook: shipped, strategy: shipped.defaults?.strategy ?? 'ratio', tau: shipped.defaults?.tau ?? 0.45, ...pruneOpts });
      const enc = (): ReturnType<typeof encode> => encode(model, { batchSize: 8, maxInFlightBatches: 2, maxQueuedFrames: 1024, video: pooledMode });
      const timed = async (withPrune: boolean): Promise<{ wall: number; cpu: number }> => {
        const c0 = cpuMs();
        const t0 = performance.now();
        if (withPrune) await lastValueFrom(from(stream).pipe(enc(), prune(pruner, { maxQueuedFrames: 1024 }), toArray()));
        else await lastValueFrom(from(stream).pipe(enc(), toArray()));
        return { wall: (performance.now() - t0) / stream.length, cpu: (cpuMs() - c0) / stream.length };
      };
      await timed(true);
      const alone = { wall: Infinity, cpu: Infinity };
      const both = { wall: Infinity, cpu: Infinity };
      for (let rep = 0; rep < STREAM_RUNS; rep++) {
        for (const [acc, withPrune] of [[alone, false], [both, true]] as const) {
          const t = await timed(withPrune);
          acc.wall = Math.min(acc.wall, t.wall);
          acc.cpu = Math.min(acc.cpu, t.cpu);
        }
      }
      await pruner.close();
      console.log(
        [
          label.padEnd(31),
          alone.wall.toFixed(3).padStart(21),
          both.wall.toFixed(3).padStart(23),
          `${((100 * (both.wall - alone.wall)) / alone.wall).toFixed(2).padStart(8)} %`,
          `${((100 * (both.cpu - alone.cpu)) / alone.cpu).toFixed(2).padStart(7)} %`,
        ].join(' | '),
      );
    }
    await model.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
