// Tests assert an error's code, never its message: these take the error out of a call for that.
import assert from 'node:assert/strict';
import { isWinnowError, type WinnowError } from '../../src/errors.js';

/** The code of the WinnowError `fn` throws; undefined when it returns; 'not a WinnowError' for anything else thrown. */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isWinnowError(e) ? e.code : 'not a WinnowError';
  }
  return undefined;
}

/** The WinnowError `p` rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<WinnowError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isWinnowError(e), `not a WinnowError: ${String(e)}`);
    return e;
  }
  assert.fail('resolved; a WinnowError was expected');
}
