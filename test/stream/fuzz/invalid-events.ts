// Arbitraries for text messages that are not valid client events, each invalid by construction in one
// documented way: a field of another JSON type, out of range or missing, an extra key, a hostile or
// unknown type, nesting and value-count bombs, non-objects and text that is not JSON at all.
import fc from 'fast-check';
import { CLIENT_EVENT_TYPES, VIDEO_FORMATS, type ClientEventType } from '../../../src/stream/index.js';
import { MAX_FIELD_CHARS, MAX_FPS, MIN_FPS, isClientEventType } from './protocol.js';
import { STRATEGIES, validEvent, type Obj } from './valid-events.js';
import { HOSTILE_KEYS, anyString, clone, extraKeyName, jsonAny, jsonLeaf, longString, nest, setOwn } from './values.js';

export interface TextMsg {
  /** What the generator did (shown in counterexamples). */
  what: string;
  text: string;
}

type Kind = 'number' | 'int' | 'string' | 'bool' | 'object' | 'array';
type Path = (string | number)[];
interface Field {
  /** Path from the event root; a numeric step is an index into an array the mutation creates. */
  path: Path;
  kind: Kind;
  /** Values of the right JSON type that the schema refuses. */
  bad?: fc.Arbitrary<unknown>;
  required?: boolean;
}

const belowFps = fc.oneof(fc.double({ max: MIN_FPS, maxExcluded: true, noNaN: true, noDefaultInfinity: true }), fc.constantFrom(5e-324, 0, 1e-300, -1, -30));
const aboveFps = fc.oneof(fc.double({ min: MAX_FPS, minExcluded: true, noNaN: true, noDefaultInfinity: true }), fc.constantFrom(1e308, 31, 3e10));
const nonInt = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).filter((x) => !Number.isInteger(x));
// fast-check orders -0 below 0, so "below 0" can be -0, which JSON writes as 0 (in range): the filter drops it.
const outside = (min: number, max: number): fc.Arbitrary<number> =>
  fc.oneof(fc.double({ max: min, maxExcluded: true, noNaN: true, noDefaultInfinity: true }).filter((x) => x < min), fc.double({ min: max, minExcluded: true, noNaN: true, noDefaultInfinity: true }));
const intOutside = (min: number, max: number): fc.Arbitrary<number> => fc.oneof(fc.integer({ max: min - 1 }), fc.integer({ min: max + 1 }), nonInt);
const badEnum = (ok: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof(fc.constantFrom(...ok.map((s) => s.toUpperCase()), ...ok.map((s) => `${s} `), '', 'mkv', 'png'), anyString(10)).filter((s) => !ok.includes(s));
const badUrl = fc.constantFrom('not a url', 'ftp://example.com/x', 'javascript:alert(1)', 'file:///etc/passwd', '//no-scheme', 'http://', 'ws://127.0.0.1/x');

const W = ['session', 'watch', 0];
const FIELDS: Record<ClientEventType, Field[]> = {
  'session.update': [
    { path: ['session'], kind: 'object', required: true },
    { path: ['session', 'fps'], kind: 'number', bad: fc.oneof(belowFps, aboveFps) },
    { path: ['session', 'resize'], kind: 'string', bad: badEnum(['pad', 'stretch', 'crop']) },
    { path: ['session', 'pruning'], kind: 'object' },
    { path: ['session', 'pruning', 'strategy'], kind: 'string', bad: badEnum(STRATEGIES) },
    { path: ['session', 'pruning', 'tau'], kind: 'number', bad: outside(-1, 1) },
    { path: ['session', 'pruning', 'ratio'], kind: 'number', bad: fc.oneof(fc.double({ max: 0, noNaN: true, noDefaultInfinity: true }), outside(0, 1)) },
    { path: ['session', 'pruning', 'temporal'], kind: 'number', bad: outside(-1, 1) },
    { path: ['session', 'pruning', 'minKeep'], kind: 'int', bad: intOutside(0, 4096) },
    { path: ['session', 'maxContextTokens'], kind: 'int', bad: intOutside(512, 1 << 20) },
    { path: ['session', 'generation'], kind: 'object' },
    { path: ['session', 'generation', 'maxNewTokens'], kind: 'int', bad: intOutside(1, 4096) },
    { path: ['session', 'generation', 'temperature'], kind: 'number', bad: outside(0, 5) },
    { path: ['session', 'watch'], kind: 'array', bad: fc.integer({ min: 65, max: 80 }).map((n) => Array.from({ length: n }, (_, i) => ({ id: `w${i}`, question: 'q', everySeconds: 1 }))) },
    { path: [...W, 'id'], kind: 'string', required: true, bad: fc.oneof(fc.constant(''), longString(65, 200)) },
    { path: [...W, 'question'], kind: 'string', required: true, bad: fc.oneof(fc.constant(''), longString(MAX_FIELD_CHARS + 1, MAX_FIELD_CHARS + 50)) },
    { path: [...W, 'everySeconds'], kind: 'number', required: true, bad: outside(0.1, 86_400) },
    { path: [...W, 'webhook'], kind: 'string', bad: badUrl },
    { path: [...W, 'notify'], kind: 'string', bad: badEnum(['always', 'change']) },
  ],
  'input_video.start': [
    { path: ['format'], kind: 'string', required: true, bad: badEnum(VIDEO_FORMATS) },
    { path: ['live'], kind: 'bool' },
  ],
  'input_video.frame': [
    {
      path: ['ptsMs'],
      kind: 'number',
      required: true,
      bad: fc.oneof(fc.double({ max: -Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true }), fc.double({ min: Number.MAX_SAFE_INTEGER + 2, noNaN: true, noDefaultInfinity: true })),
    },
  ],
  'input_video.end': [],
  'source.open': [
    { path: ['url'], kind: 'string', bad: fc.oneof(fc.constant(''), longString(4097, 4200)) },
    { path: ['live'], kind: 'bool' },
  ],
  'source.close': [],
  'conversation.item.create': [{ path: ['text'], kind: 'string', required: true, bad: fc.oneof(fc.constant(''), longString(MAX_FIELD_CHARS + 1, MAX_FIELD_CHARS + 40)) }],
  'response.create': [
    { path: ['generation'], kind: 'object' },
    { path: ['generation', 'maxNewTokens'], kind: 'int', bad: intOutside(1, 4096) },
    { path: ['generation', 'temperature'], kind: 'number', bad: outside(0, 5) },
  ],
  'response.cancel': [{ path: ['response_id'], kind: 'string', bad: longString(129, 300) }],
};
/** Objects of each event that take no other keys (all of them: the schemas are strict). */
const OBJECT_PATHS: Record<ClientEventType, Path[]> = {
  'session.update': [[], ['session'], ['session', 'pruning'], ['session', 'generation'], W],
  'input_video.start': [[]],
  'input_video.frame': [[]],
  'input_video.end': [[]],
  'source.open': [[]],
  'source.close': [[]],
  'conversation.item.create': [[]],
  'response.create': [[], ['generation']],
  'response.cancel': [[]],
};

/** The container at `path` (creating valid empty objects / a one-watch array on the way). */
function containerAt(e: Obj, path: Path): Obj {
  let cur: Obj = e;
  for (let i = 0; i < path.length; i++) {
    const step = path[i];
    if (typeof step === 'number') {
      const arr = cur as unknown as Obj[];
      if (!arr[step]) arr[step] = { id: 'w', question: 'q?', everySeconds: 60 };
      cur = arr[step];
    } else {
      const nextIsIndex = typeof path[i + 1] === 'number';
      if (typeof cur[step] !== 'object' || cur[step] === null || (nextIsIndex && !Array.isArray(cur[step]))) cur[step] = nextIsIndex ? [] : {};
      cur = cur[step] as Obj;
    }
  }
  return cur;
}

const remove = Symbol('remove');
/** A copy of `e` with the value at `path` set to `v`, or deleted when `v` is `remove`. */
function edited(e: Obj, path: Path, v: unknown): Obj {
  const c = clone(e);
  const parent = containerAt(c, path.slice(0, -1));
  const key = String(path[path.length - 1]);
  if (v === remove) delete parent[key];
  else setOwn(parent, key, v);
  return c;
}

const valueOfOtherKind = (kind: Kind): fc.Arbitrary<unknown> => {
  const options: { k: Kind | 'null'; a: fc.Arbitrary<unknown> }[] = [
    { k: 'null', a: fc.constant(null) },
    { k: 'bool', a: fc.boolean() },
    { k: 'number', a: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer()) },
    { k: 'string', a: fc.oneof(anyString(12), fc.constantFrom('1', '0.5', 'true', 'null', '{}')) },
    { k: 'array', a: fc.array(jsonLeaf, { maxLength: 3 }) },
    { k: 'object', a: fc.dictionary(fc.string({ maxLength: 6 }), jsonLeaf, { maxKeys: 3 }) },
  ];
  const same = (k: Kind | 'null'): boolean => k === kind || (kind === 'int' && k === 'number');
  return fc.oneof(...options.filter((o) => !same(o.k)).map((o) => o.a));
};

/** One field of `e` mutated, or an extra key in one of its objects. */
function fieldMutation(type: ClientEventType, e: Obj): fc.Arbitrary<TextMsg> {
  const muts: fc.Arbitrary<TextMsg>[] = [];
  for (const f of FIELDS[type]) {
    const at = f.path.join('.');
    muts.push(valueOfOtherKind(f.kind).map((v) => ({ what: `${type}: ${at} of another type`, text: JSON.stringify(edited(e, f.path, v)) })));
    if (f.bad) muts.push(f.bad.map((v) => ({ what: `${type}: ${at} out of range`, text: JSON.stringify(edited(e, f.path, v)) })));
    if (f.required) muts.push(fc.constant({ what: `${type}: ${at} missing`, text: JSON.stringify(edited(e, f.path, remove)) }));
  }
  muts.push(
    fc.tuple(fc.constantFrom(...OBJECT_PATHS[type]), extraKeyName, jsonAny).map(([at, k, v]) => {
      const c = clone(e);
      const parent = containerAt(c, at);
      // An extra key must be new to its object.
      const key = Object.hasOwn(parent, k) ? `${k}_extra` : k;
      setOwn(parent, key, v);
      return { what: `${type}: extra key ${JSON.stringify(key)} at ${at.join('.') || '(root)'}`, text: JSON.stringify(c) };
    }),
  );
  if (type === 'source.open') {
    muts.push(
      fc.constant({ what: 'source.open: url and path', text: JSON.stringify({ ...e, url: 'rtsp://127.0.0.1:1/x', path: 'x.mp4' }) }),
      fc.constant({ what: 'source.open: neither url nor path', text: JSON.stringify({ type }) }),
    );
  }
  return fc.oneof(...muts);
}

/**
 * A client event made invalid in one documented way. `keepEventId`: no mutation touches `event_id`
 * (the mixed-sequence property sets it, to match errors to messages).
 */
export function invalidEvent(keepEventId: boolean): fc.Arbitrary<TextMsg> {
  const base = fc.constantFrom(...CLIENT_EVENT_TYPES).chain((type) => validEvent(type).map((e) => ({ type, e })));
  const fieldMut = base.chain(({ type, e }) => fieldMutation(type, e));
  const hostileType = base.chain(({ e }) =>
    fc
      .oneof(
        fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__lookupSetter__', 'prototype', 'length'),
        fc.constantFrom('Session.Update', 'session.update ', ' session.update', 'session.update\u0000', 'session_update', 'SESSION.UPDATE', 'input_video.start.', '', 'session.updated', 'error', 'frame.processed'),
        anyString(30).filter((s) => !isClientEventType(s)),
      )
      .map((t) => ({ what: `type ${JSON.stringify(t)}`, text: JSON.stringify({ ...e, type: t }) })),
  );
  const deep = fc.tuple(base, fc.integer({ min: 6, max: 200 }), fc.boolean(), extraKeyName).map(([{ type, e }, d, arrays, k]) => {
    const text = JSON.stringify({ ...e, zz: 0 }).replace('"zz":0', `${JSON.stringify(k in e ? `${k}_x` : k)}:${nest(d, '0', arrays)}`);
    return { what: `${type}: extra key nested ${d} deep`, text };
  });
  const many = fc.tuple(base, fc.integer({ min: 990, max: 4_000 }), fc.constantFrom('0', '{}', '[]', '"x"', 'null')).map(([{ type, e }, n, v]) => ({
    what: `${type}: extra array of ${n} values`,
    text: JSON.stringify({ ...e, zz: 0 }).replace('"zz":0', `"many":[${Array.from({ length: n }, () => v).join(',')}]`),
  }));
  const manyWatches = fc.integer({ min: 1000, max: 6_000 }).map((n) => ({
    what: `session.update with ${n} empty watch entries`,
    text: `{"type":"session.update","event_id":"w${n}","session":{"watch":[${Array.from({ length: n }, () => '{}').join(',')}]}}`,
  }));
  const arbs: fc.Arbitrary<TextMsg>[] = [fieldMut, fieldMut, fieldMut, hostileType, deep, many];
  if (!keepEventId) {
    arbs.push(
      manyWatches,
      base.chain(({ type, e }) =>
        fc
          .oneof(longString(129, 400), fc.string({ minLength: 129, maxLength: 300, unit: 'binary' }))
          .map((id) => ({ what: `${type}: event_id of ${id.length} chars`, text: JSON.stringify({ ...e, event_id: id }) })),
      ),
      base.chain(({ type, e }) => valueOfOtherKind('string').map((id) => ({ what: `${type}: event_id not a string`, text: JSON.stringify({ ...e, event_id: id }) }))),
      base.map(({ type, e }) => ({ what: `${type}: no type`, text: JSON.stringify({ ...e, type: undefined }) })),
      base.chain(({ e }) => valueOfOtherKind('string').map((t) => ({ what: 'type not a string', text: JSON.stringify({ ...e, type: t }) }))),
    );
  }
  return fc.oneof(...arbs);
}

const INVALID_JSON = [
  '',
  ' ',
  '{',
  '}',
  '[',
  '{"type":"session.update"',
  '{"type":"session.update","session":{"fps":NaN}}',
  '{"type":"session.update","session":{"fps":Infinity}}',
  '{"type":"input_video.frame","ptsMs":-Infinity}',
  "{'type':'session.update'}",
  '\uFEFF{"type":"session.update","session":{}}',
  '{"type":"session.update","session":{},}',
  '{"type":"session.update","session":{}}x',
  '{"type":"session.update"}{"type":"session.update"}',
  '{"type":"session.update", // comment\n"session":{}}',
  '{"type":"session.update","session":{"fps":01}}',
  '{"type":"session.update","session":{"fps":.5}}',
  '{"type":"session.update","session":{"fps":+1}}',
  '{"type":"session.update","session":{"fps":0x10}}',
  '"unterminated',
  'tru',
  'undefined',
  '{"type":"session.update","event_id":"\u0001raw control char"}',
  '{"__proto__":',
];
const invalidJson = fc.constantFrom(...INVALID_JSON).map((text) => ({ what: 'invalid JSON', text }));

/** Text that is not a JSON object: not JSON at all, or a JSON value of another kind. */
const notAnObject: fc.Arbitrary<TextMsg> = fc.oneof(
  invalidJson,
  anyString(60).map((text) => ({ what: 'random text', text })),
  jsonAny.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => ({ what: 'a JSON value that is not an object', text: JSON.stringify(v) })),
  fc.constantFrom('null', 'true', '0', '-0', '1e999', '"session.update"', '[]', '[{"type":"session.update","session":{}}]').map((text) => ({ what: 'not an object', text })),
  fc.dictionary(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })), jsonLeaf, { maxKeys: 4 }).map((o) => ({ what: 'an object without a valid type', text: JSON.stringify(o) })),
);

/** Anything a hostile client could put in a text message that is not a valid client event. */
export const hostileText: fc.Arbitrary<TextMsg> = fc.oneof({ weight: 6, arbitrary: invalidEvent(false) }, { weight: 2, arbitrary: notAnObject }, { weight: 1, arbitrary: invalidJson });
