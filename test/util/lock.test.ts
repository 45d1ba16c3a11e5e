// The shared FIFO mutex: holders run one at a time, in the order they asked; errors release it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mutex } from '../../src/util/index.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('holders never overlap and run in request order', async () => {
  const m = new Mutex();
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  await Promise.all(
    [0, 1, 2, 3, 4].map((i) =>
      m.runExclusive(async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await tick();
        order.push(i);
        inside--;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(m.locked, false);
});

test('release is idempotent and a throwing holder releases the lock', async () => {
  const m = new Mutex();
  const release = await m.acquire();
  assert.equal(m.locked, true);
  let second = false;
  const next = m.acquire().then((r) => {
    second = true;
    return r;
  });
  await tick();
  assert.equal(second, false);
  release();
  release();
  const r2 = await next;
  assert.equal(second, true);
  r2();
  await assert.rejects(m.runExclusive(() => Promise.reject(new RangeError('x'))), RangeError);
  assert.equal(await m.runExclusive(() => 7), 7);
  assert.equal(m.locked, false);
});
