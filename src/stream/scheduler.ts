// The scheduler that shares one loaded model fairly between sessions. The machine has a handful of
// cores and onnxruntime already uses them all for one run, so model work is serialised: each
// scheduling round visits the sessions round-robin, takes at most one frame from each (encoded
// together in one vision-encoder batch) or one slice of an answer, and never takes a session's
// frames out of order.
import type { EncodedFrame } from '../encode/index.js';
import type { Frame } from '../ingest/types.js';
import { Waiters } from '../util/deferred.js';
import { positiveInt } from '../util/validate.js';

/** What the scheduler needs from a session. Implemented by Session. */
export interface SchedulerClient {
  /** True when the session has an answer to start or continue (its frames wait meanwhile). */
  wantsAnswerTurn(): boolean;
  /** The next queued frame, in order, or undefined. */
  takeFrame(): Frame | undefined;
  /** Prunes and appends one encoded frame. Must not throw. */
  consumeEncoded(encoded: EncodedFrame): Promise<void>;
  /** The frame could not be encoded. Must not throw. */
  frameFailed(frame: Frame, error: unknown): void;
  /** Generates the next slice of the current answer. Must not throw. */
  runAnswerTurn(maxDeltas: number): Promise<void>;
}

/** One vision-encoder run over frames of any sessions, results in the same order. */
export type EncodeBatch = (frames: Frame[]) => Promise<EncodedFrame[]>;

/** Fair round-robin over sessions; see the file comment. */
export class FairScheduler {
  private readonly clients: SchedulerClient[] = [];
  private cursor = 0;
  private running = false;
  private again = false;
  private readonly idleWaiters = new Waiters();
  private readonly maxBatchFrames: number;
  private readonly answerDeltasPerTurn: number;

  /**
   * `maxBatchFrames`: most frames (of different sessions) one encode run takes.
   * `answerDeltasPerTurn`: text deltas an answer generates per turn before other sessions get theirs.
   */
  constructor(
    private readonly encodeBatch: EncodeBatch,
    maxBatchFrames: number,
    answerDeltasPerTurn: number,
  ) {
    this.maxBatchFrames = positiveInt('maxBatchFrames', maxBatchFrames);
    this.answerDeltasPerTurn = positiveInt('answerDeltasPerTurn', answerDeltasPerTurn);
  }

  add(client: SchedulerClient): void {
    if (!this.clients.includes(client)) this.clients.push(client);
  }

  remove(client: SchedulerClient): void {
    const i = this.clients.indexOf(client);
    if (i < 0) return;
    this.clients.splice(i, 1);
    if (this.cursor > i) this.cursor--;
    if (this.cursor >= this.clients.length) this.cursor = 0;
  }

  /** Some client has new work. */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  /** Resolves when no work is running or queued. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return this.idleWaiters.wait();
  }

  get sessionCount(): number {
    return this.clients.length;
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        const did = await this.round();
        if (!did && !this.again) break;
        // Let socket I/O (new frames, cancels, pings) in between rounds.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      this.idleWaiters.wakeAll();
    }
  }

  private async round(): Promise<boolean> {
    const n = this.clients.length;
    if (n === 0) return false;
    const frames: { client: SchedulerClient; frame: Frame }[] = [];
    const answerers: SchedulerClient[] = [];
    let visited = 0;
    for (; visited < n && frames.length < this.maxBatchFrames; visited++) {
      const c = this.clients[(this.cursor + visited) % n];
      if (c.wantsAnswerTurn()) answerers.push(c);
      else {
        const f = c.takeFrame();
        if (f) frames.push({ client: c, frame: f });
      }
    }
    this.cursor = n ? (this.cursor + visited) % n : 0;
    if (frames.length) {
      let encoded: EncodedFrame[] | undefined;
      try {
        encoded = await this.encodeBatch(frames.map((x) => x.frame));
      } catch (e) {
        for (const x of frames) x.client.frameFailed(x.frame, e);
      }
      if (encoded) for (let i = 0; i < frames.length; i++) await frames[i].client.consumeEncoded(encoded[i]);
    }
    for (const a of answerers) await a.runAnswerTurn(this.answerDeltasPerTurn);
    return frames.length > 0 || answerers.length > 0;
  }
}
