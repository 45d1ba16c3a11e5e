// The `winnow serve` fuzz suite (issue "Hardening winnow serve"): fast-check properties that throw
// hostile client traffic at real servers on 127.0.0.1. test/stream/fuzz.test.ts runs every property
// with a few cases inside `npm test`; bench/fuzz-serve.ts runs the same properties with many more.
// Where things live: protocol.ts (what the docs promise), values/valid-events/invalid-events.ts (message
// arbitraries), oracle.ts (the expected answer to invalid text), images.ts and fixtures.ts (media),
// env.ts (the servers), clients.ts and raw-ws.ts (talking to them), check.ts (running a property),
// properties/ (the properties by concern).
import type { FuzzProperty } from './check.js';
import { authProperty, authWindowProperty } from './properties/auth.js';
import { patternsProperty, slowConsumerProperty } from './properties/connections.js';
import { binaryProperty, containerProperty, jpegProperty } from './properties/inputs.js';
import { fpsProperty, invalidText, mixedSequences, utf8Property } from './properties/messages.js';
import { floodProperty, sizeProperty, worstCaseProperty } from './properties/sizes.js';
import { sourceProperty } from './properties/sources.js';

export type { FuzzProperty, PropertyStats, RunOptions } from './check.js';
export { worstHealthzMs } from './clients.js';
export { setupFuzz, type FuzzEnv } from './env.js';

/** Every property, cheapest first. */
export const PROPERTIES: FuzzProperty[] = [
  invalidText,
  mixedSequences,
  fpsProperty,
  utf8Property,
  binaryProperty,
  sizeProperty,
  worstCaseProperty,
  floodProperty,
  jpegProperty,
  containerProperty,
  sourceProperty('path'),
  sourceProperty('url'),
  patternsProperty('ws'),
  patternsProperty('raw'),
  slowConsumerProperty,
  authProperty,
  authWindowProperty,
];
