// `winnow serve`: WebSocket video-QA sessions over one shared engine, plus /metrics and /healthz
// on the same port. Each connection is one Session; this file translates protocol events to
// Session calls and Session events to protocol events, and enforces auth, origins, limits,
// heartbeats and graceful shutdown.
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { WinnowError, toWinnowError, type WinnowErrorCode } from '../errors.js';
import type { FfmpegEnv } from '../ingest/types.js';
import type { Codebook, EncoderCheckPolicy } from '../prune/index.js';
import type { ExecutionProviderOption } from '../encode/index.js';
import { SourcePolicy, resolveFfmpegPath, type SourcePolicyOptions } from '../ingest/index.js';
import { AuthThrottle, BEARER_PROTOCOL_PREFIX, WebhookPolicy, bearerFrom, isLoopbackHost, tokensEqual } from './access.js';
import { WinnowEngine, packageRoot } from './engine.js';
import { resolveLimits, type StreamLimits } from './limits.js';
import { StreamMetrics } from './metrics.js';
import { PROTOCOL_VERSION, parseClientEvent, type ClientEvent, type ErrorDetails, type ServerEvent, type SessionDescription } from './protocol.js';
import { Session, type VideoInput } from './session.js';
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

const CLOSE_TOO_MANY = 1013;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const CLOSE_IDLE = 4000;
/** No input started within `startGraceMs`. */
const CLOSE_NO_INPUT = 4001;
/** The client did not read: `maxSendBufferBytes` of events were waiting for it. */
const CLOSE_SLOW_CONSUMER = 4002;

const STATIC_TYPES: Readonly<Record<string, string>> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

class Connection {
  alive = true;
  readonly openedAtMs = Date.now();
  /** Whether this connection ever started an input (it then holds its slot until idle). */
  startedInput = false;
  private slow = false;
  input: VideoInput | undefined;
  jpegPts: number | undefined;
  pendingQuestion: string | undefined;
  chain: Promise<void> = Promise.resolve();
  pendingJpegs = 0;
  paused = false;

  constructor(
    readonly server: WinnowServer,
    readonly ws: WebSocket,
    readonly session: Session,
  ) {}

  send(e: ServerEvent): void {
    if (this.ws.readyState !== WebSocket.OPEN || this.slow) return;
    // A client that does not read would make ws buffer every event without end.
    if (this.ws.bufferedAmount > this.server.limits.maxSendBufferBytes) {
      this.slow = true;
      this.server.metrics.errors.inc({ code: 'WINNOW_ERR_SLOW_CONSUMER' });
      // The close frame waits behind the unread data; a peer that never reads never sees it.
      this.closeNow(CLOSE_SLOW_CONSUMER, 'send buffer full');
      return;
    }
    this.ws.send(JSON.stringify(e));
  }

  /** Whether the server has closed (or is closing) this connection: it no longer holds a slot. */
  closing = false;

  /**
   * Closes with `code` and cuts the socket a second later whatever the peer does: ws would otherwise
   * wait 30 s for a close reply from a peer that never answers, holding the session slot meanwhile.
   */
  closeNow(code: number, reason: string): void {
    this.closing = true;
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), 1_000).unref();
  }

  error(code: WinnowErrorCode | string, message: string, eventId: string | undefined, details?: ErrorDetails): void {
    this.server.metrics.errors.inc({ code });
    this.send({ type: 'error', error: { code, message, event_id: eventId ?? null, ...(details && Object.keys(details).length ? { details } : {}) } });
  }

  fail(e: unknown, eventId: string | undefined): void {
    const err = toWinnowError(e);
    this.error(err.code, err.message, eventId, err.code === 'WINNOW_ERR_INTERNAL' ? undefined : safeDetails(err.details));
  }

  pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.ws.pause();
    }
  }

  resume(): void {
    if (this.paused) {
      this.paused = false;
      this.ws.resume();
    }
  }
}

/** Only plain JSON-safe facts leave the server (no stacks, no causes). */
function safeDetails(d: Record<string, unknown>): ErrorDetails | undefined {
  const out: ErrorDetails = {};
  for (const [k, v] of Object.entries(d)) {
    if (k === 'stderr') continue;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

export class WinnowServer {
  readonly metrics = new StreamMetrics();
  readonly limits: StreamLimits;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly sources: SourcePolicy;
  private readonly webhookPolicy: WebhookPolicy;
  private readonly connections = new Set<Connection>();
  private readonly webhooks: WebhookSender;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private idleTimer: ReturnType<typeof setInterval> | undefined;
  private closing: Promise<void> | undefined;
  private readonly log: (line: string) => void;
  private readonly startedAt = Date.now();
  private readonly authThrottle: AuthThrottle;

  constructor(
    readonly engine: WinnowEngine,
    private readonly ownsEngine: boolean,
    private readonly options: ServerOptions,
  ) {
    this.limits = resolveLimits(options.limits);
    this.sources = new SourcePolicy({ ...(options.allowPaths ? { allowPaths: options.allowPaths } : {}), ...(options.allowUrlSchemes ? { allowUrlSchemes: options.allowUrlSchemes } : {}) });
    this.webhookPolicy = new WebhookPolicy(options.allowWebhookOrigins);
    this.authThrottle = new AuthThrottle(this.limits.maxAuthFailures, this.limits.authFailureWindowMs);
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
    this.http = createHttpServer((req, res) => void this.onHttp(req, res));
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

  // ---- HTTP ---------------------------------------------------------------------------------------

  /**
   * 'ok', 'missing' (no token sent), 'wrong' (counted against the address), or 'throttled' (the
   * address failed too often lately; the token is not even compared).
   */
  private authenticate(req: IncomingMessage): { result: 'ok' | 'missing' | 'wrong' | 'throttled'; retryAfterMs?: number } {
    const token = this.options.token;
    if (token === undefined) return { result: 'ok' };
    const address = req.socket.remoteAddress ?? 'unknown';
    const retryAfterMs = this.authThrottle.retryAfterMs(address);
    if (retryAfterMs > 0) return { result: 'throttled', retryAfterMs };
    const given = bearerFrom(req.headers);
    if (given !== undefined && tokensEqual(given, token)) return { result: 'ok' };
    this.authThrottle.fail(address);
    return { result: given === undefined ? 'missing' : 'wrong' };
  }

  private denyHttp(res: ServerResponse, auth: { result: string; retryAfterMs?: number }): void {
    if (auth.result === 'throttled') {
      this.metrics.errors.inc({ code: 'WINNOW_ERR_RATE_LIMITED' });
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': String(Math.ceil((auth.retryAfterMs ?? 0) / 1000)), 'x-winnow-error': 'WINNOW_ERR_RATE_LIMITED' })
        .end(JSON.stringify({ error: { code: 'WINNOW_ERR_RATE_LIMITED' } }));
      return;
    }
    this.metrics.errors.inc({ code: 'WINNOW_ERR_UNAUTHORIZED' });
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer', 'x-winnow-error': 'WINNOW_ERR_UNAUTHORIZED' }).end(JSON.stringify({ error: { code: 'WINNOW_ERR_UNAUTHORIZED' } }));
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url.pathname === '/healthz') {
        // Liveness for anyone; the details (load, model) only for holders of the token.
        const status = this.closing ? 'shutting-down' : 'ok';
        const full = this.options.token === undefined || (bearerFrom(req.headers) !== undefined && this.authenticate(req).result === 'ok');
        const body = JSON.stringify(
          full ? { status, sessions: this.connections.size, uptimeS: Math.round((Date.now() - this.startedAt) / 1000), model: this.engine.modelName } : { status },
        );
        res.writeHead(this.closing ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
        return;
      }
      if (url.pathname === '/metrics') {
        const auth = this.authenticate(req);
        if (auth.result !== 'ok') {
          this.denyHttp(res, auth);
          return;
        }
        this.metrics.sessions.set(this.connections.size);
        let pids = 0;
        for (const c of this.connections) pids += c.session.stats.ffmpegPids.length;
        this.metrics.ffmpegProcesses.set(pids);
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(await this.metrics.registry.metrics());
        return;
      }
      if (this.options.examples) {
        if (url.pathname === '/' || url.pathname === '/examples' || url.pathname === '/examples/') {
          res.writeHead(302, { location: '/examples/webcam.html' }).end();
          return;
        }
        const m = /^\/examples\/([\w-]+\.(html|js|css))$/.exec(url.pathname);
        if (m) {
          const body = await readFile(join(packageRoot(), 'examples', m[1])).catch(() => undefined);
          if (body) {
            res.writeHead(200, { 'content-type': STATIC_TYPES[m[2]], 'cache-control': 'no-store' }).end(body);
            return;
          }
        }
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    } catch (e) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${(e as Error).message}\n`);
    }
  }

  private refuse(socket: Duplex, status: number, text: string, code: WinnowErrorCode, message: string): void {
    this.metrics.errors.inc({ code });
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nX-Winnow-Error: ${code}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  /**
   * Browsers send Origin; other clients do not and always pass. Without an allow-list only the
   * server's own origin passes (its example pages): any web page could otherwise drive a
   * loopback server from the user's browser (cross-site WebSocket hijacking).
   */
  private originAllowed(origin: string, host: string | undefined): boolean {
    const allowed = this.options.allowedOrigins;
    if (allowed && allowed.length > 0) return allowed.includes(origin);
    try {
      return host !== undefined && new URL(origin).host === host;
    } catch {
      return false;
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if (this.closing) return this.refuse(socket, 503, 'Service Unavailable', 'WINNOW_ERR_SHUTTING_DOWN', 'the server is shutting down');
    const origin = req.headers.origin;
    if (origin !== undefined && !this.originAllowed(origin, req.headers.host)) {
      return this.refuse(socket, 403, 'Forbidden', 'WINNOW_ERR_FORBIDDEN_ORIGIN', `origin ${origin} is not allowed`);
    }
    const auth = this.authenticate(req);
    if (auth.result === 'throttled') {
      return this.refuse(socket, 429, 'Too Many Requests', 'WINNOW_ERR_RATE_LIMITED', `too many failed authentications from this address; retry in ${Math.ceil((auth.retryAfterMs ?? 0) / 1000)} s`);
    }
    if (auth.result !== 'ok') return this.refuse(socket, 401, 'Unauthorized', 'WINNOW_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
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
    if (isBinary) return this.onBinary(conn, buf);
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
      await this.handle(conn, ev);
    } catch (e) {
      conn.fail(e, ev.event_id);
    }
  }

  private onBinary(conn: Connection, buf: Buffer): void {
    const s = conn.session;
    const format = s.inputFormat;
    if (format === undefined || format === 'source' || format === 'frames') {
      conn.error('WINNOW_ERR_PROTOCOL', 'binary message without an active input_video.start', undefined, { reason: 'binary-before-start' });
      return;
    }
    if (format === 'jpeg') {
      const pts = conn.jpegPts;
      if (pts === undefined) {
        conn.error('WINNOW_ERR_PROTOCOL', 'each JPEG must be preceded by input_video.frame {ptsMs}', undefined, { reason: 'jpeg-without-frame' });
        return;
      }
      conn.jpegPts = undefined;
      conn.pendingJpegs++;
      // Non-live input: stop reading the socket while the queue is full (nothing is dropped).
      if (!s.inputLive && conn.pendingJpegs > 1) conn.pause();
      s.pushJpeg(buf, pts)
        .catch((e: unknown) => conn.fail(e, undefined))
        .finally(() => {
          conn.pendingJpegs--;
          if (conn.pendingJpegs <= 1) conn.resume();
        });
      return;
    }
    const input = conn.input;
    if (!input) {
      conn.error('WINNOW_ERR_PROTOCOL', 'binary message without an active input_video.start', undefined, { reason: 'binary-before-start' });
      return;
    }
    if (!input.write(buf)) {
      conn.pause();
      void input.drained().then(() => conn.resume());
    }
  }

  private async handle(conn: Connection, ev: ClientEvent): Promise<void> {
    const s = conn.session;
    switch (ev.type) {
      case 'session.update': {
        for (const w of ev.session.watch ?? []) if (w.webhook) this.webhookPolicy.check(w.webhook);
        s.update(ev.session);
        conn.send({ type: 'session.updated', session: this.describe(s), ...(ev.event_id ? { event_id: ev.event_id } : {}) });
        return;
      }
      case 'input_video.start': {
        conn.startedInput = true;
        if (ev.format === 'jpeg') {
          s.startJpeg({ live: ev.live ?? true });
          conn.jpegPts = undefined;
        } else {
          conn.input = s.startVideo(ev.format, { live: ev.live ?? true });
        }
        return;
      }
      case 'input_video.frame': {
        if (s.inputFormat !== 'jpeg') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'input_video.frame needs an active input_video.start with format jpeg');
        conn.jpegPts = ev.ptsMs;
        return;
      }
      case 'input_video.end': {
        if (!s.inputActive || s.inputFormat === 'source') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no active input_video to end');
        s.endInput();
        return;
      }
      case 'source.open': {
        if (s.inputActive) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first');
        // Confined here, before the session starts an input, so a refusal is an error for this event.
        const confined = await this.sources.confine(ev.path !== undefined ? { path: ev.path } : { url: ev.url! }, undefined, {
          ffmpegPath: resolveFfmpegPath({ ...(this.options.ffmpegPath ? { ffmpegPath: this.options.ffmpegPath } : {}), ...(this.options.env ? { env: this.options.env } : {}) }).path,
        });
        if (s.inputActive) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first');
        s.openSource(confined, ev.live !== undefined ? { live: ev.live } : {});
        conn.startedInput = true;
        return;
      }
      case 'source.close': {
        if (s.inputFormat !== 'source') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no open source to close');
        s.closeSource();
        return;
      }
      case 'conversation.item.create': {
        if (ev.text.length > this.limits.maxQuestionChars) {
          throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `the question has ${ev.text.length} characters; the limit maxQuestionChars is ${this.limits.maxQuestionChars}`, {
            details: { limit: 'maxQuestionChars', value: ev.text.length, max: this.limits.maxQuestionChars },
          });
        }
        conn.pendingQuestion = ev.text;
        return;
      }
      case 'response.create': {
        const q = conn.pendingQuestion;
        if (q === undefined) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'response.create needs a conversation.item.create first');
        const answer = s.ask(q, {
          ...(ev.generation?.maxNewTokens !== undefined ? { maxNewTokens: ev.generation.maxNewTokens } : {}),
          ...(ev.generation?.temperature !== undefined ? { temperature: ev.generation.temperature } : {}),
          onDelta: (delta) => conn.send({ type: 'response.output_text.delta', response_id: answer.id, delta }),
        });
        conn.pendingQuestion = undefined;
        conn.send({ type: 'response.created', response: { id: answer.id, question: q } });
        void answer.done.then((d) => {
          this.metrics.responses.inc({ status: d.status });
          if (d.status === 'completed') {
            this.metrics.ttftSeconds.observe(d.timings.ttftMs / 1000);
            const decodeMs = d.timings.totalMs - d.timings.ttftMs;
            if (d.usage.outputTokens > 1) this.metrics.decodeSeconds.observe(decodeMs / (d.usage.outputTokens - 1) / 1000);
          }
          if (d.error) this.metrics.errors.inc({ code: d.error.code });
          conn.send({
            type: 'response.done',
            response: {
              id: d.id,
              status: d.status,
              text: d.text,
              stopReason: d.stopReason,
              usage: d.usage,
              timings: d.timings,
              ...(d.error ? { error: { code: d.error.code, message: d.error.message } } : {}),
            },
          });
        });
        return;
      }
      case 'response.cancel': {
        if (!s.cancel(ev.response_id)) throw new WinnowError('WINNOW_ERR_PROTOCOL', ev.response_id ? `no pending response ${ev.response_id}` : 'no response to cancel');
        return;
      }
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
