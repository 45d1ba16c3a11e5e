// Ingest benchmark: frames/s of openVideo vs bare `ffmpeg … -f null -` on the same generated 1080p file, same
// sampling (select filter), same output size and pixel format, run alternately in one process; the ratio
// openVideo/bare is what to read (target ≥ 0.9). The difference is what ingest adds: showinfo timestamps, the
// stdout pipe, cutting frames, and delivery through the Observable.
//   node --import tsx bench/ingest/ingest.bench.ts [--quick] [--seconds 10] [--repeats 3] [--ffmpeg PATH]
// --quick (what `npm run bench -- --quick` passes): a 3-second file and one run per config, unless set.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { lastValueFrom, reduce } from 'rxjs';
import { binaryVersion, buildScaleFilter, buildSelectFilter, openVideo, resolveFfmpegPath } from '../../src/ingest/index.js';
import type { FrameSize } from '../../src/ingest/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const quick = process.argv.includes('--quick');
const SECONDS = Number(arg('seconds', quick ? '3' : '10'));
const REPEATS = Number(arg('repeats', quick ? '1' : '3'));
const ffmpeg = arg('ffmpeg', '') || resolveFfmpegPath({ env: { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } }).path;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// This machine is shared (load ≫ cores), so wall time is mostly scheduler luck. CPU time is steadier: this
// process's own (process.cpuUsage) plus that of its reaped children (cutime+cstime in /proc/self/stat, Linux).
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
function cpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  const children = ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK; // cutime, cstime (fields 16, 17)
  const self = process.cpuUsage();
  return children + (self.user + self.system) / 1000;
}
interface Run {
  wallMs: number;
  cpuMs: number;
}
async function measure(fn: () => Promise<unknown>): Promise<Run> {
  const c0 = cpuMs();
  const t0 = performance.now();
  await fn();
  return { wallMs: performance.now() - t0, cpuMs: cpuMs() - c0 };
}

interface Config {
  name: string;
  fps: number | 'source';
  size?: FrameSize;
}
const CONFIGS: Config[] = [
  { name: 'fps 1, 112x112 pad (model input)', fps: 1, size: { width: 112, height: 112 } },
  { name: 'every frame, 112x112 pad', fps: 'source', size: { width: 112, height: 112 } },
  { name: 'fps 5, 1920x1080 native', fps: 5 },
  { name: 'every frame, 1920x1080 native', fps: 'source' },
];

function bareFilter(c: Config): string {
  const parts: string[] = [];
  if (c.fps !== 'source') parts.push(buildSelectFilter(c.fps));
  if (c.size) parts.push(buildScaleFilter(c.size, 'pad'));
  return parts.length ? parts.join(',') : 'null';
}

async function bare(file: string, c: Config): Promise<void> {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', file, '-map', '0:v:0', '-an', '-vf', bareFilter(c), '-vsync', 'passthrough', '-pix_fmt', 'rgb24', '-f', 'null', '-'];
  await new Promise<void>((res, rej) => {
    const p = spawn(ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => (code === 0 ? res() : rej(new Error(err))));
  });
}

/** ffmpeg → stdout pipe → Node, bytes counted and dropped: the floor any pipe-based reader pays. */
async function rawPipe(file: string, c: Config): Promise<void> {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', file, '-map', '0:v:0', '-an', '-vf', bareFilter(c), '-vsync', 'passthrough', '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'];
  await new Promise<void>((res, rej) => {
    const p = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let bytes = 0;
    p.stdout.on('data', (b: Buffer) => (bytes += b.length));
    p.on('close', (code) => (code === 0 && bytes > 0 ? res() : rej(new Error(`exit ${code}`))));
  });
}

async function ours(file: string, c: Config): Promise<number> {
  return lastValueFrom(
    openVideo(file, { ffmpegPath: ffmpeg, fps: c.fps, ...(c.size ? { size: c.size, resize: 'pad' as const } : {}) }).pipe(reduce((n) => n + 1, 0)),
  );
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'winnow-ingest-bench-'));
  try {
    const file = join(work, 'bench-1080p.mp4');
    const gen = spawnSync(ffmpeg, [
      '-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
      '-f', 'lavfi', '-i', `testsrc2=size=1920x1080:rate=30:duration=${SECONDS}`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', file,
    ]);
    if (gen.status !== 0) throw new Error(gen.stderr.toString());
    console.log(`${await binaryVersion(ffmpeg)}`);
    console.log(`file: ${SECONDS} s of 1920x1080 H.264 at 30 fps; median of ${REPEATS} alternating runs; ${cpus().length} cores, load ${loadavg()[0].toFixed(1)}\n`);
    console.log('frames/s by wall clock (and by CPU time: frames per CPU-second of ffmpeg + node)');
    console.log('config                              frames   bare ffmpeg -f null   raw pipe        openVideo       ratio wall   ratio cpu');
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (const c of CONFIGS) {
      const runs: Record<'bare' | 'raw' | 'ours', Run[]> = { bare: [], raw: [], ours: [] };
      const frames = await ours(file, c); // warm the page cache and the JIT for this config
      for (let i = 0; i < REPEATS; i++) {
        runs.bare.push(await measure(() => bare(file, c)));
        runs.raw.push(await measure(() => rawPipe(file, c)));
        runs.ours.push(await measure(() => ours(file, c)));
      }
      const fps = (rs: Run[], k: keyof Run): number => (frames * 1000) / median(rs.map((r) => r[k]));
      const cell = (rs: Run[]): string => `${fps(rs, 'wallMs').toFixed(1)} (${fps(rs, 'cpuMs').toFixed(1)})`.padEnd(15);
      const ratio = fps(runs.ours, 'wallMs') / fps(runs.bare, 'wallMs');
      const cpuRatio = fps(runs.ours, 'cpuMs') / fps(runs.bare, 'cpuMs');
      ratios.push(ratio);
      cpuRatios.push(cpuRatio);
      console.log(
        `${c.name.padEnd(35)} ${String(frames).padStart(6)}   ${cell(runs.bare)}       ${cell(runs.raw)} ${cell(runs.ours)} ${ratio.toFixed(2).padStart(10)}   ${cpuRatio.toFixed(2).padStart(9)}`,
      );
    }
    console.log(`\nratio openVideo/bare per config, wall: ${ratios.map((r) => r.toFixed(2)).join(', ')}; CPU: ${cpuRatios.map((r) => r.toFixed(2)).join(', ')} (target ≥ 0.9)`);
    console.log('raw pipe = ffmpeg writing rawvideo to a Node pipe with no framing: the cost of moving the pixels out of ffmpeg.');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
