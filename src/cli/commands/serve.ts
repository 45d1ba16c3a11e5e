// `winnow serve`: the WebSocket video-QA server (docs/protocol.md). Environment is read here, at
// the entry point: WINNOW_TOKEN (instead of --token, which shows in `ps`), WINNOW_FFMPEG.
import { Command, InvalidArgumentError, Option } from 'commander';
import { codebookCheckOption, intAtLeastArg, positiveIntArg, type EncoderCheckPolicy, reportCommandError } from './options.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}

interface ServeOptions {
  host: string;
  port: number;
  model?: string;
  codebook?: string;
  codebookCheck?: EncoderCheckPolicy;
  token?: string;
  allowPath: string[];
  allowUrlScheme: string[];
  allowWebhook: string[];
  allowOrigin: string[];
  maxSessions?: number;
  maxQueuedFrames?: number;
  idleTimeoutMs?: number;
  maxPayload?: number;
  maxContextTokens?: number;
  maxQuestionChars?: number;
  maxNewTokens?: number;
  threads?: number;
  executionProvider?: 'cpu' | 'cuda' | 'auto';
  examples?: boolean;
  limit: Record<string, number>;
}

/** `--limit name=value`: any limit of docs/protocol.md by its name (checked by resolveLimits). */
function limitPair(v: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([A-Za-z]+)=(.+)$/.exec(v.trim());
  const n = m ? Number(m[2]) : Number.NaN;
  if (!m || !Number.isFinite(n)) throw new InvalidArgumentError('--limit takes NAME=NUMBER, e.g. --limit startGraceMs=5000');
  return { ...prev, [m[1]]: n };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('WebSocket video-QA server: push video or open sources, ask questions while it plays (docs/protocol.md)')
    .option('--host <host>', 'interface to bind (non-loopback requires --token)', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', intAtLeastArg('--port', 0), 8787)
    .option('--model <dir>', 'model folder (default: the bundled models/winnow-tiny)')
    .option('--codebook <file>', 'codebook .safetensors or .pt (default: the bundled one when installed)')
    .addOption(codebookCheckOption())
    .option('--token <t>', 'bearer token clients must send (or env WINNOW_TOKEN)')
    .option('--allow-path <dir>', 'let clients open files under DIR (repeatable)', collect, [])
    .option('--allow-url-scheme <s>', 'let clients open URLs with these schemes, e.g. rtsp,https (repeatable)', collect, [])
    .option('--allow-webhook <origin>', 'let standing questions POST to this origin, e.g. http://127.0.0.1:9000 (repeatable)', collect, [])
    .option('--allow-origin <origin>', 'browser Origin allowed to connect (repeatable; default: the server\'s own origin only)', collect, [])
    .option('--max-sessions <n>', 'concurrent sessions (default 16)', positiveIntArg('--max-sessions'))
    .option('--max-queued-frames <n>', 'frames queued per session (default 8)', positiveIntArg('--max-queued-frames'))
    .option('--idle-timeout-ms <n>', 'close sessions idle this long (default 300000)', positiveIntArg('--idle-timeout-ms'))
    .option('--max-payload <bytes>', 'largest WebSocket message (default 8388608)', positiveIntArg('--max-payload'))
    .option('--max-context-tokens <n>', 'KV-cache budget per session (default 4096)', positiveIntArg('--max-context-tokens'))
    .option('--max-question-chars <n>', 'longest question or standing question, characters (default 2000)', positiveIntArg('--max-question-chars'))
    .option('--max-new-tokens <n>', 'longest answer, tokens; sessions may ask for less (default 128)', positiveIntArg('--max-new-tokens'))
    .option('--limit <name=value>', 'any server limit by name, e.g. startGraceMs=5000 (repeatable; docs/protocol.md lists them)', limitPair, {})
    .option('--threads <n>', 'onnxruntime threads per session', positiveIntArg('--threads'))
    .addOption(new Option('--execution-provider <ep>', 'where the model runs: cuda fails if onnxruntime cannot create it, auto falls back to cpu').choices(['cpu', 'cuda', 'auto']).default('auto'))
    .addOption(new Option('--examples', 'serve examples/webcam.html at /examples/webcam.html'))
    .action(async (opts: ServeOptions) => {
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const { createServer } = await import('../../stream/index.js');
      const token = opts.token ?? process.env.WINNOW_TOKEN;
      const limits = {
        ...opts.limit,
        ...(opts.maxSessions ? { maxSessions: opts.maxSessions } : {}),
        ...(opts.maxQueuedFrames ? { maxQueuedFrames: opts.maxQueuedFrames } : {}),
        ...(opts.idleTimeoutMs ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
        ...(opts.maxPayload ? { maxPayloadBytes: opts.maxPayload } : {}),
        ...(opts.maxContextTokens ? { maxContextTokens: opts.maxContextTokens } : {}),
        ...(opts.maxQuestionChars ? { maxQuestionChars: opts.maxQuestionChars } : {}),
        ...(opts.maxNewTokens ? { maxNewTokens: opts.maxNewTokens } : {}),
      };
      let server: Awaited<ReturnType<typeof createServer>>;
      try {
        server = await createServer({
          host: opts.host,
          port: opts.port,
          ...(opts.model ? { model: opts.model } : {}),
          ...(opts.codebook ? { codebook: opts.codebook } : {}),
          ...(opts.codebookCheck ? { codebookCheck: opts.codebookCheck } : {}),
          ...(token ? { token } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          ...(opts.executionProvider ? { executionProvider: opts.executionProvider } : {}),
          allowPaths: opts.allowPath,
          allowUrlSchemes: opts.allowUrlScheme,
          allowWebhookOrigins: opts.allowWebhook,
          allowedOrigins: opts.allowOrigin,
          examples: opts.examples === true,
          limits,
          env: { ...(process.env.WINNOW_FFMPEG ? { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } : {}), ...(process.env.WINNOW_FFPROBE ? { WINNOW_FFPROBE: process.env.WINNOW_FFPROBE } : {}) },
          log,
        });
      } catch (e) {
        reportCommandError('serve', e);
        return;
      }
      const http = server.url.replace(/^ws/, 'http');
      // One machine-readable line on stdout (tests and supervisors read the port from it).
      process.stdout.write(`${JSON.stringify({ listening: server.url, metrics: `${http}metrics`, healthz: `${http}healthz`, ...(opts.examples ? { examples: `${http}examples/webcam.html` } : {}) })}\n`);
      log(`winnow serve: listening on ${server.url} (model ${server.engine.modelName} on ${server.engine.executionProviderReason}${token ? ', token required' : ''})`);
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log(`winnow serve: ${signal}, shutting down`);
        // Hard deadline: whatever hangs, the process exits (0: a requested shutdown is not a failure).
        const hard = setTimeout(() => process.exit(0), server.limits.shutdownDeadlineMs);
        hard.unref();
        server.close().then(
          () => process.exit(0),
          () => process.exit(0),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
