// Small shared parts: one of each, used by every stage instead of local copies.
export { TypedEmitter, type Unsubscribe } from './emitter.js';
export { deferred, Waiters, type Deferred } from './deferred.js';
export { Mutex, type Release } from './lock.js';
export { intAtLeast, positiveInt, nonNegativeInt, nonNegativeNumber, positiveNumber, oneOf } from './validate.js';
