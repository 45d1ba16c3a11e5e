// The shared typed event emitter: order, unsubscribe, once, snapshots during emit, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypedEmitter } from '../../src/util/index.js';

interface Events {
  tick: { n: number };
  done: string;
}

test('listeners run in registration order and on() returns an idempotent unsubscribe', () => {
  const e = new TypedEmitter<Events>();
  const seen: string[] = [];
  const offA = e.on('tick', (t) => seen.push(`a${t.n}`));
  e.on('tick', (t) => seen.push(`b${t.n}`));
  e.emit('tick', { n: 1 });
  offA();
  offA();
  e.emit('tick', { n: 2 });
  assert.deepEqual(seen, ['a1', 'b1', 'b2']);
  assert.equal(e.listenerCount('tick'), 1);
  assert.equal(e.listenerCount('done'), 0);
});

test('the same function registered twice is two registrations', () => {
  const e = new TypedEmitter<Events>();
  let calls = 0;
  const fn = (): void => void calls++;
  const off1 = e.on('done', fn);
  e.on('done', fn);
  e.emit('done', 'x');
  assert.equal(calls, 2);
  off1();
  e.emit('done', 'y');
  assert.equal(calls, 3);
});

test('once fires once; listeners added or removed during an emit do not change that emit', () => {
  const e = new TypedEmitter<Events>();
  const seen: number[] = [];
  e.once('tick', (t) => seen.push(t.n));
  let offLate: (() => void) | undefined;
  const offB = e.on('tick', (t) => {
    seen.push(100 + t.n);
    offLate ??= e.on('tick', (u) => seen.push(200 + u.n));
  });
  e.on('tick', (t) => {
    seen.push(300 + t.n);
    offB();
  });
  e.emit('tick', { n: 1 });
  e.emit('tick', { n: 2 });
  assert.deepEqual(seen, [1, 101, 301, 302, 202]);
  e.removeAllListeners();
  e.emit('tick', { n: 3 });
  assert.equal(seen.length, 5);
});

test('a throwing listener reaches the emitter and stops that emit', () => {
  const e = new TypedEmitter<Events>();
  let after = 0;
  e.on('done', () => {
    throw new RangeError('boom');
  });
  e.on('done', () => void after++);
  assert.throws(() => e.emit('done', 'x'), RangeError);
  assert.equal(after, 0);
});
