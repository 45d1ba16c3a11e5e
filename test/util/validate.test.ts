// Shared argument checks: values pass through; bad ones fail with WINNOW_ERR_INVALID_ARGUMENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { intAtLeast, nonNegativeInt, nonNegativeNumber, oneOf, positiveInt, positiveNumber } from '../../src/util/index.js';
import { thrownCode } from '../shared/index.js';


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
  for (const fn of bad) assert.equal(thrownCode(fn), 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.throws(() => positiveInt('maxFrames', 0), { details: { name: 'maxFrames', min: 1 } });
});
