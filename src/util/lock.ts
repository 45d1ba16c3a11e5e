// A FIFO mutex for async work on one shared resource (a KV cache, a model session): holders run
// one at a time, in the order they asked.

/** Releases a held lock. Calling it more than once releases once. */
export type Release = () => void;

export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  /** Resolves once every earlier holder has released, with this holder's release function. */
  acquire(): Promise<Release> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => mine);
    this.holders++;
    let released = false;
    return prev.then(() => () => {
      if (released) return;
      released = true;
      this.holders--;
      release();
    });
  }

  /** Runs `fn` holding the lock; releases it however `fn` ends. */
  async runExclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Whether someone holds the lock or waits for it. */
  get locked(): boolean {
    return this.holders > 0;
  }
}
