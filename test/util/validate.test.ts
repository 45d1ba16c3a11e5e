// Shared argument checks: values pass through; bad ones fail with WINNOW_ERR_INVALID_ARGUMENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WinnowError } from '../../src/errors.js';
import { intAtLeast, nonNegativeInt, nonNegativeNumber, oneOf, positiveInt, positiveNumber } from '../../src/util/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof WinnowError ? e.code : 'not a WinnowError';
  }
}

test('valid values are returned unchanged', () => {
  assert.equal(positiveInt('n', 1), 1);
  assert.equal(positiveInt('n', 2 ** 40), 2 ** 40);
  assert.equal(nonNegativeInt('n', 0), 0);
  assert.equal(intAtLeast('n', -3, -5), -3);
  assert.equal(nonNegativeNumber('ms', 0.5), 0.5);
  assert.equal(positiveNumber('fps', 0.001), 0.001);
  assert.equal(oneOf('mode', 'b', ['a', 'b'] as const), 'b');
});

test('invalid values fail with WINNOW_ERR_INVALID_ARGUMENT and name the option', () => {
  const bad: (() => unknown)[] = [
    () => positiveInt('n', 0),
    () => positiveInt('n', 1.5),
    () => positiveInt('n', Number.NaN),
    () => positiveInt('n', '3'),
    () => positiveInt('n', undefined),
    () => nonNegativeInt('n', -1),
    () => intAtLeast('n', 4, 5),
    () => nonNegativeNumber('ms', -0.1),
    () => nonNegativeNumber('ms', Number.POSITIVE_INFINITY),
    () => positiveNumber('fps', 0),
    () => oneOf('mode', 'c', ['a', 'b']),
  ];
  for (const fn of bad) assert.equal(code(fn), 'WINNOW_ERR_INVALID_ARGUMENT');
  try {
    positiveInt('maxFrames', 0);
  } catch (e) {
    assert.equal((e as WinnowError).details.name, 'maxFrames');
    assert.equal((e as WinnowError).details.min, 1);
  }
});
