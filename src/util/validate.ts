// Argument checks shared by every stage: a bad option fails the call that received it with
// WINNOW_ERR_INVALID_ARGUMENT, naming the option, before any work starts. Each check returns the
// value so it reads inline: `const n = positiveInt('batchSize', options.batchSize ?? 4)`.
import { WinnowError } from '../errors.js';

function invalid(name: string, value: unknown, expected: string, details: Record<string, unknown> = {}): never {
  throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be ${expected}, got ${String(value)}`, { details: { name, ...details } });
}

/** An integer ≥ `min`. */
export function intAtLeast(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) invalid(name, value, `an integer ≥ ${min}`, { min });
  return value;
}

/** An integer ≥ 1. */
export function positiveInt(name: string, value: unknown): number {
  return intAtLeast(name, value, 1);
}

/** An integer ≥ 0. */
export function nonNegativeInt(name: string, value: unknown): number {
  return intAtLeast(name, value, 0);
}

/** A finite number ≥ 0. */
export function nonNegativeNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalid(name, value, 'a number ≥ 0', { min: 0 });
  return value;
}

/** A finite number > 0. */
export function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) invalid(name, value, 'a number > 0');
  return value;
}

/** One of `allowed`. */
export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) invalid(name, value, `one of ${allowed.join(', ')}`, { allowed: allowed.join(',') });
  return value as T;
}
