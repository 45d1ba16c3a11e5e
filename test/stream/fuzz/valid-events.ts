// Arbitraries for schema-valid client events of every type (docs/protocol.md), the base the invalid
// ones are mutated from and the valid half of the mixed sequences.
import fc from 'fast-check';
import { CLIENT_EVENT_TYPES, VIDEO_FORMATS, type ClientEventType } from '../../../src/stream/index.js';
import { MAX_FPS, MIN_FPS } from './protocol.js';
import { clone, str } from './values.js';

export type Obj = Record<string, unknown>;

export const finiteIn = (min: number, max: number): fc.Arbitrary<number> => fc.double({ min, max, noNaN: true });
export const STRATEGIES = ['threshold', 'ratio', 'double-softmax', 'random', 'pool', 'cls', 'none'] as const;

const generationArb = fc.record({ maxNewTokens: fc.integer({ min: 1, max: 4096 }), temperature: finiteIn(0, 5) }, { requiredKeys: [] });
const pruningArb = fc.record(
  {
    strategy: fc.constantFrom(...STRATEGIES),
    tau: finiteIn(-1, 1),
    ratio: finiteIn(Number.MIN_VALUE, 1),
    temporal: finiteIn(-1, 1),
    minKeep: fc.integer({ min: 0, max: 4096 }),
  },
  { requiredKeys: [] },
);
const watchArb = fc.record(
  {
    id: str(1, 64),
    question: str(1, 120),
    everySeconds: finiteIn(0.1, 86_400),
    webhook: fc.constantFrom('http://127.0.0.1:1/hook', 'https://hooks.example.com/x?y=1'),
    notify: fc.constantFrom('always', 'change'),
  },
  { requiredKeys: ['id', 'question', 'everySeconds'] },
);
const sessionArb = fc.record(
  {
    fps: finiteIn(MIN_FPS, MAX_FPS),
    resize: fc.constantFrom('pad', 'stretch', 'crop'),
    pruning: pruningArb,
    maxContextTokens: fc.integer({ min: 512, max: 1 << 20 }),
    generation: generationArb,
    watch: fc.array(watchArb, { maxLength: 3 }),
  },
  { requiredKeys: [] },
);

const VALID_BODIES: Record<ClientEventType, fc.Arbitrary<Obj>> = {
  'session.update': sessionArb.map((session) => ({ session })),
  'input_video.start': fc.record({ format: fc.constantFrom(...VIDEO_FORMATS), live: fc.boolean() }, { requiredKeys: ['format'] }),
  'input_video.frame': fc.record({ ptsMs: finiteIn(0, Number.MAX_SAFE_INTEGER) }),
  'input_video.end': fc.constant({}),
  'source.open': fc.tuple(fc.boolean(), str(1, 60), fc.option(fc.boolean(), { nil: undefined })).map(([isUrl, s, live]) => ({ [isUrl ? 'url' : 'path']: s, ...(live === undefined ? {} : { live }) })),
  'source.close': fc.constant({}),
  'conversation.item.create': fc.record({ text: str(1, 200) }),
  'response.create': fc.record({ generation: generationArb }, { requiredKeys: [] }),
  'response.cancel': fc.record({ response_id: str(0, 128) }, { requiredKeys: [] }),
};

/** A schema-valid event of `type` (event_id set by the caller). */
export const validEvent = (type: ClientEventType): fc.Arbitrary<Obj> => VALID_BODIES[type].map((body) => ({ type, ...clone(body) }));
export const anyValidEvent: fc.Arbitrary<Obj> = fc.constantFrom(...CLIENT_EVENT_TYPES).chain(validEvent);
