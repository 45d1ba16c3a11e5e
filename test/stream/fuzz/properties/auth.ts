// Properties about authentication: wrong tokens by every route are throttled together, /healthz tells
// an unauthenticated caller nothing but its status, and the throttle lifts when its window has passed.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import { createServer, type WinnowServer } from '../../../../src/stream/index.js';
import { forAll, property } from '../check.js';
import { finish, httpBase, tryWs, until } from '../clients.js';
import type { FuzzEnv } from '../env.js';
import { AUTH_LIMITS } from '../protocol.js';

type AuthStep = { kind: 'ws-wrong' | 'ws-wrong-protocol' | 'metrics-wrong' | 'healthz-wrong'; token: string } | { kind: 'ws-right' | 'ws-right-protocol' | 'healthz-right' | 'healthz-none' | 'metrics-right' };
const TOKEN_CHARS = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/;
const authSteps = (token: string): fc.Arbitrary<AuthStep[]> => {
  const wrong = fc.oneof(fc.stringMatching(TOKEN_CHARS), fc.constantFrom(`${token}x`, token.slice(0, -1), token.toUpperCase(), `x${token}`)).filter((t) => t !== token && TOKEN_CHARS.test(t));
  return fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('ws-wrong' as const, 'ws-wrong-protocol' as const, 'metrics-wrong' as const, 'healthz-wrong' as const), token: wrong }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('ws-right' as const, 'ws-right-protocol' as const, 'healthz-right' as const, 'healthz-none' as const, 'metrics-right' as const) }) },
    ),
    { minLength: 1, maxLength: 12 },
  );
};

/** Connection options that present `token` in the Authorization header or as the bearer subprotocol. */
const presenting = (token: string, viaProtocol: boolean): Parameters<typeof tryWs>[1] =>
  viaProtocol ? { protocols: ['winnow.v1', `winnow.bearer.${token}`] } : { headers: { authorization: `Bearer ${token}` } };

/** Runs `body` against a server of its own (throttle state is per server), closed afterwards. */
async function withAuthServer(env: FuzzEnv, limits: typeof AUTH_LIMITS, body: (s: WinnowServer) => Promise<void>): Promise<void> {
  const s = await createServer({ port: 0, engine: env.engine, token: env.token, limits });
  try {
    await body(s);
  } finally {
    await s.close();
  }
}

export const authProperty = property(
  {
    name: 'auth throttling and /healthz',
    what: 'random sequences of wrong tokens (header, subprotocol, /metrics, /healthz) and right ones against a fresh server (maxAuthFailures 5): 401 WINNOW_ERR_UNAUTHORIZED until 5 failures, then 429 WINNOW_ERR_RATE_LIMITED even with the right token; /healthz without the token (or throttled) returns only {status}, with it the full body',
    testRuns: 40,
    benchRuns: 400,
  },
  (env) =>
    forAll(
      authSteps(env.token),
      (steps) =>
        withAuthServer(env, AUTH_LIMITS, async (s) => {
          const http = httpBase(s);
          let failures = 0;
          for (const step of steps) {
            const throttled = failures >= AUTH_LIMITS.maxAuthFailures!;
            const label = `${step.kind} after ${failures} failures`;
            const t = 'token' in step ? step.token : env.token;
            switch (step.kind) {
              case 'ws-wrong':
              case 'ws-wrong-protocol':
              case 'ws-right':
              case 'ws-right-protocol': {
                const r = await tryWs(s, presenting(t, step.kind.endsWith('protocol')));
                const right = step.kind.startsWith('ws-right');
                if (throttled) assert.deepEqual([r.status, r.code], [429, 'WINNOW_ERR_RATE_LIMITED'], label);
                else if (right) {
                  assert.equal(r.status, 101, label);
                  assert.ok(await until(() => r.client!.events.find((e) => e.type === 'session.created'), 5_000));
                } else assert.deepEqual([r.status, r.code], [401, 'WINNOW_ERR_UNAUTHORIZED'], label);
                if (r.client) await finish(r.client);
                if (!right && !throttled) failures++;
                break;
              }
              case 'metrics-wrong':
              case 'metrics-right': {
                const res = await fetch(`${http}metrics`, { headers: { authorization: `Bearer ${t}` } });
                await res.arrayBuffer();
                if (throttled) {
                  assert.equal(res.status, 429, label);
                  assert.equal(res.headers.get('x-winnow-error'), 'WINNOW_ERR_RATE_LIMITED');
                } else if (step.kind === 'metrics-right') assert.equal(res.status, 200, label);
                else {
                  assert.equal(res.status, 401, label);
                  assert.equal(res.headers.get('x-winnow-error'), 'WINNOW_ERR_UNAUTHORIZED');
                  failures++;
                }
                break;
              }
              case 'healthz-wrong':
              case 'healthz-right':
              case 'healthz-none': {
                const headers: Record<string, string> = step.kind === 'healthz-none' ? {} : { authorization: `Bearer ${t}` };
                const res = await fetch(`${http}healthz`, { headers });
                const body = (await res.json()) as Record<string, unknown>;
                assert.equal(res.status, 200, label);
                assert.equal(body.status, 'ok');
                if (step.kind === 'healthz-right' && !throttled) assert.deepEqual(Object.keys(body).sort(), ['model', 'sessions', 'status', 'uptimeS'], label);
                else assert.deepEqual(Object.keys(body), ['status'], `${label}: only the status`);
                // A wrong token at /healthz is a failed authentication like any other (else it is an unthrottled oracle).
                if (step.kind === 'healthz-wrong' && !throttled) failures++;
                break;
              }
            }
          }
        }),
    ),
);

export const authWindowProperty = property(
  {
    name: 'auth throttle window',
    what: 'after maxAuthFailures (1–5) wrong tokens within authFailureWindowMs (300–800 ms) the right token gets 429 + x-winnow-error WINNOW_ERR_RATE_LIMITED; once the window has passed it connects',
    testRuns: 2,
    benchRuns: 40,
  },
  (env) =>
    forAll(
      fc.record({ max: fc.integer({ min: 1, max: 5 }), windowMs: fc.integer({ min: 300, max: 800 }), viaProtocol: fc.boolean() }),
      ({ max, windowMs, viaProtocol }) =>
        withAuthServer(env, { maxAuthFailures: max, authFailureWindowMs: windowMs }, async (s) => {
          const t0 = performance.now();
          for (let i = 0; i < max; i++) {
            const r = await tryWs(s, presenting('wrong-token', viaProtocol));
            assert.equal(r.status, 401);
          }
          const r = await tryWs(s, { token: env.token });
          const inWindow = performance.now() - t0 < windowMs - 50;
          if (inWindow) assert.deepEqual([r.status, r.code], [429, 'WINNOW_ERR_RATE_LIMITED']);
          if (r.client) await finish(r.client);
          await delay(Math.max(0, t0 + windowMs + 60 - performance.now()));
          const after = await tryWs(s, { token: env.token });
          assert.equal(after.status, 101, 'the window has passed');
          await finish(after.client!);
        }),
    ),
);
