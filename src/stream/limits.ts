// Every limit of the server is a named option with a documented default (the ws style). The
// defaults are sized for the default model on a small CPU machine; docs/protocol.md lists them.
import { WinnowError } from '../errors.js';

export interface StreamLimits {
  /** Largest WebSocket message (JSON or binary), bytes. Larger ones close the socket with 1009. Default 8 MiB. */
  maxPayloadBytes: number;
  /**
   * Largest JSON (text) message, bytes; binary video keeps `maxPayloadBytes`. A larger one is refused
   * with WINNOW_ERR_MESSAGE_TOO_BIG before it is parsed. Default 64 KiB.
   */
  maxTextMessageBytes: number;
  /** Deepest nesting of a JSON message (objects and arrays). Checked before schema validation. Default 8. */
  maxJsonDepth: number;
  /** Values (objects, arrays, strings, numbers, …) in one JSON message. Checked before schema validation. Default 1 024. */
  maxJsonNodes: number;
  /** Concurrent sessions (connections); one more is refused with close 1013. Default 16. */
  maxSessions: number;
  /**
   * Decoded frames waiting for the model per session. Live input keeps the newest when it is full
   * (keep-latest; the client gets `input_video.dropped`), other input pauses its source. Default 8.
   */
  maxQueuedFrames: number;
  /** A session with no client message and no frame for this long is closed. Default 300 000 ms. */
  idleTimeoutMs: number;
  /**
   * A connection that has not started an input (input_video.start or source.open) this long after it
   * opened is closed (4001), so silent clients cannot hold the session slots. Default 10 000 ms.
   */
  startGraceMs: number;
  /**
   * Bytes of events waiting to be sent to one client. A client that does not read its socket is
   * closed (4002) once this much is queued, instead of the server buffering without end. Default 4 MiB.
   */
  maxSendBufferBytes: number;
  /**
   * Failed authentications one address may make per `authFailureWindowMs`; past that its upgrade
   * and /metrics requests get 429 WINNOW_ERR_RATE_LIMITED without the token being checked. Default 10.
   */
  maxAuthFailures: number;
  /** The window of `maxAuthFailures`. Default 60 000 ms. */
  authFailureWindowMs: number;
  /** Longest question (conversation item or watch), characters. Default 2 000. */
  maxQuestionChars: number;
  /** KV-cache budget per session (video + question + answer); sessions may ask for less. Default 4 096 tokens. */
  maxContextTokens: number;
  /** Longest answer; sessions may ask for less. Default 128 tokens. */
  maxNewTokens: number;
  /** Responses a session may have waiting or running (standing questions excluded). Default 4. */
  maxPendingResponses: number;
  /** Standing questions per session. Default 8. */
  maxWatches: number;
  /** Shortest interval of a standing question, seconds. Default 1. */
  minWatchSeconds: number;
  /** Largest decoded picture of any input (JPEG, pushed container, source), pixels. Default 4096 × 4096. */
  maxInputPixels: number;
  /** Bytes of pushed container data buffered before the server stops reading the socket. Default 4 MiB. */
  maxBufferedInputBytes: number;
  /** Ping interval; a client that has not answered the previous ping is dropped. Default 15 000 ms. */
  heartbeatIntervalMs: number;
  /** SIGTERM / close(): answers in flight get this long to finish before they are cancelled. Default 3 000 ms. */
  shutdownGraceMs: number;
  /** SIGTERM / close(): everything is torn down (ffmpeg killed, sockets terminated) within this. Default 10 000 ms. */
  shutdownDeadlineMs: number;
}

export const DEFAULT_LIMITS: Readonly<StreamLimits> = Object.freeze({
  maxPayloadBytes: 8 * 1024 * 1024,
  maxTextMessageBytes: 64 * 1024,
  maxJsonDepth: 8,
  maxJsonNodes: 1_024,
  maxSessions: 16,
  maxQueuedFrames: 8,
  idleTimeoutMs: 300_000,
  startGraceMs: 10_000,
  maxSendBufferBytes: 4 * 1024 * 1024,
  maxAuthFailures: 10,
  authFailureWindowMs: 60_000,
  maxQuestionChars: 2_000,
  maxContextTokens: 4_096,
  maxNewTokens: 128,
  maxPendingResponses: 4,
  maxWatches: 8,
  minWatchSeconds: 1,
  maxInputPixels: 4096 * 4096,
  maxBufferedInputBytes: 4 * 1024 * 1024,
  heartbeatIntervalMs: 15_000,
  shutdownGraceMs: 3_000,
  shutdownDeadlineMs: 10_000,
});

/** Fills defaults and checks every value is a positive number (integers where it matters). */
export function resolveLimits(partial: Partial<StreamLimits> = {}): StreamLimits {
  for (const k of Object.keys(partial)) {
    if (!Object.hasOwn(DEFAULT_LIMITS, k)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown limit ${k}`);
  }
  const out = { ...DEFAULT_LIMITS, ...partial } as StreamLimits;
  for (const [k, v] of Object.entries(out) as [keyof StreamLimits, number][]) {
    const intOnly = k !== 'minWatchSeconds';
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (intOnly && !Number.isInteger(v))) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `limit ${k} must be a positive ${intOnly ? 'integer' : 'number'}, got ${String(v)}`);
    }
  }
  // A smaller payload limit lowers the default text limit with it rather than failing.
  if (partial.maxTextMessageBytes === undefined) out.maxTextMessageBytes = Math.min(out.maxTextMessageBytes, out.maxPayloadBytes);
  if (out.maxTextMessageBytes > out.maxPayloadBytes) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxTextMessageBytes must not exceed maxPayloadBytes');
  }
  if (out.shutdownGraceMs > out.shutdownDeadlineMs) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'shutdownGraceMs must not exceed shutdownDeadlineMs');
  }
  return out;
}
