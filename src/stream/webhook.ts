// Webhook delivery for standing questions: POST JSON, retried with exponential backoff, through a
// bounded queue (drop-oldest) and a fixed number of concurrent deliveries, so a slow or dead
// receiver never blocks a stream or grows memory.
import { WinnowError } from '../errors.js';

export interface WebhookOptions {
  /** Deliveries waiting (not yet attempted or waiting for a retry). Overflow drops the oldest. Default 64. */
  maxQueued?: number;
  /** Deliveries in flight at once. Default 4. */
  concurrency?: number;
  /** Attempts per delivery (1 = no retry). Default 5. */
  attempts?: number;
  /** Delay before the first retry; doubles each time, ±20 % jitter. Default 500 ms. */
  initialBackoffMs?: number;
  /** Upper bound of the backoff. Default 10 000 ms. */
  maxBackoffMs?: number;
  /** Per-attempt timeout. Default 5 000 ms. */
  timeoutMs?: number;
  /** Called once per delivery that finally failed or was dropped. Must not throw. */
  onFailure?: (e: WinnowError, url: string) => void;
  /** Called once per delivery that succeeded. Must not throw. */
  onDelivered?: (url: string, attempts: number) => void;
}

interface Delivery {
  url: string;
  body: string;
  attempt: number;
}

export class WebhookSender {
  private readonly queue: Delivery[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly inflight = new Set<AbortController>();
  private active = 0;
  private closed = false;
  private readonly o: Required<Omit<WebhookOptions, 'onFailure' | 'onDelivered'>> & Pick<WebhookOptions, 'onFailure' | 'onDelivered'>;
  /** Deliveries that succeeded / finally failed / were dropped by the queue bound. */
  readonly counts = { delivered: 0, failed: 0, dropped: 0 };

  constructor(options: WebhookOptions = {}) {
    this.o = {
      maxQueued: options.maxQueued ?? 64,
      concurrency: options.concurrency ?? 4,
      attempts: options.attempts ?? 5,
      initialBackoffMs: options.initialBackoffMs ?? 500,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      timeoutMs: options.timeoutMs ?? 5_000,
      onFailure: options.onFailure,
      onDelivered: options.onDelivered,
    };
  }

  /** Queues one POST; returns at once. */
  send(url: string, payload: unknown): void {
    if (this.closed) return;
    this.enqueue({ url, body: JSON.stringify(payload), attempt: 0 });
  }

  private enqueue(d: Delivery): void {
    this.queue.push(d);
    if (this.queue.length > this.o.maxQueued) {
      const old = this.queue.shift()!;
      this.counts.dropped++;
      this.o.onFailure?.(new WinnowError('WINNOW_ERR_WEBHOOK', 'webhook queue full; delivery dropped', { details: { url: old.url } }), old.url);
    }
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.active < this.o.concurrency && this.queue.length) {
      const d = this.queue.shift()!;
      this.active++;
      void this.attempt(d).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async attempt(d: Delivery): Promise<void> {
    d.attempt++;
    const ac = new AbortController();
    this.inflight.add(ac);
    const timer = setTimeout(() => ac.abort(), this.o.timeoutMs);
    let error: WinnowError | undefined;
    try {
      const res = await fetch(d.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: d.body, signal: ac.signal, redirect: 'error' });
      // Drain the body so the connection is reused.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) error = new WinnowError('WINNOW_ERR_WEBHOOK', `webhook answered ${res.status}`, { retryable: res.status >= 500 || res.status === 429, details: { status: res.status } });
    } catch (e) {
      error = new WinnowError('WINNOW_ERR_WEBHOOK', `webhook request failed: ${(e as Error).message}`, { retryable: true, cause: e });
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
    if (!error) {
      this.counts.delivered++;
      this.o.onDelivered?.(d.url, d.attempt);
      return;
    }
    if (this.closed || !error.retryable || d.attempt >= this.o.attempts) {
      this.counts.failed++;
      this.o.onFailure?.(error, d.url);
      return;
    }
    const base = Math.min(this.o.maxBackoffMs, this.o.initialBackoffMs * 2 ** (d.attempt - 1));
    const delay = base * (0.8 + 0.4 * Math.random());
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) this.enqueue(d);
    }, delay);
    this.timers.add(t);
  }

  /** Stops retries and aborts requests in flight. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const ac of this.inflight) ac.abort();
    this.queue.length = 0;
  }
}
