// `npm run bench`: runs every benchmark under bench/<stage>/*.bench.ts, one after another, each in
// its own process (so one bench's memory and threads never colour the next), and writes
// bench/results.md and bench/results.json: per bench its output (the benches print their own
// medians, min/max and side-by-side ratios), exit status, wall time and peak RSS, plus which
// expected benches are missing. Not part of `npm test`.
//   npm run bench [-- --only e2e,llm] [--skip serve] [--quick] [--timeout-min 30]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
/** The benches the project plans (issue 8); others found under bench/ run too. */
const EXPECTED = ['ingest', 'encode', 'prune', 'llm', 'serve', 'e2e'];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const only = arg('only')?.split(',');
const skip = new Set(arg('skip')?.split(',') ?? []);
const quick = process.argv.includes('--quick');
const timeoutMs = Number(arg('timeout-min') ?? 30) * 60_000;

// Writes the child's peak RSS (KiB) to a file at exit; loaded with --import ahead of the bench.
const RSS_HOOK = `data:text/javascript,${encodeURIComponent('import{writeFileSync}from"node:fs";process.on("exit",()=>{const p=process.env.WINNOW_BENCH_RSS_FILE;if(p)try{writeFileSync(p,String(process.resourceUsage().maxRSS))}catch{}});')}`;

interface BenchRun {
  name: string;
  file: string;
  status: 'ok' | 'failed' | 'timeout';
  exitCode: number | null;
  wallS: number;
  peakRssMiB: number | null;
  stdout: string;
  stderrTail: string;
  /** Lines `BENCH_JSON {...}` the bench printed, parsed. */
  json: unknown[];
}

function discover(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const name of readdirSync(benchDir).sort()) {
    const d = join(benchDir, name);
    if (!statSync(d).isDirectory()) continue;
    const files = readdirSync(d).filter((f) => f.endsWith('.bench.ts')).sort();
    if (files.length) out.set(name, files.map((f) => join(d, f)));
  }
  return out;
}

async function runOne(name: string, file: string, rssFile: string): Promise<BenchRun> {
  const t0 = performance.now();
  const args = ['--import', RSS_HOOK, '--import', 'tsx', file, ...(quick ? ['--quick'] : [])];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WINNOW_BENCH_RSS_FILE: rssFile } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    process.stdout.write(d);
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    process.stderr.write(d);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  }, timeoutMs);
  const exitCode = await new Promise<number | null>((res) => child.on('close', (code) => res(code)));
  clearTimeout(timer);
  let peakRssMiB: number | null = null;
  if (existsSync(rssFile)) {
    peakRssMiB = Number(await readFile(rssFile, 'utf8')) / 1024;
    await rm(rssFile, { force: true });
  }
  const json: unknown[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('BENCH_JSON ')) continue;
    try {
      json.push(JSON.parse(line.slice('BENCH_JSON '.length)));
    } catch {
      // a malformed line stays in stdout
    }
  }
  return {
    name,
    file: relative(root, file),
    status: timedOut ? 'timeout' : exitCode === 0 ? 'ok' : 'failed',
    exitCode,
    wallS: (performance.now() - t0) / 1000,
    peakRssMiB,
    stdout: stdout.split('\n').filter((l) => !l.startsWith('BENCH_JSON ')).join('\n').trim(),
    stderrTail: stderr.slice(-4000),
    json,
  };
}

async function main(): Promise<void> {
  const found = discover();
  const names = [...new Set([...EXPECTED.filter((n) => found.has(n)), ...found.keys()])].filter((n) => (!only || only.includes(n)) && !skip.has(n));
  const missing = EXPECTED.filter((n) => !found.has(n));
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAvgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const startedAt = new Date().toISOString();
  console.log(`benches to run: ${names.join(', ') || '(none)'}; missing: ${missing.join(', ') || 'none'}${quick ? ' (quick)' : ''}`);
  const tmp = await mkdtemp(join(tmpdir(), 'winnow-bench-'));
  const runs: BenchRun[] = [];
  try {
    for (const name of names) {
      for (const file of found.get(name) ?? []) {
        console.log(`\n=== ${name}: ${relative(root, file)} ===`);
        runs.push(await runOne(name, file, join(tmp, `${name}-${runs.length}.rss`)));
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  const md: string[] = [];
  md.push('# Benchmark results');
  md.push('');
  md.push(`Generated by \`npm run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` (bench/run-all.ts) on ${startedAt}.`);
  md.push(`Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, Node ${machine.node}; load average at start ${machine.loadAvgAtStart.join(' / ')}.`);
  md.push('Each bench runs in its own process and prints its own figures (medians with min–max, and ratios measured side by side in the same run — this machine is noisy).');
  md.push('');
  md.push('| bench | file | status | wall s | peak RSS MiB (bench process; benches that spawn children report theirs below) |');
  md.push('|---|---|---|---|---|');
  for (const r of runs) md.push(`| ${r.name} | \`${r.file}\` | ${r.status}${r.exitCode ? ` (exit ${r.exitCode})` : ''} | ${r.wallS.toFixed(1)} | ${r.peakRssMiB === null ? '–' : r.peakRssMiB.toFixed(0)} |`);
  for (const n of missing) md.push(`| ${n} | – | missing (no bench/${n}/*.bench.ts yet) | – | – |`);
  for (const r of runs) {
    md.push('');
    md.push(`## ${r.name} (\`${r.file}\`)`);
    md.push('');
    md.push(r.stdout || '(no output)');
    if (r.status !== 'ok') {
      md.push('');
      md.push('stderr (tail):');
      md.push('```');
      md.push(r.stderrTail.trim());
      md.push('```');
    }
  }
  await writeFile(join(benchDir, 'results.md'), `${md.join('\n')}\n`);
  await writeFile(join(benchDir, 'results.json'), `${JSON.stringify({ startedAt, machine, quick, ran: runs.map((r) => r.name), missing, benches: runs }, null, 1)}\n`);
  console.log(`\nwrote bench/results.md and bench/results.json: ${runs.filter((r) => r.status === 'ok').length}/${runs.length} ok; missing: ${missing.join(', ') || 'none'}`);
  if (runs.some((r) => r.status !== 'ok')) process.exitCode = 1;
}

await main();
