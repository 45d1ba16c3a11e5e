// Pushes a local video to `winnow serve` in real time (as a camera would) and asks questions while
// it plays; answers stream back as they are generated.
//
//   winnow serve &                                      # ws://127.0.0.1:8787/
//   node --import tsx examples/stream-file.ts clip.mp4 \
//     --ask-at 3 "how many circles appeared?" --ask-at 6 "did a red square appear?"
//
// ffmpeg (WINNOW_FFMPEG, else on PATH, else the build bundled with Winnow) remuxes the file to MPEG-TS at its native rate (-re), so the
// server sees a live stream. Options: --url ws://host:port/ --token T (or WINNOW_TOKEN).
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { resolveFfmpegPath } from '../src/ingest/index.js';

interface Question {
  atS: number;
  text: string;
}

function parseArgs(argv: string[]): { file: string; url: string; token: string | undefined; questions: Question[] } {
  let file: string | undefined;
  let url = 'ws://127.0.0.1:8787/';
  let token = process.env.WINNOW_TOKEN;
  const questions: Question[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') url = argv[++i];
    else if (a === '--token') token = argv[++i];
    else if (a === '--ask-at') {
      questions.push({ atS: Number(argv[++i]), text: argv[++i] });
    } else if (!file) file = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!file) throw new Error('usage: stream-file.ts VIDEO [--url ws://127.0.0.1:8787/] [--token T] [--ask-at SECONDS QUESTION]...');
  if (questions.length === 0) {
    questions.push({ atS: 3, text: 'how many circles appeared?' }, { atS: 6, text: 'did a red square appear?' });
  }
  if (questions.some((q) => !Number.isFinite(q.atS) || !q.text)) throw new Error('--ask-at takes SECONDS and a QUESTION');
  return { file, url, token, questions };
}

type ServerEvent = { type: string; [k: string]: unknown };

async function main(): Promise<void> {
  const { file, url, token, questions } = parseArgs(process.argv.slice(2));
  const protocols = ['winnow.v1', ...(token ? [`winnow.bearer.${token}`] : [])];
  const ws = new WebSocket(url, protocols);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`server refused: HTTP ${res.statusCode} ${String(res.headers['x-winnow-error'] ?? '')}`)));
  });
  const send = (e: Record<string, unknown>): void => ws.send(JSON.stringify(e));
  const pending = new Map<string, string>();
  let sourceEnded = false;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const maybeFinish = (): void => {
    if (sourceEnded && pending.size === 0 && asked === questions.length) finish();
  };
  let asked = 0;
  let frames = 0;

  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const e = JSON.parse(data.toString()) as ServerEvent;
    switch (e.type) {
      case 'frame.processed':
        frames++;
        break;
      case 'response.created': {
        const r = e.response as { id: string; question: string };
        pending.set(r.id, r.question);
        process.stdout.write(`Q: ${r.question}\nA: `);
        break;
      }
      case 'response.output_text.delta':
        process.stdout.write(String(e.delta));
        break;
      case 'response.done': {
        const r = e.response as { id: string; status: string; usage: { visualTokensKept: number; visualTokensTotal: number }; timings: { ttftMs: number } };
        pending.delete(r.id);
        process.stdout.write(`\n   [${r.status}; ${r.usage.visualTokensKept}/${r.usage.visualTokensTotal} visual tokens; first token after ${r.timings.ttftMs} ms]\n`);
        maybeFinish();
        break;
      }
      case 'input_video.dropped':
        process.stderr.write(`note: server dropped ${String(e.count)} frame(s) to keep up\n`);
        break;
      case 'source.ended':
        sourceEnded = true;
        maybeFinish();
        break;
      case 'error': {
        const err = e.error as { code: string; message: string };
        process.stderr.write(`server error ${err.code}: ${err.message}\n`);
        break;
      }
    }
  });
  ws.on('close', () => finish());

  send({ type: 'session.update', session: { fps: 1 } });
  send({ type: 'input_video.start', format: 'mpegts', live: true });
  const ffmpegPath = resolveFfmpegPath({ env: { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } }).path;
  const ffmpeg = spawn(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-i', file, '-an', '-c:v', 'copy', '-f', 'mpegts', 'pipe:1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  ffmpeg.stdout.on('data', (chunk: Buffer) => {
    ws.send(chunk);
    // Do not buffer without bound when the network is slower than the video.
    if (ws.bufferedAmount > 4 * 1024 * 1024) ffmpeg.stdout.pause();
  });
  const drain = setInterval(() => {
    if (ffmpeg.stdout.isPaused() && ws.bufferedAmount < 1024 * 1024) ffmpeg.stdout.resume();
  }, 50);
  const t0 = Date.now();
  const timers = questions.map((q) =>
    setTimeout(() => {
      asked++;
      process.stderr.write(`(asking at ${((Date.now() - t0) / 1000).toFixed(1)} s, ${frames} frames in)\n`);
      send({ type: 'conversation.item.create', text: q.text });
      send({ type: 'response.create' });
    }, q.atS * 1000),
  );
  ffmpeg.on('error', (e) => {
    process.stderr.write(`cannot run ffmpeg (${ffmpegPath}): ${e.message}\n`);
    process.exitCode = 1;
  });
  ffmpeg.on('close', (code) => {
    clearInterval(drain);
    if (code !== 0) process.stderr.write(`ffmpeg exited with ${code}\n`);
    // Questions scheduled after the end of the video are asked now, on the whole video.
    for (const [i, t] of timers.entries()) {
      if (i >= asked) {
        clearTimeout(t);
        asked++;
        send({ type: 'conversation.item.create', text: questions[i].text });
        send({ type: 'response.create' });
      }
    }
    send({ type: 'input_video.end' });
  });
  await finished;
  ws.close();
  process.stderr.write(`${frames} frames processed\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`stream-file: ${(e as Error).message}\n`);
  process.exit(1);
});
