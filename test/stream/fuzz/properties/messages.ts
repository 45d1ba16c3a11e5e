// Properties about text messages: hostile text of every kind, valid and invalid events interleaved,
// fps at and around its bounds, and text frames that are not UTF-8.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import type { AnyEvent } from '../../helpers.js';
import { forAllSessions, property, Tally } from '../check.js';
import { answersTo, errorsOf, until, type ErrorEvent } from '../clients.js';
import { hostileText, invalidEvent } from '../invalid-events.js';
import { assertError, expectForInvalidText, onTheWire } from '../oracle.js';
import { CLOSE, ERROR_CODES, MAX_FPS, MIN_FPS, PARSE_REASONS, VALID_EVENT_CODES, protoLimits } from '../protocol.js';
import { anyValidEvent, finiteIn, type Obj } from '../valid-events.js';

export const invalidText = property(
  {
    name: 'invalid text messages',
    what: 'batches of hostile text (schema mutations of every event type, hostile/unknown/non-string types, non-objects, invalid JSON, depth and value-count bombs) each get one error: WINNOW_ERR_PROTOCOL with details.reason and event_id echoed (or MESSAGE_TOO_BIG); nothing else is sent',
    testRuns: 300,
    benchRuns: 5_000,
  },
  (env) =>
    forAllSessions(env, env.proto, fc.array(hostileText, { minLength: 1, maxLength: 8 }), async (batch, c) => {
      const got = await answersTo(c, () => batch.forEach((m) => c.sendRaw(m.text)));
      assert.deepEqual(
        got.filter((e) => e.type !== 'error').map((e) => e.type),
        [],
        'invalid messages cause nothing but errors',
      );
      const errors = errorsOf(got);
      assert.equal(errors.length, batch.length, 'one error per message');
      batch.forEach((m, i) => assertError(errors[i], expectForInvalidText(m.text, protoLimits), m.what));
    }),
);

interface Step {
  valid: boolean;
  type: string;
  text: string;
  id: string;
  what: string;
}

const mixedSteps: fc.Arbitrary<Step[]> = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: anyValidEvent.map((e) => ({ valid: true, e })) },
      {
        weight: 2,
        arbitrary: invalidEvent(true)
          // Matched to its error by event_id: no event_id of its own, and small enough to be parsed.
          .filter((m) => !Object.hasOwn(JSON.parse(m.text) as object, 'event_id') && Buffer.byteLength(onTheWire(m.text)) < protoLimits.maxTextMessageBytes - 64)
          .map((m) => ({ valid: false, m })),
      },
    ),
    { minLength: 1, maxLength: 10 },
  )
  .map((xs) =>
    xs.map((x, k): Step => {
      if ('e' in x) {
        const id = `v${k}`;
        return { valid: true, type: String(x.e.type), text: JSON.stringify({ ...x.e, event_id: id }), id, what: `valid ${String(x.e.type)}` };
      }
      const id = `i${k}`;
      const o = JSON.parse(x.m.text) as Obj;
      const text = x.m.text.replace(/^\{/, `{"event_id":${JSON.stringify(id)},`).replace(/,\}$/, '}');
      return { valid: false, type: String(o.type), text, id, what: x.m.what };
    }),
  );

export const mixedSequences = property(
  {
    name: 'valid and invalid events of every type, interleaved',
    what: 'random sequences of schema-valid events of all nine types and invalid ones: each invalid one gets exactly one PROTOCOL error with its event_id; a valid one is never refused as unparseable (only state/limit codes), session.update gets session.updated or one such error; every event validates',
    testRuns: 120,
    benchRuns: 2_000,
  },
  (env) =>
    forAllSessions(env, env.proto, mixedSteps, async (steps, c) => {
      const got = await answersTo(c, () => steps.forEach((s) => c.sendRaw(s.text)));
      const errs = errorsOf(got);
      for (const s of steps) {
        const mine = errs.filter((e) => e.error.event_id === s.id);
        if (!s.valid) {
          assert.equal(mine.length, 1, `${s.what}: one error`);
          // The invalid event's own expectation, with its id.
          assertError(mine[0], expectForInvalidText(s.text, protoLimits), s.what);
          continue;
        }
        assert.ok(mine.length <= 1, `${s.what}: at most one error`);
        for (const e of mine) {
          assert.ok(VALID_EVENT_CODES.has(e.error.code), `${s.what}: ${e.error.code}`);
          assert.ok(!PARSE_REASONS.has(String(e.error.details?.reason)), `${s.what} refused as unparseable: ${e.error.message}`);
        }
        if (s.type === 'session.update') {
          const updated = got.filter((e) => e.type === 'session.updated' && (e as { event_id?: string }).event_id === s.id).length;
          assert.equal(updated + mine.length, 1, `${s.what}: session.updated or an error`);
          if (mine.length) assert.notEqual(mine[0].error.code, 'WINNOW_ERR_PROTOCOL', `${s.what}: ${mine[0].error.message}`);
        }
      }
      for (const e of errs) assert.ok(ERROR_CODES.has(e.error.code), `undocumented code ${e.error.code}`);
      assert.deepEqual(errs.filter((e) => e.error.event_id === null).map((e) => e.error.code), [], 'no unattributed errors');
    }),
);

/** fps as it appears in the message text: JSON numbers, raw literals (some not JSON at all). */
const fpsText: fc.Arbitrary<string> = fc.oneof(
  fc.double().map((x) => JSON.stringify(x)),
  finiteIn(MIN_FPS, MAX_FPS).map((x) => JSON.stringify(x)),
  fc.constantFrom(5e-324, 0, -0, 0.001, 0.0009999999999999998, 30, 30.000000000000004, 1e308, -1, Number.MIN_VALUE).map((x) => JSON.stringify(x)),
  fc.constantFrom('1e999', '-1e999', '-0', '0.0', '1e-3', '0.00099999999999999999', '3e1', '30.0000000000000001', '30.00000000000001', '1E1', '0x10', '.5', '+1', '1.', 'NaN', 'Infinity', '"1"', 'null', 'true', '[1]', '{}'),
);

export const fpsProperty = property(
  {
    name: 'session.update fps',
    what: 'session.update with fps from any double or raw literal: in [0.001, 30] → session.updated with exactly that fps, else WINNOW_ERR_PROTOCOL (json or schema), in order',
    testRuns: 80,
    benchRuns: 2_000,
  },
  (env) =>
    forAllSessions(env, env.proto, fc.array(fpsText, { minLength: 1, maxLength: 8 }), async (values, c) => {
      const got = await answersTo(c, () => values.forEach((v, k) => c.sendRaw(`{"type":"session.update","event_id":"f${k}","session":{"fps":${v}}}`)));
      assert.equal(got.length, values.length, 'one answer per update');
      values.forEach((v, k) => {
        let parsed: unknown;
        let json = true;
        try {
          parsed = JSON.parse(v);
        } catch {
          json = false;
        }
        const e = got[k] as AnyEvent & { event_id?: string; session?: { config: { fps: number } }; error?: ErrorEvent['error'] };
        const ok = typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= MIN_FPS && parsed <= MAX_FPS;
        if (ok) {
          assert.equal(e.type, 'session.updated', `fps ${v}: ${JSON.stringify(e)}`);
          assert.equal(e.event_id, `f${k}`);
          assert.equal(e.session!.config.fps, parsed);
        } else {
          assert.equal(e.type, 'error', `fps ${v} accepted`);
          assert.equal(e.error!.code, 'WINNOW_ERR_PROTOCOL');
          assert.equal(e.error!.details?.reason, json ? 'schema' : 'json', `fps ${v}`);
          assert.equal(e.error!.event_id, json ? `f${k}` : null);
        }
      });
    }),
);

/** Text frames that are not valid UTF-8 (and, for contrast, some that are). */
const utf8Bytes: fc.Arbitrary<Buffer> = fc
  .tuple(
    // The extra key keeps every prefix invalid whatever the bytes turn out to be.
    fc.constantFrom('{"type":"session.update","event_id":"u","x":1,"session":{"resize":"', '{"type":"conversation.item.create","x":1,"text":"', '', '{"'),
    fc.oneof(
      fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xef, 0xbb, 0xbf]),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 40 }),
    ),
    fc.constantFrom('"}}', '"}', ''),
  )
  .map(([pre, bytes, post]) => Buffer.concat([Buffer.from(pre), Buffer.from(bytes), Buffer.from(post)]));

export const utf8Property = property(
  {
    name: 'text frames with invalid UTF-8',
    what: 'a text frame that is not UTF-8 closes the socket with 1007 (or gets WINNOW_ERR_PROTOCOL); valid UTF-8 gets the usual error; the server keeps serving',
    testRuns: 40,
    benchRuns: 1_000,
  },
  (env) => {
    const outcomes = new Tally();
    return forAllSessions(env, env.proto, utf8Bytes, async (bytes, c) => {
      if (isUtf8(bytes)) {
        const errs = errorsOf(await answersTo(c, () => c.sendRaw(bytes, false)));
        assertError(errs[0], expectForInvalidText(bytes.toString('utf8'), protoLimits), 'valid UTF-8');
        outcomes.add('utf8-ok');
        return;
      }
      const start = c.events.length;
      c.sendRaw(bytes, false);
      const r = await until(() => (c.closeCode !== undefined ? `close ${c.closeCode}` : errorsOf(c.events.slice(start)).length ? 'error' : undefined), 5_000);
      assert.ok(r, 'neither a close nor an error');
      if (r === 'error') assert.equal(errorsOf(c.events.slice(start))[0].error.code, 'WINNOW_ERR_PROTOCOL');
      else assert.equal(c.closeCode, CLOSE.badUtf8, r);
      outcomes.add(r);
    }, { notes: () => [`invalid UTF-8 outcomes: ${outcomes}`] });
  },
);
