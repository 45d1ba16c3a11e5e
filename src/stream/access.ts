// Who may connect (tokens, loopback, the failed-auth throttle) and where webhooks may go. What a
// client may make ffmpeg open is ingest's SourcePolicy (src/ingest/confine.ts).
import { createHash, timingSafeEqual } from 'node:crypto';
import { WinnowError } from '../errors.js';

/** Bearer token carried in `Sec-WebSocket-Protocol` by browsers, which cannot set headers. */
export const BEARER_PROTOCOL_PREFIX = 'winnow.bearer.';

/** Constant-time comparison (hashing first makes the lengths equal, so length leaks nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an upgrade request: `Authorization: Bearer T` or a `winnow.bearer.T` subprotocol. */
export function bearerFrom(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  const a = Array.isArray(auth) ? auth[0] : auth;
  if (a) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(a);
    if (m) return m[1];
  }
  const proto = headers['sec-websocket-protocol'];
  const list = (Array.isArray(proto) ? proto.join(',') : (proto ?? '')).split(',').map((s) => s.trim());
  for (const p of list) if (p.startsWith(BEARER_PROTOCOL_PREFIX)) return p.slice(BEARER_PROTOCOL_PREFIX.length);
  return undefined;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * Where standing questions may POST their results. What ffmpeg may open is decided in one place,
 * ingest's SourcePolicy; this is the one other thing a client names that the server acts on.
 */
export class WebhookPolicy {
  private readonly origins: Set<string>;

  /** `allowOrigins`: `scheme://host:port` origins; default none (webhooks refused). */
  constructor(allowOrigins: readonly string[] = []) {
    this.origins = new Set(allowOrigins.map((o) => new URL(o).origin));
  }

  check(url: string): void {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'webhook is not a valid URL');
    }
    if (!this.origins.has(origin)) {
      throw new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', `webhook origin ${origin} is not allowed (see --allow-webhook)`, { details: { origin, reason: 'webhook-origin' } });
    }
  }
}

/**
 * Failed authentications per client address, so a wrong-token loop is slowed to `maxFailures` per
 * window instead of running at wire speed. Bounded: at most `maxAddresses` are remembered, the
 * oldest forgotten first (an attacker rotating addresses gains nothing it did not have already).
 */
export class AuthThrottle {
  private readonly failures = new Map<string, { count: number; windowStartMs: number }>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Milliseconds until `address` may try again; 0 when it may try now. */
  retryAfterMs(address: string, nowMs = Date.now()): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    const left = f.windowStartMs + this.windowMs - nowMs;
    if (left <= 0) {
      this.failures.delete(address);
      return 0;
    }
    return f.count >= this.maxFailures ? left : 0;
  }

  fail(address: string, nowMs = Date.now()): void {
    const f = this.failures.get(address);
    if (f && nowMs - f.windowStartMs < this.windowMs) {
      f.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(address, { count: 1, windowStartMs: nowMs });
  }

  get size(): number {
    return this.failures.size;
  }
}
