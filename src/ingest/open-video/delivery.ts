// The bounded queue between ffmpeg and the consumer. A frame leaves it when the consumer has
// capacity: synchronous consumers have it again when `next` returns; asynchronous ones acknowledge
// each finished frame on `ack$`. When the queue is full, `pause-source` pauses ffmpeg's stdout (so
// ffmpeg blocks on its write and nothing piles up); `keep-latest` / `drop-oldest` keep reading
// (live sources must not fall behind) and count what they drop.
import type { Frame, OverflowPolicy } from '../types.js';

export interface DeliveryLimits {
  overflow: OverflowPolicy;
  maxQueuedFrames: number;
  maxInFlightFrames: number;
  maxFrames: number;
}

export interface DeliveryHooks {
  /** Hands one frame to the consumer. */
  next(frame: Frame): void;
  /** Frames were dropped; `droppedFrames` is the running total. */
  dropped(droppedFrames: number): void;
  /** The queue is full under `pause-source`: stop reading the producer. */
  pause(): void;
  /** There is room again: read the producer again (a no-op when it is not paused). */
  resume(): void;
  /** `maxFrames` frames were handed out. */
  limitReached(): void;
  /** Nothing is queued and nothing is unacknowledged. */
  drained(): void;
}

export class FrameDelivery {
  private readonly queue: Frame[] = [];
  private inFlight = 0;
  private handedOut = 0;
  private droppedFrames = 0;
  private pumping = false;
  private closed = false;

  /** `acked`: the consumer acknowledges frames (`ack()`) instead of being done when `next` returns. */
  constructor(
    private readonly limits: DeliveryLimits,
    private readonly acked: boolean,
    private readonly hooks: DeliveryHooks,
  ) {}

  /** Frames handed to the consumer so far (each got its `index` from this count). */
  get emitted(): number {
    return this.handedOut;
  }

  get queued(): number {
    return this.queue.length;
  }

  push(frame: Frame): void {
    const l = this.limits;
    this.queue.push(frame);
    if (this.queue.length > l.maxQueuedFrames && l.overflow !== 'pause-source') {
      const evict = this.queue.length - l.maxQueuedFrames;
      this.queue.splice(0, evict);
      this.droppedFrames += evict;
      this.hooks.dropped(this.droppedFrames);
    }
    this.pump();
    if (l.overflow === 'pause-source' && this.queue.length >= l.maxQueuedFrames && !this.closed) this.hooks.pause();
  }

  /** The consumer finished one frame. */
  ack(): void {
    if (this.inFlight > 0) this.inFlight--;
    this.pump();
  }

  /** Drops whatever is still queued (the stream ends without it). */
  discardQueued(): void {
    this.queue.length = 0;
  }

  /** Hands nothing out any more. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  /** Hands queued frames to the consumer while it has capacity; re-entrant calls (sync acks) fold into the loop. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const l = this.limits;
    try {
      while (!this.closed && this.queue.length > 0 && this.inFlight < l.maxInFlightFrames) {
        const frame = this.queue.shift()!;
        frame.index = this.handedOut++;
        this.inFlight++;
        this.hooks.next(frame);
        if (!this.acked && this.inFlight > 0) this.inFlight--;
        if (this.handedOut >= l.maxFrames) {
          this.hooks.limitReached();
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
    if (this.closed) return;
    if (this.queue.length < l.maxQueuedFrames) this.hooks.resume();
    if (this.queue.length === 0 && this.inFlight === 0) this.hooks.drained();
  }
}
