/**
 * One error type for the whole pipeline. Callers branch on `code` (stable, documented) and
 * `retryable` (whether the same call may succeed later, e.g. a live source that dropped),
 * never on message text.
 */
export type WinnowErrorCode =
  | 'WINNOW_ERR_FFMPEG_NOT_FOUND'
  | 'WINNOW_ERR_FFMPEG_EXIT'
  | 'WINNOW_ERR_NOT_A_VIDEO'
  | 'WINNOW_ERR_CORRUPT_INPUT'
  | 'WINNOW_ERR_SOURCE_STALLED'
  | 'WINNOW_ERR_SOURCE_UNREACHABLE'
  | 'WINNOW_ERR_INVALID_ARGUMENT'
  | 'WINNOW_ERR_ABORTED'
  | 'WINNOW_ERR_IO'
  | 'WINNOW_ERR_MODEL_MISSING_FILE'
  | 'WINNOW_ERR_MODEL_CONTRACT'
  | 'WINNOW_ERR_MODEL_CONFIG'
  | 'WINNOW_ERR_EXECUTION_PROVIDER'
  | 'WINNOW_ERR_INFERENCE'
  | 'WINNOW_ERR_CODEBOOK_FORMAT'
  | 'WINNOW_ERR_CODEBOOK_MISMATCH'
  | 'WINNOW_ERR_NO_PROTOTYPES'
  | 'WINNOW_ERR_UNSAFE_PICKLE'
  | 'WINNOW_ERR_CONTEXT_OVERFLOW'
  | 'WINNOW_ERR_QUEUE_OVERFLOW'
  | 'WINNOW_ERR_TOKENIZER'
  | 'WINNOW_ERR_PROTOCOL'
  | 'WINNOW_ERR_UNAUTHORIZED'
  | 'WINNOW_ERR_FORBIDDEN_SOURCE'
  | 'WINNOW_ERR_MESSAGE_TOO_BIG'
  | 'WINNOW_ERR_SESSION_CLOSED'
  | 'WINNOW_ERR_FORBIDDEN_ORIGIN'
  | 'WINNOW_ERR_LIMIT_EXCEEDED'
  | 'WINNOW_ERR_IDLE_TIMEOUT'
  | 'WINNOW_ERR_SHUTTING_DOWN'
  | 'WINNOW_ERR_WEBHOOK'
  | 'WINNOW_ERR_RATE_LIMITED'
  | 'WINNOW_ERR_SLOW_CONSUMER'
  | 'WINNOW_ERR_INTERNAL';

export interface WinnowErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  /** Extra machine-readable facts (e.g. ffmpeg's last stderr lines, a file path). */
  details?: Record<string, unknown>;
}

export class WinnowError extends Error {
  readonly code: WinnowErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: WinnowErrorCode, message: string, options: WinnowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WinnowError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  toJSON(): { code: WinnowErrorCode; message: string; retryable: boolean; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

export function isWinnowError(e: unknown): e is WinnowError {
  return e instanceof WinnowError;
}

/** Wraps anything thrown into a WinnowError, keeping an existing one as is. */
export function toWinnowError(e: unknown, fallback: WinnowErrorCode = 'WINNOW_ERR_INTERNAL'): WinnowError {
  if (e instanceof WinnowError) return e;
  if (e instanceof Error && e.name === 'AbortError') return new WinnowError('WINNOW_ERR_ABORTED', 'aborted', { cause: e });
  const message = e instanceof Error ? e.message : String(e);
  return new WinnowError(fallback, message, { cause: e });
}

export function abortError(signal?: AbortSignal): WinnowError {
  return new WinnowError('WINNOW_ERR_ABORTED', 'operation aborted', { cause: signal?.reason });
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal);
}
