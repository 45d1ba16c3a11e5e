// `winnow serve`: WebSocket video-QA sessions over one shared engine, plus /metrics and /healthz
// on the same port (server/http-front.ts: auth, origins, HTTP routes). Each connection
// (server/connection.ts) is one Session; client events become Session calls in
// server/client-events.ts; this file bounds and parses messages, turns Session events into protocol
// events, and enforces limits, heartbeats and graceful shutdown.
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { WinnowError } from '../errors.js';
import type { FfmpegEnv } from '../ingest/types.js';
import type { Codebook, EncoderCheckPolicy } from '../prune/index.js';
import type { ExecutionProviderOption } from '../encode/index.js';
import type { SourcePolicyOptions } from '../ingest/index.js';
import { isLoopbackHost } from './access.js';
import { CLOSE_GOING_AWAY, CLOSE_IDLE, CLOSE_NO_INPUT, CLOSE_POLICY, CLOSE_SLOW_CONSUMER, CLOSE_TOO_MANY, Connection } from './server/connection.js';
import { ClientEvents } from './server/client-events.js';
import { HttpFront } from './server/http-front.js';
import { WinnowEngine } from './engine.js';
import { resolveLimits, type StreamLimits } from './limits.js';
import { StreamMetrics } from './metrics.js';
import { PROTOCOL_VERSION, parseClientEvent, type ServerEvent, type SessionDescription } from './protocol.js';
import { Session } from './session.js';
import { WebhookSender, type WebhookOptions } from './webhook.js';

export interface ServerOptions extends SourcePolicyOptions {
  /** Origins (`http://host:port`) standing questions' webhooks may target. Default none (webhooks refused). */
  allowWebhookOrigins?: readonly string[];
  /** Interface to bind. Default 127.0.0.1. Anything but loopback requires `token`. */
  host?: string;
  /** Default 8787; 0 picks a free port (see `server.port`). */
  port?: number;
  /** Bearer token clients must present (header or `winnow.bearer.<token>` subprotocol). */
  token?: string;
  /**
   * Browser origins allowed to connect (exact `scheme://host:port`). Default: only the server's own
   * origin (its example pages). Requests without Origin (non-browser clients) always pass.
   */
  allowedOrigins?: readonly string[];
  limits?: Partial<StreamLimits>;
  /** A loaded engine (shared, not closed by the server). Without it one is loaded from model/codebook. */
  engine?: WinnowEngine;
  model?: string;
  codebook?: string | Codebook;
  /** Engine option: a codebook built for another vision encoder is an error (default), a logged warning, or not checked. */
  codebookCheck?: EncoderCheckPolicy;
  threads?: number;
  /** Where the model runs (engine option; default 'auto': CUDA when available, else CPU). */
  executionProvider?: ExecutionProviderOption;
  /** Serve examples/ (webcam.html) under /examples/. Default false. */
  examples?: boolean;
  webhook?: Omit<WebhookOptions, 'onFailure' | 'onDelivered'>;
  ffmpegPath?: string;
  env?: FfmpegEnv;
  /** Human-readable log lines (connections, shutdown). Default: none. */
  log?: (line: string) => void;
  signal?: AbortSignal;
}


export class WinnowServer {
  readonly metrics = new StreamMetrics();
  readonly limits: StreamLimits;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly clientEvents: ClientEvents;
  private readonly connections = new Set<Connection>();
  private readonly webhooks: WebhookSender;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private idleTimer: ReturnType<typeof setInterval> | undefined;
  private closing: Promise<void> | undefined;
  private readonly log: (line: string) => void;
  private readonly front: HttpFront;

  constructor(
    readonly engine: WinnowEngine,
    private readonly ownsEngine: boolean,
    private readonly options: ServerOptions,
  ) {
    this.limits = resolveLimits(options.limits);
    // The front's getters read the server's live state (closing, connections) at each request.
    const server = this;
    this.clientEvents = new ClientEvents({ metrics: this.metrics, limits: this.limits, describe: (s) => this.describe(s) }, options);
    this.log = options.log ?? (() => undefined);
    this.webhooks = new WebhookSender({
      ...options.webhook,
      onFailure: (e) => this.metrics.errors.inc({ code: e.code }),
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.maxPayloadBytes,
      perMessageDeflate: false,
      // Browsers fail the handshake unless the server picks one of the offered subprotocols; the
      // version protocol is picked, never the bearer one (the token must not be echoed).
      handleProtocols: (protocols) => (protocols.has(PROTOCOL_VERSION) ? PROTOCOL_VERSION : false),
    });
    this.front = new HttpFront(
      {
        metrics: this.metrics,
        limits: this.limits,
        get shuttingDown() {
          return server.closing !== undefined;
        },
        get sessionCount() {
          return server.connections.size;
        },
        get modelName() {
          return server.engine.modelName;
        },
        ffmpegProcessCount: () => {
          let pids = 0;
          for (const c of this.connections) pids += c.session.stats.ffmpegPids.length;
          return pids;
        },
      },
      options,
    );
    this.http = createHttpServer((req, res) => void this.front.serve(req, res));
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_e, socket) => socket.destroy());
  }

  /** Binds and starts heartbeats. */
  async listen(): Promise<void> {
    const host = this.options.host ?? '127.0.0.1';
    const port = this.options.port ?? 8787;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new WinnowError('WINNOW_ERR_IO', `cannot listen on ${host}:${port}: ${e.message}`, { cause: e }));
      this.http.once('error', onError);
      this.http.listen(port, host, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
    this.heartbeat = setInterval(() => this.beat(), this.limits.heartbeatIntervalMs);
    this.heartbeat.unref();
    const idleCheck = Math.max(50, Math.min(5_000, Math.floor(Math.min(this.limits.idleTimeoutMs, this.limits.startGraceMs) / 4)));
    this.idleTimer = setInterval(() => this.checkIdle(), idleCheck);
    this.idleTimer.unref();
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  get host(): string {
    return (this.http.address() as AddressInfo).address;
  }

  /** ws://host:port/ */
  get url(): string {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `ws://${h}:${this.port}/`;
  }

  get sessionCount(): number {
    return this.connections.size;
  }

  /** The sessions of open connections (tests, embedding hosts). */
  get sessions(): Session[] {
    return [...this.connections].map((c) => c.session);
  }

  // ---- HTTP: everything before a connection exists is the front's (auth, origins, /healthz, /metrics) ----

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if (this.front.gateUpgrade(req, socket) === 'refused') return;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  // ---- connections ----------------------------------------------------------------------------------

  private describe(s: Session): SessionDescription {
    const c = s.config;
    return {
      id: s.id,
      model: this.engine.modelName,
      config: {
        fps: c.fps,
        resize: c.resize,
        pruning: { strategy: c.pruning.strategy ?? this.engine.defaultStrategy, ...c.pruning },
        maxContextTokens: c.maxContextTokens,
        generation: { ...c.generation },
        watch: c.watch.map((w) => ({ ...w })),
      },
      limits: { ...this.limits },
    };
  }

  private onConnection(ws: WebSocket): void {
    ws.on('error', (e: Error & { code?: string }) => {
      // ws has already closed with 1009 (too big) or 1002 (protocol); count it.
      this.metrics.errors.inc({ code: e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'WINNOW_ERR_MESSAGE_TOO_BIG' : 'WINNOW_ERR_PROTOCOL' });
    });
    if (this.closing) {
      ws.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    let holding = 0;
    for (const c of this.connections) if (!c.closing) holding++;
    if (holding >= this.limits.maxSessions) {
      this.metrics.errors.inc({ code: 'WINNOW_ERR_LIMIT_EXCEEDED' });
      ws.send(
        JSON.stringify({
          type: 'error',
          error: { code: 'WINNOW_ERR_LIMIT_EXCEEDED', message: `the server is at its limit maxSessions ${this.limits.maxSessions}`, event_id: null, details: { limit: 'maxSessions', max: this.limits.maxSessions } },
        } satisfies ServerEvent),
      );
      ws.close(CLOSE_TOO_MANY, 'too many sessions');
      return;
    }
    const session = new Session(this.engine, false, { limits: this.limits, webhooks: this.webhooks, ffmpegPath: this.options.ffmpegPath, env: this.options.env });
    const conn = new Connection(this, ws, session);
    this.connections.add(conn);
    this.metrics.sessionsTotal.inc();
    this.metrics.sessions.set(this.connections.size);
    this.wire(conn);
    conn.send({ type: 'session.created', session: this.describe(session) });
    ws.on('pong', () => (conn.alive = true));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // Liveness comes from pongs only: a client that sends but never reads must not look alive.
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      conn.chain = conn.chain.then(() => this.onMessage(conn, buf, isBinary)).catch((e: unknown) => conn.fail(e, undefined));
    });
    ws.on('close', () => {
      this.connections.delete(conn);
      this.metrics.sessions.set(this.connections.size);
      void session.close('disconnected');
    });
  }

  private wire(conn: Connection): void {
    const s = conn.session;
    const m = this.metrics;
    s.on('frame', (f) => {
      m.framesProcessed.inc();
      m.tokensKept.inc(f.kept);
      m.tokensTotal.inc(f.total);
      m.prefillSeconds.observe({ kind: 'frame' }, f.prefillMs / 1000);
      conn.send({ type: 'frame.processed', index: f.index, ptsMs: f.ptsMs, kept: f.kept, total: f.total, latencyMs: f.latencyMs });
    });
    s.on('dropped', (d) => {
      m.framesDropped.inc({ policy: d.policy }, d.count);
      conn.send({ type: 'input_video.dropped', count: d.count, total: d.total, policy: d.policy });
    });
    s.on('evicted', (e) => conn.send({ type: 'context.evicted', ...e }));
    s.on('source.opened', (source) => conn.send({ type: 'source.opened', source }));
    s.on('source.reconnecting', (r) => conn.send({ type: 'source.reconnecting', ...r }));
    s.on('source.ended', (e) => {
      // A closed input's source.ended waits for its frame in the model; a new input may have started meanwhile.
      if (e.source.kind === 'input_video' && conn.input && !s.inputActive) {
        conn.input = undefined;
        conn.resume();
      }
      if (e.error) m.errors.inc({ code: e.error.code });
      conn.send({
        type: 'source.ended',
        source: e.source,
        frames: e.frames,
        dropped: e.dropped,
        reason: e.reason,
        ...(e.error ? { error: { code: e.error.code, message: e.error.message } } : {}),
      });
    });
    s.on('prefilled', (p) => m.prefillSeconds.observe({ kind: p.kind === 'watch' ? 'watch' : 'question' }, p.prefillMs / 1000));
    s.on('watch', (w) => conn.send({ type: 'watch.result', ...w }));
    s.on('error', (e) => conn.fail(e, undefined));
    s.on('queued', () => m.framesIn.inc());
  }

  private async onMessage(conn: Connection, buf: Buffer, isBinary: boolean): Promise<void> {
    const s = conn.session;
    if (s.closed) return;
    s.touch();
    if (isBinary) return this.clientEvents.binary(conn, buf);
    if (buf.length > this.limits.maxTextMessageBytes) {
      conn.error('WINNOW_ERR_MESSAGE_TOO_BIG', `a JSON message has ${buf.length} bytes; the limit maxTextMessageBytes is ${this.limits.maxTextMessageBytes}`, undefined, {
        limit: 'maxTextMessageBytes',
        value: buf.length,
        max: this.limits.maxTextMessageBytes,
      });
      return;
    }
    const parsed = parseClientEvent(buf.toString('utf8'), this.limits);
    if (!parsed.ok) {
      conn.error('WINNOW_ERR_PROTOCOL', parsed.message, parsed.eventId, { reason: parsed.reason });
      return;
    }
    const ev = parsed.event;
    if (this.closing) {
      conn.error('WINNOW_ERR_SHUTTING_DOWN', 'the server is shutting down', ev.event_id);
      return;
    }
    try {
      await this.clientEvents.handle(conn, ev);
    } catch (e) {
      conn.fail(e, ev.event_id);
    }
  }

  private beat(): void {
    for (const c of this.connections) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  private checkIdle(): void {
    const now = Date.now();
    for (const c of this.connections) {
      const s = c.session;
      if (s.closed) continue;
      if (!c.startedInput && !s.inputActive && now - c.openedAtMs >= this.limits.startGraceMs) {
        c.error('WINNOW_ERR_IDLE_TIMEOUT', `no input started within ${this.limits.startGraceMs} ms (limit startGraceMs)`, undefined, { limit: 'startGraceMs', reason: 'no-input' });
        c.closeNow(CLOSE_NO_INPUT, 'no input');
        void s.close('idle');
        continue;
      }
      if (s.stats.pendingResponses > 0) continue;
      if (s.idleMs >= this.limits.idleTimeoutMs) {
        c.error('WINNOW_ERR_IDLE_TIMEOUT', `no message and no frame for ${this.limits.idleTimeoutMs} ms (limit idleTimeoutMs)`, undefined);
        c.closeNow(CLOSE_IDLE, 'idle timeout');
        void s.close('idle');
      }
    }
  }

  /**
   * Graceful shutdown: stop accepting, stop inputs (ffmpeg killed), let answers in flight finish for
   * `shutdownGraceMs` then cancel them (each gets its response.done), tell every client, close the
   * sockets; anything still open at `shutdownDeadlineMs` is terminated. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const L = this.limits;
    const t0 = Date.now();
    this.log(`shutting down: ${this.connections.size} session(s)`);
    clearInterval(this.heartbeat);
    clearInterval(this.idleTimer);
    const httpClosed = new Promise<void>((r) => this.http.close(() => r()));
    const conns = [...this.connections];
    for (const c of conns) {
      c.session.closeSource();
      c.input = undefined;
    }
    const graceEnd = t0 + L.shutdownGraceMs;
    while (Date.now() < graceEnd && conns.some((c) => !c.session.closed && c.session.stats.pendingResponses > 0)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const finals = conns.map(async (c) => {
      await c.session.close('shutdown');
      // Let the response.done of cancelled answers go out first.
      await new Promise((r) => setImmediate(r));
      c.error('WINNOW_ERR_SHUTTING_DOWN', 'the server is shutting down', undefined);
      c.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
    });
    const left = Math.max(0, L.shutdownDeadlineMs - (Date.now() - t0) - 500);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(finals), new Promise<void>((r) => (timer = setTimeout(r, left)))]);
    clearTimeout(timer);
    // Clients get a moment to answer the close handshake, then the rest is cut.
    const closeWait = Date.now() + Math.min(300, Math.max(0, L.shutdownDeadlineMs - (Date.now() - t0) - 200));
    while (Date.now() < closeWait && [...this.connections].some((c) => c.ws.readyState !== WebSocket.CLOSED)) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.connections) c.ws.terminate();
    for (const c of conns) void c.session.close('shutdown');
    this.webhooks.close();
    this.wss.close();
    this.http.closeAllConnections?.();
    await httpClosed;
    if (this.ownsEngine) await this.engine.close();
    this.log(`shut down in ${Date.now() - t0} ms`);
  }
}

/**
 * Loads the engine (unless given), binds, and returns the running server. Refuses to bind to a
 * non-loopback interface without a token.
 */
export async function createServer(options: ServerOptions = {}): Promise<WinnowServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && !options.token) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `refusing to listen on ${host} without a token: only loopback is allowed unauthenticated (pass --token)`);
  }
  if (options.token !== undefined && (options.token.length < 8 || /\s|,/.test(options.token))) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'the token must be at least 8 characters without spaces or commas');
  }
  resolveLimits(options.limits);
  const engine =
    options.engine ??
    (await WinnowEngine.load({
      ...(options.model ? { model: options.model } : {}),
      ...(options.codebook ? { codebook: options.codebook } : {}),
      ...(options.codebookCheck ? { codebookCheck: options.codebookCheck } : {}),
      ...(options.log ? { onWarning: (e: WinnowError) => options.log?.(`warning: ${e.message}`) } : {}),
      ...(options.threads ? { threads: options.threads } : {}),
      ...(options.executionProvider ? { executionProvider: options.executionProvider } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    }));
  const server = new WinnowServer(engine, options.engine === undefined, options);
  try {
    await server.listen();
  } catch (e) {
    if (!options.engine) await engine.close();
    throw e;
  }
  return server;
}

export { CLOSE_GOING_AWAY, CLOSE_IDLE, CLOSE_NO_INPUT, CLOSE_POLICY, CLOSE_SLOW_CONSUMER, CLOSE_TOO_MANY };
