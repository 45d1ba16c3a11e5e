// `winnow serve` under concurrent sessions: N = 1, 4, 16 clients on 127.0.0.1, each pushing a
// 1-fps stream (JPEG frames of a rendered synthetic-world video, sent in real time with
// input_video.frame, live) and asking a question every 5 s, for a fixed time. Reports frames
// processed per second (all sessions), dropped frames, answer latency p50/p95 (response.create →
// response.done, client side) and time to first token, and the server's RSS at start and end (from
// its own /metrics). After the window each client ends its input and waits for source.ended, whose
// counts are exact: every pushed JPEG is processed or reported dropped, so the bench also prints
// the backlog (frames still queued when the window closed, processed after it) and checks that
// nothing was lost (pushed = processed + dropped). The server is a separate process (`winnow serve`), so client work and
// memory do not colour its numbers. Not part of `npm test`.
//   node --import tsx bench/serve/serve.bench.ts [--quick] [--seconds 20] [--sessions 1,4,16]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { writeDataset } from '../../src/synth/index.js';
import { resolveFfmpegPath } from '../../src/ingest/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const quick = process.argv.includes('--quick');
const argOf = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const SECONDS = Number(argOf('seconds') ?? (quick ? 8 : 20));
const COUNTS = (argOf('sessions') ?? '1,4,16').split(',').map(Number);
const ASK_EVERY_MS = 5_000;
const QUESTIONS = ['how many circles appeared?', 'did a red square appear?', 'what color is the triangle?', 'is there a blue circle?'];

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function rssMiB(http: string): Promise<number> {
  const text = await (await fetch(`${http}metrics`)).text();
  const m = /^winnow_process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text);
  return m ? Math.round((Number(m[1]) / 2 ** 20) * 10) / 10 : NaN;
}

interface SessionResult {
  /** frame.processed during the push window. */
  frames: number;
  pushed: number;
  /** From source.ended (after the window): final per-input counts. */
  endedFrames: number;
  dropped: number;
  latencies: number[];
  ttfts: number[];
  errors: string[];
}

async function runSession(url: string, jpegs: Buffer[], seconds: number, offsetMs: number): Promise<SessionResult> {
  const ws = new WebSocket(url, ['winnow.v1']);
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  const r: SessionResult = { frames: 0, pushed: 0, endedFrames: -1, dropped: 0, latencies: [], ttfts: [], errors: [] };
  let windowOpen = true;
  let ended: () => void = () => undefined;
  const endedP = new Promise<void>((res) => (ended = res));
  const asked = new Map<string, number>();
  const pendingCreate: number[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const e = JSON.parse(data.toString()) as { type: string; [k: string]: unknown };
    if (e.type === 'frame.processed') r.frames += windowOpen ? 1 : 0;
    else if (e.type === 'source.ended') {
      r.endedFrames = Number(e.frames);
      r.dropped = Number(e.dropped);
      ended();
    }
    else if (e.type === 'response.created') asked.set((e.response as { id: string }).id, pendingCreate.shift() ?? performance.now());
    else if (e.type === 'response.done') {
      const resp = e.response as { id: string; status: string; timings: { ttftMs: number } };
      const t0 = asked.get(resp.id);
      if (t0 !== undefined && resp.status === 'completed') {
        r.latencies.push(performance.now() - t0);
        r.ttfts.push(resp.timings.ttftMs);
      }
    } else if (e.type === 'error') r.errors.push((e.error as { code: string }).code);
  });
  const send = (e: Record<string, unknown>): void => ws.send(JSON.stringify(e));
  send({ type: 'input_video.start', format: 'jpeg', live: true });
  // Sessions start staggered so their frames do not all land in the same instant.
  await new Promise((res) => setTimeout(res, offsetMs));
  const t0 = performance.now();
  let i = 0;
  let q = 0;
  let nextAsk = 3_000;
  while (performance.now() - t0 < seconds * 1000) {
    send({ type: 'input_video.frame', ptsMs: i * 1000 });
    ws.send(jpegs[i % jpegs.length]);
    i++;
    r.pushed++;
    const elapsed = performance.now() - t0;
    if (elapsed >= nextAsk) {
      nextAsk += ASK_EVERY_MS;
      send({ type: 'conversation.item.create', text: QUESTIONS[q++ % QUESTIONS.length] });
      pendingCreate.push(performance.now());
      send({ type: 'response.create' });
    }
    await new Promise((res) => setTimeout(res, Math.max(0, i * 1000 - (performance.now() - t0))));
  }
  windowOpen = false;
  send({ type: 'input_video.end' });
  // Let answers in flight and the queued frames finish (bounded).
  const tEnd = performance.now();
  while (r.latencies.length + r.errors.length < asked.size && performance.now() - tEnd < 15_000) await new Promise((res) => setTimeout(res, 50));
  // The bound's timer is cleared once source.ended arrives: left pending, it held the process open
  // for a minute after the last row.
  let bound: NodeJS.Timeout | undefined;
  await Promise.race([endedP, new Promise((res) => (bound = setTimeout(res, 60_000)))]);
  clearTimeout(bound);
  ws.close();
  return r;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'winnow-serve-bench-'));
  try {
    // 20 distinct 1-fps frames from a rendered video (256×192 JPEGs, as a camera snapshot stream).
    const { files } = await writeDataset({ outDir: work, seed: 41, stills: 0, videos: 1, durationS: 20 });
    const r = spawnSync(resolveFfmpegPath().path, ['-hide_banner', '-loglevel', 'error', '-i', files[0], '-vf', 'fps=1', '-q:v', '4', join(work, 'f%03d.jpg')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr}`);
    const jpegs = await Promise.all((await readdir(work)).filter((f) => f.endsWith('.jpg')).sort().map((f) => readFile(join(work, f))));

    const server = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'index.ts'), 'serve', '--port', '0', '--max-sessions', '32'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let serverErr = '';
    server.stderr.on('data', (d: Buffer) => (serverErr += d.toString()));
    const line = await new Promise<string>((res, rej) => {
      createInterface({ input: server.stdout }).once('line', res);
      server.once('exit', () => rej(new Error(`server exited: ${serverErr}`)));
    });
    const { listening } = JSON.parse(line) as { listening: string };
    const http = listening.replace(/^ws/, 'http');
    const rows: Record<string, number | string>[] = [];
    try {
      for (const n of COUNTS) {
        const rssStart = await rssMiB(http);
        const results = await Promise.all(Array.from({ length: n }, (_, k) => runSession(listening, jpegs, SECONDS, Math.round((k * 1000) / n))));
        const rssEnd = await rssMiB(http);
        await new Promise((res) => setTimeout(res, 500));
        const frames = results.reduce((s, x) => s + x.frames, 0);
        const dropped = results.reduce((s, x) => s + x.dropped, 0);
        const pushed = results.reduce((s, x) => s + x.pushed, 0);
        const unended = results.filter((x) => x.endedFrames < 0).length;
        const endedFrames = results.reduce((s, x) => s + Math.max(0, x.endedFrames), 0);
        // Queued when the window closed and processed after it.
        const backlog = endedFrames - frames;
        const lost = unended > 0 ? NaN : pushed - endedFrames - dropped;
        const lat = results.flatMap((x) => x.latencies);
        const ttft = results.flatMap((x) => x.ttfts);
        const errors = results.flatMap((x) => x.errors);
        rows.push({
          sessions: n,
          seconds: SECONDS,
          framesPerS: Math.round((frames / SECONDS) * 100) / 100,
          framesPerSPerSession: Math.round((frames / SECONDS / n) * 100) / 100,
          pushed,
          dropped,
          backlog,
          lost,
          answers: lat.length,
          latencyP50Ms: Math.round(pct(lat, 50)),
          latencyP95Ms: Math.round(pct(lat, 95)),
          ttftP50Ms: Math.round(pct(ttft, 50)),
          rssStartMiB: rssStart,
          rssEndMiB: rssEnd,
          errors: errors.length ? [...new Set(errors)].join(',') : '',
        });
        console.log(
          `N=${String(n).padStart(2)}  frames/s ${String(rows.at(-1)!.framesPerS).padStart(6)} (${rows.at(-1)!.framesPerSPerSession}/session of 1 pushed)  pushed ${pushed} dropped ${dropped} backlog ${backlog} lost ${unended > 0 ? `? (${unended} inputs did not end)` : lost}  ` +
            `answers ${lat.length}  latency p50 ${rows.at(-1)!.latencyP50Ms} ms p95 ${rows.at(-1)!.latencyP95Ms} ms (ttft p50 ${rows.at(-1)!.ttftP50Ms} ms)  RSS ${rssStart} → ${rssEnd} MiB${errors.length ? `  errors ${rows.at(-1)!.errors}` : ''}`,
        );
      }
      const first = rows[0];
      const last = rows[rows.length - 1];
      console.log(`p50 answer latency ${last.sessions} vs ${first.sessions} session(s): ${(Number(last.latencyP50Ms) / Number(first.latencyP50Ms)).toFixed(2)}×`);
      console.log(`BENCH_JSON ${JSON.stringify({ bench: 'serve', quick, input: 'jpeg 1 fps live', askEveryMs: ASK_EVERY_MS, rows })}`);
    } finally {
      server.kill('SIGTERM');
      await new Promise((res) => server.once('exit', res));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
