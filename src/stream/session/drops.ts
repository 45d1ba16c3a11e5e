// Drop accounting: every frame that never reaches the context is counted once, under one policy,
// on the session and on its input; clients hear about drops in coalesced `dropped` events.
import { DROP_POLICIES, type DropPolicy } from '../protocol.js';
import type { SessionEvents } from './events.js';

/** At most one `dropped` event per policy in this window, so a flood of drops is not a flood of messages. */
export const DROP_COALESCE_MS = 200;

const zeroes = (): Record<DropPolicy, number> => ({ 'keep-latest': 0, 'fps-sampling': 0, 'discard-on-close': 0 });

export class DropLedger {
  private totalDropped = 0;
  private readonly byPolicy = zeroes();
  private readonly unreported = zeroes();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * `report`: one `dropped` event. `closing`: no timer is armed once it returns true (the closing
   * session flushes one last time itself, so nothing is reported after `closed`).
   */
  constructor(
    private readonly report: (e: SessionEvents['dropped']) => void,
    private readonly closing: () => boolean,
  ) {}

  get total(): number {
    return this.totalDropped;
  }

  /** A copy of the counts per policy. */
  get perPolicy(): Record<DropPolicy, number> {
    return { ...this.byPolicy };
  }

  /** Counts `n` drops under `policy`, also on `input` when the frames were one input's. */
  count(n: number, policy: DropPolicy, input?: { dropped: number }): void {
    this.totalDropped += n;
    this.byPolicy[policy] += n;
    this.unreported[policy] += n;
    if (input) input.dropped += n;
    if (this.timer || this.closing()) return;
    this.timer = setTimeout(() => this.flush(), DROP_COALESCE_MS);
  }

  /** Reports drops not reported yet (one event per policy). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const policy of DROP_POLICIES) {
      const count = this.unreported[policy];
      if (count === 0) continue;
      this.unreported[policy] = 0;
      this.report({ count, total: this.totalDropped, policy });
    }
  }
}
