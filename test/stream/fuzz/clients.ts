// Talking to a fuzzed server through the ws library (TestClient): a session per case, waiting for the
// answers to what was sent, closing with the schema check, and the "still serves" check every case ends with.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { WinnowServer } from '../../../src/stream/index.js';
import { TestClient, type AnyEvent } from '../helpers.js';
import type { FuzzEnv } from './env.js';

export type ErrorEvent = { type: 'error'; error: { code: string; message: string; event_id: string | null; details?: Record<string, unknown> } };
export const errorsOf = (events: AnyEvent[]): ErrorEvent[] => events.filter((e): e is ErrorEvent => e.type === 'error');

export const httpBase = (s: WinnowServer): string => s.url.replace(/^ws/, 'http');

/**
 * Polls `f` until it returns something other than undefined (or the time is up: undefined). Unlike
 * TestClient.wait it also watches things that are not events (close codes, session counts) and lets
 * the caller word the failure.
 */
export async function until<T>(f: () => T | undefined, timeoutMs: number, stepMs = 5): Promise<T | undefined> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (performance.now() >= end) return undefined;
    await delay(stepMs);
  }
}

/** A connection that has its session.created. */
export async function open(s: WinnowServer, token: string): Promise<TestClient> {
  const c = await TestClient.connect(s.url, { token });
  const created = await until(() => c.events.find((e) => e.type === 'session.created'), 5_000);
  assert.ok(created, 'session.created');
  return c;
}

let syncSeq = 0;
/** Every message sent before has been handled once the server answers this one (messages are handled in order). */
export async function sync(c: TestClient, timeoutMs = 10_000): Promise<number> {
  const id = `sync-${++syncSeq}`;
  c.send({ type: 'session.update', event_id: id, session: {} });
  const at = await until(() => {
    const i = c.events.findIndex((e) => e.type === 'session.updated' && (e as { event_id?: string }).event_id === id);
    return i >= 0 ? i : undefined;
  }, timeoutMs);
  assert.ok(at !== undefined, `the connection still answers (closed with ${c.closeCode ?? 'nothing'})`);
  return at;
}

/** The events the server sent in answer to what `send` sends (everything up to the answer to a sync). */
export async function answersTo(c: TestClient, send: () => void, timeoutMs?: number): Promise<AnyEvent[]> {
  const start = c.events.length;
  send();
  const end = await sync(c, timeoutMs);
  return c.events.slice(start, end);
}

/** Closes a client and checks every event it received matched its schema. */
export async function finish(c: TestClient): Promise<void> {
  if (c.closeCode === undefined) c.ws.close();
  const code = await Promise.race([c.closed, delay(5_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') c.ws.terminate();
  assert.deepEqual(c.invalid, [], 'every server event matches its schema');
}

/** Runs `body` on a fresh session of `s` and closes it whatever happens. */
export async function withSession(s: WinnowServer, token: string, body: (c: TestClient) => Promise<void>): Promise<void> {
  const c = await open(s, token);
  try {
    await body(c);
  } finally {
    await finish(c);
  }
}

/** One case of most properties: a fresh session of `s`, closed afterwards, and then `s` must still serve. */
export async function inSession(env: FuzzEnv, s: WinnowServer, body: (c: TestClient) => Promise<void>): Promise<void> {
  await withSession(s, env.token, body);
  await assertServes(env, s);
}

let worstHealthMs = 0;
/** The slowest /healthz that assertServes saw, for the summary line. */
export function worstHealthzMs(): number {
  return worstHealthMs;
}

/** The server still serves: /healthz answers ok and a fresh connection gets its session. */
export async function assertServes(env: FuzzEnv, s: WinnowServer, boundMs = 1_000): Promise<void> {
  const t0 = performance.now();
  const res = await fetch(`${httpBase(s)}healthz`, { headers: { authorization: `Bearer ${env.token}` } });
  const body = (await res.json()) as { status: string };
  const ms = performance.now() - t0;
  worstHealthMs = Math.max(worstHealthMs, ms);
  assert.equal(res.status, 200);
  assert.equal(body.status, 'ok');
  assert.ok(ms < boundMs, `/healthz took ${ms.toFixed(0)} ms`);
  const c = await open(s, env.token);
  await finish(c);
}

/** A ws connection attempt: 101 with the client, or the HTTP status and x-winnow-error of the refusal. */
export async function tryWs(s: WinnowServer, options: Parameters<typeof TestClient.connect>[1]): Promise<{ status: number; code?: string; client?: TestClient }> {
  try {
    const c = await TestClient.connect(s.url, options);
    return { status: 101, client: c };
  } catch (e) {
    const err = e as Error & { status?: number; code?: string };
    return { status: err.status ?? -1, code: err.code };
  }
}
