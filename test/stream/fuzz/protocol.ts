// What docs/protocol.md promises, as the fuzz oracles read it: error codes, bounds, close codes, and
// the limits each fuzzed server runs with. The bounds are written out here, not imported, so that the
// oracles hold the server to the documentation rather than to itself. The lists of names (event types,
// formats) come from src/stream, and the tables keyed by them are typed so that a new one fails the
// typecheck until the fuzz suite knows how to mutate it.
import type { WinnowErrorCode } from '../../../src/errors.js';
import { CLIENT_EVENT_TYPES, resolveLimits, type StreamLimits } from '../../../src/stream/index.js';

/** Every documented error code. */
export const ERROR_CODES = new Set<string>([
  'WINNOW_ERR_PROTOCOL',
  'WINNOW_ERR_LIMIT_EXCEEDED',
  'WINNOW_ERR_INVALID_ARGUMENT',
  'WINNOW_ERR_FORBIDDEN_SOURCE',
  'WINNOW_ERR_CORRUPT_INPUT',
  'WINNOW_ERR_IDLE_TIMEOUT',
  'WINNOW_ERR_SHUTTING_DOWN',
  'WINNOW_ERR_FFMPEG_EXIT',
  'WINNOW_ERR_NOT_A_VIDEO',
  'WINNOW_ERR_SOURCE_UNREACHABLE',
  'WINNOW_ERR_SOURCE_STALLED',
  'WINNOW_ERR_CONTEXT_OVERFLOW',
  'WINNOW_ERR_INFERENCE',
  'WINNOW_ERR_MESSAGE_TOO_BIG',
  'WINNOW_ERR_RATE_LIMITED',
  'WINNOW_ERR_UNAUTHORIZED',
  'WINNOW_ERR_SLOW_CONSUMER',
  'WINNOW_ERR_IO',
] satisfies WinnowErrorCode[]);

export const isClientEventType = (s: string): boolean => (CLIENT_EVENT_TYPES as readonly string[]).includes(s);

/** details.reason values of a message that is not a valid client event. */
export const PARSE_REASONS = new Set(['json', 'shape', 'structure', 'unknown-type', 'schema']);

/** Codes a schema-valid event may get (state or limits), never a parse rejection. */
export const VALID_EVENT_CODES = new Set(['WINNOW_ERR_PROTOCOL', 'WINNOW_ERR_LIMIT_EXCEEDED', 'WINNOW_ERR_INVALID_ARGUMENT', 'WINNOW_ERR_FORBIDDEN_SOURCE']);

export const MIN_FPS = 0.001;
export const MAX_FPS = 30;
export const MAX_FIELD_CHARS = 16_384;

/** Close codes (docs/protocol.md and src/stream/server.ts). */
export const CLOSE = { tooBig: 1009, badUtf8: 1007, tooMany: 1013, noInput: 4001, slowConsumer: 4002, abnormal: 1006 } as const;

export const PROTO_LIMITS: Partial<StreamLimits> = { maxNewTokens: 4 };
/** JPEG and pushed-container server: tiny pixel limit, so bombs are cheap to make. */
export const MEDIA_LIMITS: Partial<StreamLimits> = { maxInputPixels: 64 * 64, maxNewTokens: 4 };
/** Connection patterns: short start grace, three slots, a small send buffer. */
export const PATTERN_LIMITS: Partial<StreamLimits> = { startGraceMs: 300, maxSessions: 3, maxSendBufferBytes: 64 * 1024 };
export const AUTH_LIMITS: Partial<StreamLimits> = { maxAuthFailures: 5, authFailureWindowMs: 60_000 };

export const protoLimits = resolveLimits(PROTO_LIMITS);
export const mediaLimits = resolveLimits(MEDIA_LIMITS);
export const patternLimits = resolveLimits(PATTERN_LIMITS);
