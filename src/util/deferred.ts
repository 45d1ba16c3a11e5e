// Promise plumbing shared by the stages: a deferred (a promise settled from outside) and a waiter
// set (callers park until something changes), instead of ad-hoc `(() => void)[]` arrays.

export interface Deferred<T> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** A promise with its resolve/reject exposed. Settling twice is a no-op, like the promise itself. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let settled = false;
  return {
    promise,
    get settled() {
      return settled;
    },
    resolve(value) {
      if (settled) return;
      settled = true;
      resolve(value);
    },
    reject(reason) {
      if (settled) return;
      settled = true;
      reject(reason);
    },
  };
}

/**
 * Callers waiting for a condition to change. `wait()` parks until a `wakeOne` (oldest waiter first)
 * or `wakeAll`; waiters re-check their condition themselves, so a wake never carries a value and
 * waking with nobody waiting is harmless.
 */
export class Waiters {
  private queue: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.queue.push(resolve));
  }

  /** Wakes the oldest waiter. Returns whether there was one. */
  wakeOne(): boolean {
    const w = this.queue.shift();
    w?.();
    return w !== undefined;
  }

  wakeAll(): void {
    // Swapped out first: a woken waiter that parks again joins the next round, not this one.
    const woken = this.queue;
    this.queue = [];
    for (const w of woken) w();
  }

  get size(): number {
    return this.queue.length;
  }
}
