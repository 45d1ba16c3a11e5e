// The oracle for text messages: what docs/protocol.md promises a client that sends something that is
// not a valid client event, worked out from the text alone (never from the server's code).
import assert from 'node:assert/strict';
import type { StreamLimits } from '../../../src/stream/index.js';
import type { ErrorEvent } from './clients.js';
import { isClientEventType } from './protocol.js';

export interface TextExpectation {
  code: 'WINNOW_ERR_PROTOCOL' | 'WINNOW_ERR_MESSAGE_TOO_BIG';
  reason?: string;
  eventId: string | null;
}

/** What the server receives: the ws client sends strings as UTF-8, lone surrogates become U+FFFD. */
export const onTheWire = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');

function exceedsShape(v: unknown, maxDepth: number, maxNodes: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  let nodes = 0;
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (++nodes > maxNodes) return true;
    if (typeof x !== 'object' || x === null) continue;
    // The root is depth 0: at most maxJsonDepth levels of objects and arrays.
    if (depth >= maxDepth) return true;
    for (const c of Array.isArray(x) ? x : Object.values(x as object)) stack.push([c, depth + 1]);
  }
  return false;
}

/**
 * The answer docs/protocol.md promises for a text message that is not a valid client event. Only
 * for messages that are invalid (the generators make nothing else): a known type with valid
 * shape is a schema violation.
 */
export function expectForInvalidText(text: string, L: StreamLimits): TextExpectation {
  const wire = onTheWire(text);
  if (Buffer.byteLength(wire) > L.maxTextMessageBytes) return { code: 'WINNOW_ERR_MESSAGE_TOO_BIG', eventId: null };
  let raw: unknown;
  try {
    raw = JSON.parse(wire);
  } catch {
    return { code: 'WINNOW_ERR_PROTOCOL', reason: 'json', eventId: null };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { code: 'WINNOW_ERR_PROTOCOL', reason: 'shape', eventId: null };
  const o = raw as Record<string, unknown>;
  const eventId = Object.hasOwn(o, 'event_id') && typeof o.event_id === 'string' ? o.event_id.slice(0, 128) : null;
  if (exceedsShape(raw, L.maxJsonDepth, L.maxJsonNodes)) return { code: 'WINNOW_ERR_PROTOCOL', reason: 'structure', eventId };
  if (!Object.hasOwn(o, 'type') || typeof o.type !== 'string') return { code: 'WINNOW_ERR_PROTOCOL', reason: 'shape', eventId };
  if (!isClientEventType(o.type)) return { code: 'WINNOW_ERR_PROTOCOL', reason: 'unknown-type', eventId };
  return { code: 'WINNOW_ERR_PROTOCOL', reason: 'schema', eventId };
}

export function assertError(got: ErrorEvent | undefined, want: TextExpectation, what: string): void {
  assert.ok(got, `${what}: no error event`);
  assert.equal(got.error.code, want.code, `${what}: code`);
  if (want.reason !== undefined) assert.equal(got.error.details?.reason, want.reason, `${what}: details.reason`);
  if (want.code === 'WINNOW_ERR_PROTOCOL') assert.equal(got.error.event_id, want.eventId, `${what}: event_id echoed`);
}

