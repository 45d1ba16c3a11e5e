// Deferred and the waiter set that replaces ad-hoc `(() => void)[]` arrays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Waiters, deferred } from '../../src/util/index.js';

test('deferred settles once and reports it', async () => {
  const d = deferred<number>();
  assert.equal(d.settled, false);
  d.resolve(1);
  d.resolve(2);
  d.reject(new Error('late'));
  assert.equal(d.settled, true);
  assert.equal(await d.promise, 1);
  const r = deferred();
  r.reject(new RangeError('no'));
  await assert.rejects(r.promise, RangeError);
});

test('wakeOne wakes the oldest waiter; wakeAll wakes everyone parked before it', async () => {
  const w = new Waiters();
  const order: number[] = [];
  const a = w.wait().then(() => order.push(1));
  const b = w.wait().then(() => order.push(2));
  assert.equal(w.size, 2);
  assert.equal(w.wakeOne(), true);
  await a;
  assert.deepEqual(order, [1]);
  assert.equal(w.size, 1);
  w.wakeAll();
  await b;
  assert.deepEqual(order, [1, 2]);
  assert.equal(w.size, 0);
  assert.equal(w.wakeOne(), false);
  w.wakeAll();
});

test('a waiter that parks again while being woken waits for the next wake', async () => {
  const w = new Waiters();
  let rounds = 0;
  const loop = (async () => {
    while (rounds < 3) {
      await w.wait();
      rounds++;
    }
  })();
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    w.wakeAll();
  }
  await loop;
  assert.equal(rounds, 3);
});
