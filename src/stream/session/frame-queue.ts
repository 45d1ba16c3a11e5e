// The session's bounded queue of decoded frames waiting for the model, and the one frame the model
// has at a time. Producers of inputs that must not lose frames park here until a slot frees.
import type { Frame } from '../../ingest/types.js';
import { Waiters } from '../../util/deferred.js';
import type { Input } from './input.js';

export interface QueuedFrame {
  frame: Frame;
  input: Input;
  enqueuedAt: number;
  /** Counted as discarded by close() while in the model; its result is ignored. */
  discarded?: boolean;
}

export class FrameQueue {
  private readonly frames: QueuedFrame[] = [];
  private current: QueuedFrame | undefined;
  private readonly room = new Waiters();

  constructor(readonly maxFrames: number) {}

  /** Frames waiting (not counting the one in the model). */
  get length(): number {
    return this.frames.length;
  }

  get full(): boolean {
    return this.frames.length >= this.maxFrames;
  }

  /** The frame the model has, if any. */
  get inFlight(): QueuedFrame | undefined {
    return this.current;
  }

  /** Whether a frame is waiting or in the model. */
  get busy(): boolean {
    return this.frames.length > 0 || this.current !== undefined;
  }

  push(q: QueuedFrame): void {
    this.frames.push(q);
  }

  /** Removes and returns the oldest waiting frame (keep-latest makes room with it). */
  dropOldest(): QueuedFrame | undefined {
    return this.frames.shift();
  }

  /** Hands the oldest frame to the model; none while the model still has one (frames stay in order). */
  take(): QueuedFrame | undefined {
    if (this.current) return undefined;
    const q = this.frames.shift();
    if (!q) return undefined;
    this.current = q;
    // A slot freed: a waiting producer may go on.
    this.room.wakeOne();
    return q;
  }

  /** The model is done with its frame. */
  release(): void {
    this.current = undefined;
  }

  /** Removes `input`'s waiting frames; returns how many. */
  removeInput(input: Input): number {
    let removed = 0;
    for (let i = this.frames.length - 1; i >= 0; i--) {
      if (this.frames[i].input !== input) continue;
      this.frames.splice(i, 1);
      removed++;
    }
    return removed;
  }

  /** Empties the queue for good: the waiting frames and the one in the model, each marked discarded once. */
  discardAll(): QueuedFrame[] {
    const out = this.frames.splice(0);
    if (this.current && !this.current.discarded) out.push(this.current);
    for (const q of out) q.discarded = true;
    return out;
  }

  /** Resolves when a slot may have freed; callers check `full` again. */
  waitForRoom(): Promise<void> {
    return this.room.wait();
  }

  /** Wakes every parked producer (an input ended, the session closes): they re-check and leave. */
  wakeProducers(): void {
    this.room.wakeAll();
  }
}
