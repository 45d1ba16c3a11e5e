// Options and argument parsers several commands share, defined once so their flags, help, choices
// and checks cannot drift. The checks are src/util's; commander wants its own error type so that
// a bad flag prints commander's usage message and exits 2.
import { InvalidArgumentError, Option } from 'commander';
import { ENCODER_CHECK_POLICIES, type EncoderCheckPolicy } from '../../prune/types.js';
import { intAtLeast, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../../util/index.js';
import { toWinnowError } from '../../errors.js';

export type { EncoderCheckPolicy };

/** `--codebook-check`: see checkCodebookEncoder. `carryOn` says what `warn` goes on to do. */
export function codebookCheckOption(carryOn = 'prune anyway'): Option {
  return new Option('--codebook-check <policy>', `a codebook built for another vision encoder: error (default), warn and ${carryOn}, or off (no hashing)`).choices(ENCODER_CHECK_POLICIES);
}

type ArgParser<T> = (value: string) => T;

/** A src/util check as a commander argument parser for `flag`. */
function fromCheck(flag: string, check: (name: string, value: unknown) => number): ArgParser<number> {
  return (v) => {
    try {
      return check(flag, Number(v));
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

/** An integer ≥ 1. */
export const positiveIntArg = (flag: string): ArgParser<number> => fromCheck(flag, positiveInt);

/** An integer ≥ 0. */
export const nonNegativeIntArg = (flag: string): ArgParser<number> => fromCheck(flag, nonNegativeInt);

/** An integer ≥ `min`. */
export const intAtLeastArg = (flag: string, min: number): ArgParser<number> => fromCheck(flag, (name, value) => intAtLeast(name, value, min));

/** A finite number ≥ 0. */
export const nonNegativeNumberArg = (flag: string): ArgParser<number> => fromCheck(flag, nonNegativeNumber);

/** A finite number > 0. */
export const positiveNumberArg = (flag: string): ArgParser<number> => fromCheck(flag, positiveNumber);

/** A finite number in [min, max] (an integer with `integer`). */
export function numberInArg(flag: string, min: number, max: number, options: { integer?: boolean } = {}): ArgParser<number> {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (options.integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${flag} must be ${options.integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    }
    return n;
  };
}

/** Any finite number. */
export function numberArg(flag: string): ArgParser<number> {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number`);
    return n;
  };
}

/** A kept fraction of tokens, in (0, 1]. */
export function keptFractionArg(flag: string): ArgParser<number> {
  return (v) => {
    const n = Number(v);
    if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`${flag} must be in (0, 1]`);
    return n;
  };
}

/** A cosine similarity threshold, in [-1, 1]. */
export const similarityArg = (flag: string): ArgParser<number> => numberInArg(flag, -1, 1);

/** A comma-separated list of at least one item, each parsed by `parse`. */
export function listArg<T>(flag: string, parse: ArgParser<T>): ArgParser<T[]> {
  return (v) => {
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new InvalidArgumentError(`${flag} needs at least one value`);
    return items.map(parse);
  };
}

/**
 * How every command ends on an error: one line on stderr with the code, exit code 2 for a bad
 * argument (as commander's own usage errors), 1 for anything else.
 */
export function reportCommandError(command: string, e: unknown): void {
  const err = toWinnowError(e);
  process.stderr.write(`winnow ${command}: ${err.message} (${err.code})\n`);
  process.exitCode = err.code === 'WINNOW_ERR_INVALID_ARGUMENT' ? 2 : 1;
}
