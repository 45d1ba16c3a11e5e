// End-to-end benchmark: a 10-minute rendered static-camera video sampled at 1 fps through the whole
// `winnow ask` pipeline on CPU (ffmpeg decode → vision encoder → pruning → LLM prefill → one
// answer). Figure: seconds of video processed per wall-clock second (target ≥ 20× real time), and
// the peak RSS of the process. Each run is its own child process (so peak RSS is per run); default
// pruning and no pruning alternate (A B A B …) so machine noise hits both alike, and their speed
// ratio is taken per adjacent pair. Model loading is timed apart from processing.
//   node --import tsx bench/e2e/e2e.bench.ts [--runs 3] [--minutes 10] [--threads N] [--quick]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveFfmpegPath } from '../../src/ingest/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const CODEBOOK = join(root, 'codebooks', 'winnow-tiny.safetensors');
const SEED = 4000;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

interface ChildResult {
  variant: string;
  loadS: number;
  processS: number;
  cpuS: number;
  videoS: number;
  frames: number;
  keptPerFrame: number;
  totalPerFrame: number;
  evictedFrames: number;
  maxRssMiB: number;
  answer: string;
}

/** One measured run (in a child process). */
async function child(): Promise<void> {
  const source = arg('source') as string;
  const variant = arg('variant') as string;
  const threads = arg('threads') ? Number(arg('threads')) : undefined;
  const { AskPipeline } = await import('../../src/cli/commands/ask.js');
  const t0 = performance.now();
  const pipeline = await AskPipeline.load({ fps: 1, ...(variant === 'none' ? { strategy: 'none' } : {}), ...(threads ? { threads } : {}) }, { log: () => undefined });
  const loadS = (performance.now() - t0) / 1000;
  const c0 = process.cpuUsage();
  const t1 = performance.now();
  const [a] = await pipeline.run(source, ['how many circles appeared?'], { log: () => undefined });
  const processS = (performance.now() - t1) / 1000;
  const c = process.cpuUsage(c0);
  await pipeline.close();
  const r: ChildResult = {
    variant,
    loadS,
    processS,
    cpuS: (c.user + c.system) / 1e6,
    videoS: a.frames, // 1 fps
    frames: a.frames,
    keptPerFrame: a.keptTokens / Math.max(1, a.frames - a.evictedFrames),
    totalPerFrame: a.totalTokens / Math.max(1, a.frames - a.evictedFrames),
    evictedFrames: a.evictedFrames,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    answer: a.answer,
  };
  process.stdout.write(`E2E_RESULT ${JSON.stringify(r)}\n`);
}

function runChild(source: string, variant: string, threads: string | undefined): Promise<ChildResult> {
  return new Promise((res, rej) => {
    const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--source', source, '--variant', variant, ...(threads ? ['--threads', threads] : [])];
    const p = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('E2E_RESULT '));
      if (code !== 0 || !line) rej(new Error(`child ${variant} exited ${code}: ${err.slice(-2000)}`));
      else res(JSON.parse(line.slice('E2E_RESULT '.length)) as ChildResult);
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
const fmt = (s: { median: number; min: number; max: number }, d = 1): string => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const minutes = Number(arg('minutes') ?? (quick ? 2 : 10));
  const runs = Number(arg('runs') ?? (quick ? 1 : 3));
  const threads = arg('threads');
  const { writeLongVideo } = await import('../../src/eval/index.js');
  const dir = join(tmpdir(), 'winnow-bench-e2e');
  const t0 = performance.now();
  const { path } = await writeLongVideo(dir, SEED, minutes, { ffmpegPath: resolveFfmpegPath({ env: { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } }).path });
  const renderS = (performance.now() - t0) / 1000;
  const haveCodebook = existsSync(CODEBOOK);
  const variants = haveCodebook ? ['default', 'none'] : ['none'];
  console.log(`End-to-end: ${minutes}-min rendered video (seed ${SEED}, 256×192, H.264) at 1 fps through decode → encode → prune → LLM → answer`);
  console.log(`video ready in ${renderS.toFixed(1)} s (${path}); ${runs} run(s) per variant, alternating, each in its own process; threads: ${threads ?? 'onnxruntime default'}`);
  if (!haveCodebook) console.log(`codebook ${CODEBOOK} not installed: only the unpruned pipeline is measured`);
  const results: Record<string, ChildResult[]> = Object.fromEntries(variants.map((v) => [v, []]));
  const ratios: number[] = [];
  for (let r = 0; r < runs; r++) {
    const pair: Record<string, ChildResult> = {};
    for (const v of variants) {
      const c = await runChild(path, v, threads);
      results[v].push(c);
      pair[v] = c;
      process.stderr.write(`run ${r + 1}/${runs} ${v}: ${(c.videoS / c.processS).toFixed(1)}× real time, ${c.maxRssMiB.toFixed(0)} MiB\n`);
    }
    if (pair.default && pair.none) ratios.push(pair.default.videoS / pair.default.processS / (pair.none.videoS / pair.none.processS));
  }
  console.log('\n| variant | kept tokens/frame | real-time factor (video s / wall s) | wall s for the video | CPU s | model load s | peak RSS MiB | frames evicted |');
  console.log('|---|---|---|---|---|---|---|---|');
  const summary: Record<string, unknown> = {};
  for (const v of variants) {
    const xs = results[v];
    const speed = stat(xs.map((x) => x.videoS / x.processS));
    const row = {
      keptPerFrame: xs[0].keptPerFrame,
      totalPerFrame: xs[0].totalPerFrame,
      realTimeFactor: speed,
      processS: stat(xs.map((x) => x.processS)),
      cpuS: stat(xs.map((x) => x.cpuS)),
      loadS: stat(xs.map((x) => x.loadS)),
      peakRssMiB: stat(xs.map((x) => x.maxRssMiB)),
      evictedFrames: xs[0].evictedFrames,
      frames: xs[0].frames,
    };
    summary[v] = row;
    console.log(
      `| ${v === 'default' ? 'default pruning (codebook)' : 'no pruning'} | ${row.keptPerFrame.toFixed(1)} of ${row.totalPerFrame.toFixed(0)} | ${fmt(speed)}× | ${fmt(row.processS)} | ${fmt(row.cpuS)} | ${fmt(row.loadS, 2)} | ${fmt(row.peakRssMiB, 0)} | ${row.evictedFrames} |`,
    );
  }
  const best = results.default ?? results.none;
  const target = median(best.map((x) => x.videoS / x.processS));
  console.log(`\nmedian (min–max) of ${runs} run(s). Target ≥ 20× real time: ${target >= 20 ? 'met' : 'NOT met'} (${target.toFixed(1)}×, ${variants[0]}).`);
  if (ratios.length) {
    const rs = stat(ratios);
    console.log(`speed-up of default pruning over none, per side-by-side pair: ${fmt(rs, 2)}×`);
    summary.speedupPrunedOverNone = rs;
  }
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'e2e', minutes, runs, seed: SEED, threads: threads ?? null, renderS, variants: summary, targetRealTime: 20, met: target >= 20 })}`);
}

if (process.argv.includes('--child')) await child();
else await main();
