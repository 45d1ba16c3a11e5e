// A standing question with a webhook: the server asks "is there a red triangle?" on the newest
// frames every few seconds of video and POSTs each result to a small receiver run here, which
// raises an alert when the answer turns to yes.
//
//   winnow serve --allow-webhook http://127.0.0.1:9099 &
//   node --import tsx examples/alert.ts clip.mp4 --hook-port 9099
//
// Options: --url ws://host:port/ --token T --question Q --every SECONDS --hook-port N.
// The video is pushed as fast as the server takes it (not live: no frame is dropped).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';

interface Args {
  file: string;
  url: string;
  token: string | undefined;
  question: string;
  everySeconds: number;
  hookPort: number;
}

function parseArgs(argv: string[]): Args {
  const out: Partial<Args> = { url: 'ws://127.0.0.1:8787/', token: process.env.WINNOW_TOKEN, question: 'is there a red triangle?', everySeconds: 2, hookPort: 9099 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') out.url = argv[++i];
    else if (a === '--token') out.token = argv[++i];
    else if (a === '--question') out.question = argv[++i];
    else if (a === '--every') out.everySeconds = Number(argv[++i]);
    else if (a === '--hook-port') out.hookPort = Number(argv[++i]);
    else if (!out.file) out.file = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!out.file) throw new Error('usage: alert.ts VIDEO [--url U] [--token T] [--question Q] [--every S] [--hook-port N]');
  return out as Args;
}

interface WatchPost {
  type: 'watch.result';
  session_id: string;
  id: string;
  question: string;
  answer: string;
  ptsMs: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // The webhook receiver: one JSON body per watch result.
  const received: WatchPost[] = [];
  let alerting = false;
  // Deliveries run concurrently and retries can reorder them: the newest video time decides the state.
  let newestPtsMs = -1;
  const hook = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const post = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WatchPost;
        received.push(post);
        const yes = /^yes\b/i.test(post.answer.trim());
        const t = `t=${Math.floor(post.ptsMs / 1000)}s`;
        const late = post.ptsMs < newestPtsMs;
        if (yes && !alerting && !late) process.stdout.write(`ALERT ${t}: "${post.question}" -> ${post.answer}\n`);
        else process.stdout.write(`webhook ${t}${late ? ' (late)' : ''}: "${post.question}" -> ${post.answer}\n`);
        if (!late) {
          newestPtsMs = post.ptsMs;
          alerting = yes;
        }
        res.writeHead(204).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => hook.listen(args.hookPort, '127.0.0.1', () => r()));
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alert`;

  const ws = new WebSocket(args.url, ['winnow.v1', ...(args.token ? [`winnow.bearer.${args.token}`] : [])]);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`server refused: HTTP ${res.statusCode} ${String(res.headers['x-winnow-error'] ?? '')}`)));
  });
  const send = (e: Record<string, unknown>): void => ws.send(JSON.stringify(e));
  let results = 0;
  let failed = false;
  const ended = new Promise<void>((resolve) => {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const e = JSON.parse(data.toString()) as { type: string; error?: { code: string; message: string } };
      if (e.type === 'watch.result') results++;
      if (e.type === 'source.ended') resolve();
      if (e.type === 'error') {
        failed = true;
        process.stderr.write(`server error ${e.error!.code}: ${e.error!.message}\n`);
      }
    });
    ws.on('close', () => resolve());
  });
  send({ type: 'session.update', session: { watch: [{ id: 'alert', question: args.question, everySeconds: args.everySeconds, webhook: hookUrl }] } });
  send({ type: 'input_video.start', format: 'mp4', live: false });
  const bytes = await readFile(args.file);
  for (let i = 0; i < bytes.length; i += 64 * 1024) ws.send(bytes.subarray(i, i + 64 * 1024));
  send({ type: 'input_video.end' });
  await ended;
  // The last result may still be in flight (answer, then the POST with retries).
  const t0 = Date.now();
  let last = -1;
  while (Date.now() - t0 < 15_000) {
    await new Promise((r) => setTimeout(r, 250));
    if (results > 0 && received.length >= results && last === results) break;
    last = results;
  }
  ws.close();
  hook.close();
  process.stderr.write(`${results} watch results, ${received.length} webhook posts\n`);
  if (failed || received.length === 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`alert: ${(e as Error).message}\n`);
  process.exit(1);
});
