// One WebSocket connection of `winnow serve`: its session, its input state, and the bounded way
// events reach the client (a client that does not read is closed, not buffered for).
import { WebSocket } from 'ws';
import { toWinnowError, type WinnowErrorCode } from '../../errors.js';
import type { StreamLimits } from '../limits.js';
import type { StreamMetrics } from '../metrics.js';
import type { ErrorDetails, ServerEvent } from '../protocol.js';
import type { Session, VideoInput } from '../session.js';

export const CLOSE_TOO_MANY = 1013;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
export const CLOSE_IDLE = 4000;
/** No input started within `startGraceMs`. */
export const CLOSE_NO_INPUT = 4001;
/** The client did not read: `maxSendBufferBytes` of events were waiting for it. */
export const CLOSE_SLOW_CONSUMER = 4002;

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly limits: StreamLimits;
  readonly metrics: StreamMetrics;
}

export class Connection {
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
    readonly server: ConnectionHost,
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
