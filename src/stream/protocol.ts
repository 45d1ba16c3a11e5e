// The WebSocket protocol: client and server events as zod schemas (client events validated on every
// message; both turned into the JSON Schemas of docs/protocol.md), server event types inferred from
// their schemas. The grammar follows the realtime-AI APIs people know: every JSON message has
// `type` and an optional client `event_id`, which errors echo.
import { z } from 'zod';
import type { StrategyName } from '../prune/types.js';

export const PROTOCOL_VERSION = 'winnow.v1';

/** Client event types, in the order docs/protocol.md lists them. */
export const CLIENT_EVENT_TYPES = [
  'session.update',
  'input_video.start',
  'input_video.frame',
  'input_video.end',
  'source.open',
  'source.close',
  'conversation.item.create',
  'response.create',
  'response.cancel',
] as const;
export type ClientEventType = (typeof CLIENT_EVENT_TYPES)[number];

export const VIDEO_FORMATS = ['mp4', 'webm', 'mpegts', 'mjpeg', 'jpeg'] as const;
export type VideoFormat = (typeof VIDEO_FORMATS)[number];

/**
 * Why a frame never reached the context. Every frame an input yields (a pushed JPEG or RGB frame, a
 * frame ffmpeg sampled from pushed bytes or a source) ends as exactly one of: `frame.processed`, a
 * count in `input_video.dropped` under one of these policies, or an `error` event (a JPEG that does
 * not decode, a frame the model failed on).
 * - `keep-latest`: live input, the queue (`maxQueuedFrames`) was full; the oldest queued frame went.
 * - `fps-sampling`: a pushed JPEG / RGB frame whose capture time falls in a 1/fps interval that
 *   already has a frame, or lies before the input's first one.
 * - `discard-on-close`: the input was closed (`source.close`, session close) with the frame still queued.
 */
export const DROP_POLICIES = ['keep-latest', 'fps-sampling', 'discard-on-close'] as const;
export type DropPolicy = (typeof DROP_POLICIES)[number];

/** Lowest sampling rate a session may ask for: one frame per 1 000 s (a very slow time-lapse). */
export const MIN_FPS = 0.001;
/** Highest sampling rate a session may ask for. */
export const MAX_FPS = 30;
/** Longest string any client event field may hold (the text limit bounds the message as a whole). */
const MAX_FIELD_CHARS = 16_384;

const eventId = z.string().max(128).optional().describe('Client-chosen id; error events caused by this message echo it.');

const unit = z.number().min(-1).max(1);

const PRUNING_STRATEGIES = ['threshold', 'ratio', 'double-softmax', 'random', 'pool', 'cls', 'none'] as const satisfies readonly StrategyName[];

export const pruningSchema = z
  .strictObject({
    strategy: z.enum(PRUNING_STRATEGIES).optional(),
    tau: unit.optional().describe('Similarity threshold for `threshold`.'),
    ratio: z.number().gt(0).max(1).optional().describe('Kept fraction for ratio-based strategies.'),
    temporal: unit.optional().describe('Also drop tokens at least this similar to the last kept token at the same place.'),
    minKeep: z.number().int().min(0).max(4096).optional().describe('Every frame keeps at least this many tokens.'),
  })
  .describe('Visual-token pruning; omitted keys keep their current value.');

export const generationSchema = z.strictObject({
  maxNewTokens: z.number().int().min(1).max(4096).optional().describe('Longest answer; capped by the server limit.'),
  temperature: z.number().min(0).max(5).optional().describe('0 = greedy.'),
});

export const watchSchema = z.strictObject({
  id: z.string().min(1).max(64),
  question: z.string().min(1).max(MAX_FIELD_CHARS),
  everySeconds: z.number().min(0.1).max(86_400).describe('Asked on the newest frames whenever this much video time has passed.'),
  webhook: z.url({ protocol: /^https?$/ }).optional().describe('POSTed a JSON watch result (retried with backoff, never blocking the stream).'),
  notify: z.enum(['always', 'change']).optional().describe('When the webhook fires: every result (default) or when the answer changes.'),
});

export const sessionUpdateSchema = z.strictObject({
  type: z.literal('session.update'),
  event_id: eventId,
  session: z.strictObject({
    fps: z.number().min(MIN_FPS).max(MAX_FPS).optional().describe('Frames per second sampled from the input. Default 1.'),
    resize: z.enum(['pad', 'stretch', 'crop']).optional().describe('How frames are fitted to the model input. Default pad.'),
    pruning: pruningSchema.optional(),
    maxContextTokens: z.number().int().min(512).max(1 << 20).optional().describe('KV-cache budget of this session; capped by the server limit. Only before the first frame.'),
    generation: generationSchema.optional(),
    watch: z.array(watchSchema).max(64).optional().describe('Standing questions; replaces the current list.'),
  }),
});

export const inputVideoStartSchema = z.strictObject({
  type: z.literal('input_video.start'),
  event_id: eventId,
  format: z.enum(VIDEO_FORMATS),
  live: z
    .boolean()
    .optional()
    .describe('Default true: frames the server cannot keep up with are dropped (keep-latest). false: the server stops reading the socket instead (nothing is lost).'),
});

export const inputVideoFrameSchema = z.strictObject({
  type: z.literal('input_video.frame'),
  event_id: eventId,
  ptsMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER).describe('Capture time of the JPEG in the next binary message, milliseconds.'),
});

export const inputVideoEndSchema = z.strictObject({ type: z.literal('input_video.end'), event_id: eventId });

export const sourceOpenSchema = z
  .strictObject({
    type: z.literal('source.open'),
    event_id: eventId,
    url: z.string().min(1).max(4096).optional(),
    path: z.string().min(1).max(4096).optional(),
    live: z.boolean().optional().describe('Default: true for rtsp/rtmp/srt/udp/rtp URLs. true for any other URL (e.g. an http camera) makes it reconnect and drop instead of pause.'),
  })
  .refine((v) => (v.url === undefined) !== (v.path === undefined), { message: 'exactly one of url and path' });

export const sourceCloseSchema = z.strictObject({ type: z.literal('source.close'), event_id: eventId });

export const conversationItemCreateSchema = z.strictObject({
  type: z.literal('conversation.item.create'),
  event_id: eventId,
  text: z.string().min(1).max(MAX_FIELD_CHARS).describe('The question the next response.create answers.'),
});

export const responseCreateSchema = z.strictObject({
  type: z.literal('response.create'),
  event_id: eventId,
  generation: generationSchema.optional().describe('Overrides the session generation settings for this response.'),
});

export const responseCancelSchema = z.strictObject({
  type: z.literal('response.cancel'),
  event_id: eventId,
  response_id: z.string().max(128).optional().describe('Default: the response being generated.'),
});

export const CLIENT_EVENT_SCHEMAS = {
  'session.update': sessionUpdateSchema,
  'input_video.start': inputVideoStartSchema,
  'input_video.frame': inputVideoFrameSchema,
  'input_video.end': inputVideoEndSchema,
  'source.open': sourceOpenSchema,
  'source.close': sourceCloseSchema,
  'conversation.item.create': conversationItemCreateSchema,
  'response.create': responseCreateSchema,
  'response.cancel': responseCancelSchema,
} as const satisfies Record<ClientEventType, z.ZodType>;

export type SessionUpdateEvent = z.infer<typeof sessionUpdateSchema>;
export type InputVideoStartEvent = z.infer<typeof inputVideoStartSchema>;
export type InputVideoFrameEvent = z.infer<typeof inputVideoFrameSchema>;
export type SourceOpenEvent = z.infer<typeof sourceOpenSchema>;
export type ResponseCreateEvent = z.infer<typeof responseCreateSchema>;
export type ResponseCancelEvent = z.infer<typeof responseCancelSchema>;
export type PruningConfig = z.infer<typeof pruningSchema>;
export type GenerationConfig = z.infer<typeof generationSchema>;
export type WatchConfig = z.infer<typeof watchSchema>;
export type ClientEvent = { [K in ClientEventType]: z.infer<(typeof CLIENT_EVENT_SCHEMAS)[K]> }[ClientEventType];

export type ParseResult =
  | { ok: true; event: ClientEvent }
  | { ok: false; eventId: string | undefined; reason: 'json' | 'shape' | 'structure' | 'unknown-type' | 'schema'; message: string; issues?: readonly string[] };

/** Cheap structural bounds checked before schema validation, so no message costs more than its size. */
export interface MessageShapeLimits {
  /** Deepest nesting of objects and arrays. */
  maxJsonDepth: number;
  /** Values of every kind in the message. */
  maxJsonNodes: number;
}

const DEFAULT_SHAPE_LIMITS: MessageShapeLimits = { maxJsonDepth: 8, maxJsonNodes: 1_024 };

/**
 * Walks a parsed message without recursion and stops at the first bound it crosses, so a message
 * with a million array entries costs one bounded walk, not a million schema checks.
 */
export function checkMessageShape(value: unknown, limits: MessageShapeLimits = DEFAULT_SHAPE_LIMITS): string | undefined {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 0 }];
  let nodes = 0;
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (++nodes > limits.maxJsonNodes) return `message has more than ${limits.maxJsonNodes} values (limit maxJsonNodes)`;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limits.maxJsonDepth) return `message is nested deeper than ${limits.maxJsonDepth} (limit maxJsonDepth)`;
    const children = Array.isArray(v) ? v : Object.values(v);
    if (nodes + children.length > limits.maxJsonNodes) return `message has more than ${limits.maxJsonNodes} values (limit maxJsonNodes)`;
    for (const c of children) stack.push({ v: c, depth: depth + 1 });
  }
  return undefined;
}

/**
 * Parses and validates one text message. Never throws. The caller bounds the text's size; this
 * bounds the work on what it parses to (shape first, then the schema of an own, known `type`).
 */
export function parseClientEvent(text: string, limits: MessageShapeLimits = DEFAULT_SHAPE_LIMITS): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, eventId: undefined, reason: 'json', message: `message is not valid JSON: ${(e as Error).message}` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, eventId: undefined, reason: 'shape', message: 'message must be a JSON object with a "type"' };
  }
  const obj = raw as Record<string, unknown>;
  const eventId = Object.hasOwn(obj, 'event_id') && typeof obj.event_id === 'string' ? obj.event_id.slice(0, 128) : undefined;
  const shapeError = checkMessageShape(raw, limits);
  if (shapeError) return { ok: false, eventId, reason: 'structure', message: shapeError };
  if (!Object.hasOwn(obj, 'type') || typeof obj.type !== 'string') return { ok: false, eventId, reason: 'shape', message: 'message has no string "type"' };
  // Own keys only: `constructor`, `__proto__` or `toString` must not reach Object.prototype.
  const schema = Object.hasOwn(CLIENT_EVENT_SCHEMAS, obj.type) ? (CLIENT_EVENT_SCHEMAS as Record<string, z.ZodType<ClientEvent>>)[obj.type] : undefined;
  if (!schema) {
    return { ok: false, eventId, reason: 'unknown-type', message: `unknown event type ${JSON.stringify(obj.type.slice(0, 64))} (known: ${CLIENT_EVENT_TYPES.join(', ')})` };
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 8).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    return { ok: false, eventId, reason: 'schema', message: `invalid ${obj.type}: ${issues.join('; ')}`, issues };
  }
  return { ok: true, event: r.data };
}

// ---- server → client --------------------------------------------------------------------------
// Server events are schemas too, and their TypeScript types are inferred from them: one source for
// the types, docs/protocol.md, and the tests that validate every event a client receives.

const errorInfo = z.strictObject({ code: z.string(), message: z.string() });

export const sourceDescriptionSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('input_video'), format: z.enum([...VIDEO_FORMATS, 'frames']), live: z.boolean() }),
  z.strictObject({ kind: z.literal('url'), url: z.string(), live: z.boolean() }),
  z.strictObject({ kind: z.literal('path'), path: z.string(), live: z.boolean() }),
]);

export const sessionDescriptionSchema = z.strictObject({
  id: z.string(),
  model: z.string(),
  config: z.strictObject({
    fps: z.number(),
    resize: z.enum(['pad', 'stretch', 'crop']),
    // The session's pruning with its strategy resolved (the engine's default when none was chosen).
    pruning: z.strictObject({ ...pruningSchema.shape, strategy: z.enum(PRUNING_STRATEGIES) }),
    maxContextTokens: z.number().int(),
    generation: z.strictObject({ maxNewTokens: z.number().int(), temperature: z.number() }),
    watch: z.array(watchSchema),
  }),
  limits: z.record(z.string(), z.number()),
});

const count = z.number().int().min(0);

export const usageSchema = z.strictObject({
  visualTokensKept: count.describe('Visual tokens fed to the LLM for the frames in context when the question was asked.'),
  visualTokensTotal: count.describe('Visual tokens the encoder produced for those frames (after video pooling, before pruning).'),
  promptTokens: count.describe('Context tokens (video + question) the answer was conditioned on.'),
  outputTokens: count,
});

export const timingSchema = z.strictObject({
  ttftMs: z.number().describe('response.create (or watch trigger) → first answer token.'),
  totalMs: z.number().describe('response.create → response.done.'),
  queueMs: z.number().describe("Time waiting for the session's earlier work and its scheduling turn."),
});

export const SERVER_EVENT_SCHEMAS = {
  'session.created': z.strictObject({ type: z.literal('session.created'), session: sessionDescriptionSchema }),
  'session.updated': z.strictObject({ type: z.literal('session.updated'), session: sessionDescriptionSchema, event_id: z.string().optional() }),
  'source.opened': z.strictObject({ type: z.literal('source.opened'), source: sourceDescriptionSchema }),
  'source.reconnecting': z.strictObject({ type: z.literal('source.reconnecting'), source: sourceDescriptionSchema, attempt: count, delayMs: z.number(), reason: z.string() }),
  'source.ended': z.strictObject({
    type: z.literal('source.ended'),
    source: sourceDescriptionSchema,
    frames: count.describe('Frames of this input that reached the context.'),
    dropped: count.describe('Frames of this input dropped (all policies); every one was counted in an input_video.dropped sent before this event.'),
    reason: z.enum(['end', 'closed', 'error']),
    error: errorInfo.optional(),
  }),
  'frame.processed': z.strictObject({
    type: z.literal('frame.processed'),
    index: count.describe('Frame number in the session (all inputs).'),
    ptsMs: z.number().describe('Session timeline, ms: the first frame of the first input is 0.'),
    kept: count.describe('Visual tokens kept after pruning.'),
    total: count.describe('Visual tokens before pruning (after video pooling).'),
    latencyMs: z.number().describe('Frame decoded → in the context.'),
  }),
  'input_video.dropped': z.strictObject({
    type: z.literal('input_video.dropped'),
    count: z.number().int().min(1).describe('Frames dropped under this policy since its previous event.'),
    total: count.describe('Frames dropped in this session so far (all policies).'),
    policy: z
      .enum(DROP_POLICIES)
      .describe('keep-latest: live queue full, the oldest queued frame went; fps-sampling: a pushed image in a 1/fps interval that already has a frame (or before the first); discard-on-close: still queued when its input was closed.'),
  }),
  'context.evicted': z.strictObject({
    type: z.literal('context.evicted'),
    frames: count,
    tokens: count,
    remainingFrames: count,
    oldestPtsMs: z.number().nullable(),
  }),
  'response.created': z.strictObject({ type: z.literal('response.created'), response: z.strictObject({ id: z.string(), question: z.string() }) }),
  'response.output_text.delta': z.strictObject({ type: z.literal('response.output_text.delta'), response_id: z.string(), delta: z.string() }),
  'response.done': z.strictObject({
    type: z.literal('response.done'),
    response: z.strictObject({
      id: z.string(),
      status: z.enum(['completed', 'cancelled', 'failed']),
      text: z.string(),
      stopReason: z.string().nullable().describe('eos | stop-string | max-new-tokens | context-full; null unless completed.'),
      usage: usageSchema,
      timings: timingSchema,
      error: errorInfo.optional(),
    }),
  }),
  'watch.result': z.strictObject({
    type: z.literal('watch.result'),
    id: z.string(),
    question: z.string(),
    answer: z.string(),
    ptsMs: z.number().describe('Newest frame in the context when the question was asked.'),
    frames: count,
  }),
  error: z.strictObject({
    type: z.literal('error'),
    error: z.strictObject({
      code: z.string().describe('Stable WINNOW_ERR_* code.'),
      message: z.string(),
      event_id: z.string().nullable().describe('The event_id of the client message that caused it, else null.'),
      details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
    }),
  }),
} as const;

/** Each schema is filed under its own `type`: one filed under another name does not compile. */
type FiledUnderOwnType<T extends { [K in keyof T]: z.ZodType<{ type: K }> }> = T;
export type ServerEventType = keyof FiledUnderOwnType<typeof SERVER_EVENT_SCHEMAS>;
export type ServerEvent = { [K in ServerEventType]: z.infer<(typeof SERVER_EVENT_SCHEMAS)[K]> }[ServerEventType];
export type SessionDescription = z.infer<typeof sessionDescriptionSchema>;
export type SourceDescription = z.infer<typeof sourceDescriptionSchema>;
export type UsageInfo = z.infer<typeof usageSchema>;
export type TimingInfo = z.infer<typeof timingSchema>;
/** `details` of an error event: facts a client can branch on, primitives only. */
export type ErrorDetails = NonNullable<Extract<ServerEvent, { type: 'error' }>['error']['details']>;

/** Validates one server event (tests; clients that want to). */
export function validateServerEvent(e: unknown): { ok: true } | { ok: false; message: string } {
  const type = (e as { type?: unknown } | null)?.type;
  const schema = typeof type === 'string' && Object.hasOwn(SERVER_EVENT_SCHEMAS, type) ? (SERVER_EVENT_SCHEMAS as Record<string, z.ZodType>)[type] : undefined;
  if (!schema) return { ok: false, message: `unknown server event type ${String(type)}` };
  const r = schema.safeParse(e);
  return r.success ? { ok: true } : { ok: false, message: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}

/** JSON Schemas (draft 2020-12) of every client event, for docs/protocol.md and for clients that validate. */
export function clientEventJsonSchemas(): Record<ClientEventType, unknown> {
  const out = {} as Record<ClientEventType, unknown>;
  for (const t of CLIENT_EVENT_TYPES) out[t] = z.toJSONSchema(CLIENT_EVENT_SCHEMAS[t], { unrepresentable: 'any' });
  // The url-xor-path refinement has no JSON Schema form of its own in zod's output.
  (out['source.open'] as Record<string, unknown>).oneOf = [{ required: ['url'] }, { required: ['path'] }];
  return out;
}

/** JSON Schemas of every server event. */
export function serverEventJsonSchemas(): Record<ServerEventType, unknown> {
  const out = {} as Record<ServerEventType, unknown>;
  for (const [t, schema] of Object.entries(SERVER_EVENT_SCHEMAS)) out[t as ServerEventType] = z.toJSONSchema(schema, { unrepresentable: 'any' });
  return out;
}

/** The JSON-Schema section of docs/protocol.md (a test keeps the document in sync with the code). */
export function protocolSchemasMarkdown(): string {
  const parts: string[] = ['### Client → server', ''];
  for (const [t, s] of Object.entries(clientEventJsonSchemas())) parts.push(`#### \`${t}\``, '', '```json', JSON.stringify(s, null, 2), '```', '');
  parts.push('### Server → client', '');
  for (const [t, s] of Object.entries(serverEventJsonSchemas())) parts.push(`#### \`${t}\``, '', '```json', JSON.stringify(s, null, 2), '```', '');
  return parts.join('\n');
}
