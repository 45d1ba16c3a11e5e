// Public library surface. Each stage re-exports its own small public API.
export { WinnowError, isWinnowError } from './errors.js';
export type { WinnowErrorCode, WinnowErrorOptions } from './errors.js';
export type { Frame } from './ingest/types.js';
