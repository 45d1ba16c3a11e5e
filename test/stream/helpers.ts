// Helpers for the stream tests: a real ws client that records every event, rendered videos, the
// default model loaded once per test file, and `winnow serve` as a process. The repo-wide parts
// (paths, temp dirs, process checks) live in test/shared.
import { before, after } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { writeDataset, type VideoTruth } from '../../src/synth/index.js';
import { WinnowEngine, createServer, validateServerEvent } from '../../src/stream/index.js';
import type { ServerEvent, WinnowServer } from '../../src/stream/index.js';
import { CLI_ENTRY, MODEL_DIR, fileTempDir, modelSkip, spawnTsx } from '../shared/index.js';

// Re-exported for test/stream/fuzz and bench/fuzz-serve.ts, which import them from this file.
export { MODEL_DIR, isAlive as alive, modelSkip, repoRoot, tempDir } from '../shared/index.js';

let enginePromise: Promise<WinnowEngine> | undefined;
/** The default model, loaded once per test file (process). */
export function sharedEngine(): Promise<WinnowEngine> {
  enginePromise ??= WinnowEngine.load({ model: MODEL_DIR });
  return enginePromise;
}

/**
 * Registers this file's before/after hooks: a temp dir, `prepare(dir)` (render inputs) beside
 * loading the default model, then a real server on 127.0.0.1; after: server and engine closed
 * (the dir goes when the process exits). Nothing runs when the model is missing (the tests skip
 * on `modelSkip`).
 */
export function modelServer(prefix: string, prepare: (dir: string) => Promise<void> = async () => undefined): { readonly engine: WinnowEngine; readonly server: WinnowServer; readonly dir: string } {
  const tmp = fileTempDir(prefix);
  const state = {} as { engine: WinnowEngine; server: WinnowServer; dir: string };
  before(async () => {
    if (modelSkip) return;
    state.dir = tmp.dir;
    [state.engine] = await Promise.all([sharedEngine(), prepare(tmp.dir)]);
    state.server = await createServer({ port: 0, engine: state.engine });
  });
  after(async () => {
    if (modelSkip) return;
    await state.server?.close();
    await state.engine?.close();
  });
  return state;
}

/** Renders one synthetic-world video (H.264 MP4, faststart) with its ground truth. */
export async function renderVideo(dir: string, seed: number, durationS: number): Promise<{ mp4: string; truth: VideoTruth }> {
  const out = join(dir, `seed${seed}`);
  const { files } = await writeDataset({ outDir: out, seed, stills: 0, videos: 1, durationS });
  const mp4 = files[0];
  const truth = JSON.parse(await readFile(mp4.replace(/\.mp4$/, '.json'), 'utf8')) as VideoTruth;
  return { mp4, truth };
}

/** An answer as exact-match scoring compares it (the model card's rule): trimmed, lower case, no final stop. */
export const normAnswer = (s: string): string => s.trim().toLowerCase().replace(/[.!?]+$/, '');

export type AnyEvent = ServerEvent | { type: string; [k: string]: unknown };

export class TestClient {
  readonly events: AnyEvent[] = [];
  /** Events that did not match their schema (asserted empty on close). */
  readonly invalid: string[] = [];
  private waiters: { pred: (e: AnyEvent) => boolean; resolve: (e: AnyEvent) => void }[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((r) => ws.on('close', (code) => { this.closeCode = code; r(code); }));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const e = JSON.parse(data.toString()) as AnyEvent;
      // Every event on the wire must match its documented schema.
      const v = validateServerEvent(e);
      if (!v.ok) this.invalid.push(`${e.type}: ${v.message}`);
      this.events.push(e);
      for (const w of [...this.waiters]) {
        if (w.pred(e)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    });
    ws.on('error', () => undefined);
  }

  static connect(url: string, options: { token?: string; protocols?: string[]; headers?: Record<string, string>; autoPong?: boolean } = {}): Promise<TestClient> {
    const headers = { ...(options.headers ?? {}), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) };
    const ws = new WebSocket(url, options.protocols ?? [], { headers, autoPong: options.autoPong ?? true });
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        const err = new Error(`HTTP ${res.statusCode}`) as Error & { status?: number; code?: string };
        err.status = res.statusCode;
        err.code = String(res.headers['x-winnow-error'] ?? '');
        reject(err);
      });
      ws.once('error', reject);
    });
  }

  send(e: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(e));
  }

  sendRaw(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  /** The first recorded event (or the next one to arrive) of `type` matching `pred`. */
  wait<T extends AnyEvent = AnyEvent>(type: string, pred: (e: T) => boolean = () => true, timeoutMs = 20_000): Promise<T> {
    const match = (e: AnyEvent): boolean => e.type === type && pred(e as T);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen as T);
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${type}; got ${this.events.map((x) => x.type).join(', ')}`));
      }, timeoutMs);
      const w = {
        pred: match,
        resolve: (e: AnyEvent) => {
          clearTimeout(t);
          resolve(e as T);
        },
      };
      this.waiters.push(w);
    });
  }

  /** Waits for the next event of `type` arriving after now (ignores recorded ones). */
  next<T extends AnyEvent = AnyEvent>(type: string, pred: (e: T) => boolean = () => true, timeoutMs = 20_000): Promise<T> {
    const skip = new Set(this.events);
    return this.wait<T>(type, (e) => !skip.has(e) && pred(e), timeoutMs);
  }

  ofType<T extends AnyEvent = AnyEvent>(type: string): T[] {
    return this.events.filter((e) => e.type === type) as T[];
  }

  /** Asks a question and resolves with response.done (deltas collected). */
  async ask(question: string, extra: Record<string, unknown> = {}): Promise<{ id: string; text: string; deltas: string; done: Extract<ServerEvent, { type: 'response.done' }> }> {
    this.send({ type: 'conversation.item.create', text: question });
    const created = this.next<Extract<ServerEvent, { type: 'response.created' }>>('response.created', (e) => e.response.question === question);
    this.send({ type: 'response.create', ...extra });
    const id = (await created).response.id;
    const done = await this.wait<Extract<ServerEvent, { type: 'response.done' }>>('response.done', (e) => e.response.id === id, 60_000);
    const deltas = this.ofType<Extract<ServerEvent, { type: 'response.output_text.delta' }>>('response.output_text.delta')
      .filter((d) => d.response_id === id)
      .map((d) => d.delta)
      .join('');
    return { id, text: done.response.text, deltas, done };
  }

  async close(): Promise<number> {
    this.ws.close();
    const code = await this.closed;
    if (this.invalid.length) throw new Error(`server events not matching their schema:\n${this.invalid.join('\n')}`);
    return code;
  }
}

/** Pushes a file's bytes as one input_video (not live: nothing dropped) and waits for source.ended. */
export async function pushFile(c: TestClient, path: string, format = 'mp4', chunkBytes = 64 * 1024): Promise<Extract<ServerEvent, { type: 'source.ended' }>> {
  const bytes = await readFile(path);
  c.send({ type: 'input_video.start', format, live: false });
  const ended = c.next<Extract<ServerEvent, { type: 'source.ended' }>>('source.ended', () => true, 60_000);
  for (let i = 0; i < bytes.length; i += chunkBytes) c.sendRaw(bytes.subarray(i, i + chunkBytes), true);
  c.send({ type: 'input_video.end' });
  return ended;
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first line `winnow serve` prints once it listens (`listening`, `examples`); rejects if it exits first. */
  readonly ready: Promise<Record<string, string>>;
  /** Its stderr so far. */
  stderr(): string;
}

/** `winnow serve <args>` as a process (`env` added to this one's), its first stdout line awaited through `ready`. */
export function startServe(args: readonly string[], env: Record<string, string> = {}): ServeProcess {
  const child = spawnTsx(CLI_ENTRY, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const ready = new Promise<Record<string, string>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l) as Record<string, string>));
    child.once('exit', () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  ready.catch(() => undefined); // a test of a refused start awaits `exited` alone
  return { child, exited, ready, stderr: () => stderr };
}
