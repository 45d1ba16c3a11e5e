// Properties about connections: clients that hold a slot without ever starting an input (ws clients,
// broken handshakes, raw sockets that never answer) must not lock a real client out, and a client that
// never reads what it asked for is cut off before its answers pile up in the server's memory.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import { TestClient } from '../../helpers.js';
import { forAll, property, type FuzzProperty } from '../check.js';
import { assertServes, errorsOf, finish, open, sync, until } from '../clients.js';
import { CLOSE, patternLimits } from '../protocol.js';
import { rawSocket, rawUpgrade, upgradeRequest, wsFrame } from '../raw-ws.js';

type Behaviour = 'silent-ws' | 'chatty-ws' | 'silent-raw' | 'half-handshake' | 'partial-frame' | 'open-close' | 'terminate' | 'garbage-raw';
const BEHAVIOURS: Behaviour[] = ['silent-ws', 'chatty-ws', 'silent-raw', 'half-handshake', 'partial-frame', 'open-close', 'terminate', 'garbage-raw'];

const idleCheckMs = Math.max(50, Math.min(5_000, Math.floor(Math.min(patternLimits.idleTimeoutMs, patternLimits.startGraceMs) / 4)));

/** Behaviours that let go of their slot by themselves (ws clients answer the close handshake; broken handshakes never get one). */
const POLITE: Behaviour[] = ['silent-ws', 'chatty-ws', 'half-handshake', 'open-close', 'terminate', 'garbage-raw'];

export const patternsProperty = (kind: 'ws' | 'raw'): FuzzProperty =>
  property(
    {
      name: kind === 'ws' ? 'connection patterns: ws clients and broken handshakes' : 'connection patterns: raw sockets that never answer',
      what:
        kind === 'ws'
          ? `1–6 connections at once (silent or chatty ws clients that never start an input, half handshakes, instant close/terminate, garbage frames) with maxSessions 3 and startGraceMs 300: the silent ones get WINNOW_ERR_IDLE_TIMEOUT + close 4001 (or 1013 when full); a real client gets in within the grace period (+${idleCheckMs} ms check, +1 s slack)`
          : `the same with raw sockets that complete the handshake and then never send (or stop mid-frame) and never answer the close handshake: a real client still gets in within the grace period (+${idleCheckMs} ms, +1 s)`,
      testRuns: kind === 'ws' ? 6 : 4,
      benchRuns: kind === 'ws' ? 150 : 80,
    },
    (env) => {
      const s = env.patterns;
      const admitted: number[] = [];
      return forAll(
        kind === 'ws'
          ? fc.array(fc.constantFrom(...POLITE), { minLength: 1, maxLength: 6 })
          : fc.array(fc.oneof({ weight: 2, arbitrary: fc.constantFrom<Behaviour>('silent-raw', 'partial-frame') }, { weight: 1, arbitrary: fc.constantFrom(...BEHAVIOURS) }), { minLength: 1, maxLength: 6 }),
        async (behaviours) => {
          const sockets: Socket[] = [];
          const clients: { c: TestClient; b: Behaviour; openedAt: number }[] = [];
          const timers: ReturnType<typeof setInterval>[] = [];
          let real: TestClient | undefined;
          // Each case starts with every slot free (the previous one let everything go).
          await until(() => (s.sessionCount === 0 ? true : undefined), 3_000);
          try {
            const t0 = performance.now();
            await Promise.all(
              behaviours.map(async (b) => {
                if (b === 'silent-ws' || b === 'chatty-ws' || b === 'open-close' || b === 'terminate') {
                  const c = await TestClient.connect(s.url, { token: env.token });
                  if (b === 'open-close') c.ws.close();
                  else if (b === 'terminate') c.ws.terminate();
                  else clients.push({ c, b, openedAt: performance.now() });
                  if (b === 'chatty-ws') {
                    timers.push(setInterval(() => c.ws.readyState === c.ws.OPEN && c.sendRaw('{"type":"session.update","session":{}}'), 40));
                  }
                  return;
                }
                if (b === 'half-handshake') {
                  const sock = await rawSocket(s);
                  sockets.push(sock);
                  sock.write(upgradeRequest(s, env.token).slice(0, 60));
                  return;
                }
                const { sock } = await rawUpgrade(s, env.token);
                sockets.push(sock);
                sock.resume();
                if (b === 'partial-frame') sock.write(Buffer.from([0x81, 0xfe]));
                if (b === 'garbage-raw') sock.write(randomBytes(64));
              }),
            );
            // A real client keeps trying until it has a session and started an input.
            const deadline = t0 + patternLimits.startGraceMs + idleCheckMs + 1_000;
            while (!real && performance.now() < deadline) {
              const c = await TestClient.connect(s.url, { token: env.token }).catch(() => undefined);
              if (!c) continue;
              const first = await until(() => c.events.find((e) => e.type === 'session.created' || e.type === 'error'), 2_000);
              if (first?.type === 'session.created') {
                c.send({ type: 'input_video.start', format: 'jpeg' });
                real = c;
              } else {
                await finish(c);
                await delay(25);
              }
            }
            const waited = performance.now() - t0;
            admitted.push(waited);
            assert.ok(real, `a real client was locked out for ${waited.toFixed(0)} ms by ${behaviours.join(', ')}`);
            // The silent ones are told why and closed with 4001 (or were refused as the sessions were full).
            for (const { c, b, openedAt } of clients) {
              const code = await until(() => c.closeCode, patternLimits.startGraceMs + idleCheckMs + 2_000);
              assert.ok(code === CLOSE.noInput || code === CLOSE.tooMany, `${b}: closed with ${code}`);
              const errs = errorsOf(c.events);
              if (code === CLOSE.noInput) {
                assert.equal(errs[errs.length - 1]?.error.code, 'WINNOW_ERR_IDLE_TIMEOUT', b);
                assert.ok(performance.now() - openedAt >= patternLimits.startGraceMs - 20, `${b} closed before startGraceMs`);
              } else assert.equal(errs[0]?.error.code, 'WINNOW_ERR_LIMIT_EXCEEDED', b);
            }
            await sync(real);
          } finally {
            timers.forEach(clearInterval);
            for (const sock of sockets) sock.destroy();
            await Promise.all(clients.map(({ c }) => finish(c)));
            if (real) await finish(real);
          }
          // Everything is let go; the slots are free again.
          assert.ok(await until(() => (s.sessionCount === 0 ? true : undefined), 3_000), `${s.sessionCount} sessions still held`);
          await assertServes(env, s);
        },
        {
          notes: () => [`real client admitted after ${admitted.length ? Math.max(...admitted).toFixed(0) : '–'} ms at worst`],
          // Every run: all three slots held by silent clients (ws clients / sockets that never answer the close handshake).
          examples: [kind === 'raw' ? ['silent-raw', 'silent-raw', 'partial-frame'] : ['silent-ws', 'chatty-ws', 'silent-ws']],
        },
      );
    },
  );

/** The TCP socket under a ws client, to stop (and restart) reading from it. */
const socketOf = (c: TestClient): Socket => (c.ws as unknown as { _socket: Socket })._socket;

export const slowConsumerProperty = property(
  {
    name: 'slow consumer',
    what: 'a client that sends session.updates with big watch lists but never reads (paused ws, or a raw socket) is cut off (4002, or terminated) once maxSendBufferBytes (64 KiB) is queued beyond the socket buffers; RSS grows < 100 MB; others keep being served',
    testRuns: 2,
    benchRuns: 40,
  },
  (env) => {
    const s = env.patterns;
    const sentMb: number[] = [];
    const closeCodes: number[] = [];
    return forAll(
      fc.record({ raw: fc.boolean(), watches: fc.integer({ min: 4, max: 8 }), qLen: fc.integer({ min: 500, max: 2_000 }) }),
      async ({ raw, watches, qLen }) => {
        const before = new Set(s.sessions);
        const watch = Array.from({ length: watches }, (_, i) => ({ id: `w${i}`, question: `${'q'.repeat(qLen - 1)}?`, everySeconds: 60 }));
        const msg = JSON.stringify({ type: 'session.update', session: { watch } });
        let c: TestClient | undefined;
        let sock: Socket | undefined;
        try {
          let send: (text: string) => void;
          if (raw) {
            ({ sock } = await rawUpgrade(s, env.token));
            sock.write(wsFrame(1, Buffer.from('{"type":"input_video.start","format":"jpeg"}')));
            sock.pause();
            send = (t) => sock!.write(wsFrame(1, Buffer.from(t)));
          } else {
            c = await open(s, env.token);
            c.send({ type: 'input_video.start', format: 'jpeg' });
            await sync(c);
            socketOf(c).pause();
            send = (t) => c!.sendRaw(t);
          }
          const mine = await until(() => s.sessions.find((x) => !before.has(x)), 2_000);
          assert.ok(mine, 'the session exists');
          const rss0 = process.memoryUsage().rss;
          let sent = 0;
          const cap = 200 * 2 ** 20;
          // Never more than 1 MB waiting in our own socket: the memory measured is the server's.
          const backlog = (): number => (sock ? sock.writableLength : c!.ws.bufferedAmount);
          while (s.sessions.includes(mine) && sent < cap) {
            if (backlog() < 2 ** 20) {
              for (let i = 0; i < 16; i++) send(msg);
              sent += 16 * msg.length;
            }
            await delay(2);
          }
          sentMb.push(sent / 2 ** 20);
          assert.ok(!s.sessions.includes(mine), `still served after ${(sent / 2 ** 20).toFixed(0)} MB of requests whose answers it never read`);
          const grownMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
          assert.ok(grownMb < 100, `RSS grew ${grownMb.toFixed(0)} MB`);
          if (c) {
            socketOf(c).resume();
            const code = await until(() => c!.closeCode, 10_000);
            closeCodes.push(code ?? -1);
            assert.ok(code === CLOSE.slowConsumer || code === CLOSE.abnormal, `closed with ${code}`);
          }
          await assertServes(env, s);
        } finally {
          sock?.destroy();
          if (c) {
            socketOf(c).resume();
            c.ws.terminate();
            await finish(c);
          }
        }
      },
      { notes: () => [`sent before the cut (socket buffers absorb most of it): ${sentMb.map((m) => m.toFixed(0)).join(', ')} MB; ws close codes seen: ${closeCodes.join(', ') || '–'}`] },
    );
  },
);
