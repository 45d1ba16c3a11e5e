// Arbitraries for the values inside hostile messages: strings of every kind of character, long runs,
// hostile object keys and JSON, plus the object surgery the mutations need.
import fc from 'fast-check';

/** One UTF-16 unit per character (so length limits in characters are exact), ASCII or any BMP char. */
const bmpChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0, max: 0x1f }),
  fc.integer({ min: 0x80, max: 0xd7ff }),
  fc.integer({ min: 0xe000, max: 0xffff }),
).map((n) => String.fromCharCode(n));
export const str = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.oneof({ weight: 3, arbitrary: fc.string({ minLength, maxLength }) }, { weight: 1, arbitrary: fc.string({ minLength, maxLength, unit: bmpChar }) });
/** Any string, including lone surrogates and astral characters. */
export const anyString = (maxLength = 40): fc.Arbitrary<string> => fc.oneof(fc.string({ maxLength }), fc.string({ maxLength, unit: 'binary' }), fc.string({ maxLength, unit: 'grapheme' }));
export const longString = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.tuple(fc.integer({ min: minLength, max: maxLength }), fc.constantFrom('a', 'é', '\u0000', '"', '\\')).map(([n, ch]) => ch.repeat(n));

export const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'Type', 'EVENT_ID', 'type ', '', ' ', '\u0000'];
export const extraKeyName = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), anyString(12));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export const jsonLeaf: fc.Arbitrary<Json> = fc.oneof(fc.constant(null), fc.boolean(), fc.double(), fc.integer(), anyString(20));
export const jsonAny: fc.Arbitrary<Json> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;

/** Sets an own enumerable property (also `__proto__`, which plain assignment would turn into a prototype). */
export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** `depth` nested arrays or objects around `leaf`, as JSON text. */
export const nest = (depth: number, leaf: string, arrays: boolean): string => (arrays ? '['.repeat(depth) + leaf + ']'.repeat(depth) : '{"a":'.repeat(depth) + leaf + '}'.repeat(depth));
