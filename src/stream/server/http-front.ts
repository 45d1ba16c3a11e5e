// The HTTP side of `winnow serve`, before any WebSocket exists: bearer auth with the per-address
// throttle, the origin check, refusals with a code, and the plain HTTP routes (/healthz, /metrics,
// the example pages).
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { WinnowErrorCode } from '../../errors.js';
import { packageRoot } from '../../package-root.js';
import { AuthThrottle, bearerFrom, tokensEqual } from '../access.js';
import type { StreamLimits } from '../limits.js';
import type { StreamMetrics } from '../metrics.js';

const STATIC_TYPES: Readonly<Record<string, string>> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

export interface HttpFrontOptions {
  token?: string;
  allowedOrigins?: readonly string[];
  examples?: boolean;
}

/** What the front reads from the running server. */
export interface HttpFrontHost {
  readonly metrics: StreamMetrics;
  readonly limits: StreamLimits;
  readonly shuttingDown: boolean;
  readonly sessionCount: number;
  readonly modelName: string;
  /** ffmpeg processes of every session (for /metrics). */
  ffmpegProcessCount(): number;
}

export type AuthResult = { result: 'ok' | 'missing' | 'wrong' | 'throttled'; retryAfterMs?: number };

export class HttpFront {
  private readonly authThrottle: AuthThrottle;
  private readonly startedAt = Date.now();

  constructor(
    private readonly host: HttpFrontHost,
    private readonly options: HttpFrontOptions,
  ) {
    this.authThrottle = new AuthThrottle(host.limits.maxAuthFailures, host.limits.authFailureWindowMs);
  }

  private get metrics(): StreamMetrics {
    return this.host.metrics;
  }


  /**
   * 'ok', 'missing' (no token sent), 'wrong' (counted against the address), or 'throttled' (the
   * address failed too often lately; the token is not even compared).
   */
  private authenticate(req: IncomingMessage): AuthResult {
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

  private denyHttp(res: ServerResponse, auth: AuthResult): void {
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

  /** Answers a plain HTTP request. */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url.pathname === '/healthz') {
        // Liveness for anyone; the details (load, model) only for holders of the token.
        const status = this.host.shuttingDown ? 'shutting-down' : 'ok';
        const full = this.options.token === undefined || (bearerFrom(req.headers) !== undefined && this.authenticate(req).result === 'ok');
        const body = JSON.stringify(
          full ? { status, sessions: this.host.sessionCount, uptimeS: Math.round((Date.now() - this.startedAt) / 1000), model: this.host.modelName } : { status },
        );
        res.writeHead(this.host.shuttingDown ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
        return;
      }
      if (url.pathname === '/metrics') {
        const auth = this.authenticate(req);
        if (auth.result !== 'ok') {
          this.denyHttp(res, auth);
          return;
        }
        this.metrics.sessions.set(this.host.sessionCount);
        this.metrics.ffmpegProcesses.set(this.host.ffmpegProcessCount());
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

  private refuse(socket: Duplex, status: number, text: string, code: WinnowErrorCode, message: string): 'refused' {
    this.metrics.errors.inc({ code });
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nX-Winnow-Error: ${code}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return 'refused';
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

  /**
   * Decides an upgrade request: undefined when it may become a WebSocket, else the socket has been
   * answered with an HTTP refusal carrying a code.
   */
  gateUpgrade(req: IncomingMessage, socket: Duplex): 'refused' | undefined {
    if (this.host.shuttingDown) return this.refuse(socket, 503, 'Service Unavailable', 'WINNOW_ERR_SHUTTING_DOWN', 'the server is shutting down');
    const origin = req.headers.origin;
    if (origin !== undefined && !this.originAllowed(origin, req.headers.host)) {
      return this.refuse(socket, 403, 'Forbidden', 'WINNOW_ERR_FORBIDDEN_ORIGIN', `origin ${origin} is not allowed`);
    }
    const auth = this.authenticate(req);
    if (auth.result === 'throttled') {
      return this.refuse(socket, 429, 'Too Many Requests', 'WINNOW_ERR_RATE_LIMITED', `too many failed authentications from this address; retry in ${Math.ceil((auth.retryAfterMs ?? 0) / 1000)} s`);
    }
    if (auth.result !== 'ok') return this.refuse(socket, 401, 'Unauthorized', 'WINNOW_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    return undefined;
  }
}
