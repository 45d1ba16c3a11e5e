// Answers: questions asked on a session (responses) and standing questions when they are due (watch
// jobs), answered one at a time in order, a few deltas per scheduler turn. Each response is handed
// out as an Answer: an async iterable of text deltas with `done` and `cancel()`.
import { randomInt, randomUUID } from 'node:crypto';
import { WinnowError, toWinnowError } from '../../errors.js';
import type { AnswerResult } from '../../llm/index.js';
import { Waiters, deferred, type Deferred } from '../../util/deferred.js';
import type { StreamLimits } from '../limits.js';
import type { SessionContext } from './engine-needs.js';
import type { AnswerDone, SessionEvents } from './events.js';

export interface AskOptions {
  maxNewTokens?: number;
  temperature?: number;
  signal?: AbortSignal;
  /** Called with each text delta as it is generated (the async iterator gets them too). */
  onDelta?: (delta: string) => void;
}

/**
 * A streaming answer: iterate it for text deltas (breaking out of the loop cancels the answer);
 * `done` resolves with the final text, usage and timings.
 */
export interface Answer extends AsyncIterable<string> {
  readonly id: string;
  readonly question: string;
  readonly done: Promise<AnswerDone>;
  cancel(): void;
}

/** What an answer was conditioned on, captured when it starts. */
export interface AnswerBasis {
  kept: number;
  total: number;
  /** Newest frame in context. */
  ptsMs: number;
  frames: number;
}

interface Job {
  id: string;
  question: string;
  kind: 'response' | 'watch';
  watchId?: string;
  maxNewTokens: number;
  temperature: number;
  /** Sampling seed of this answer (used when temperature > 0). */
  seed: number;
  createdAt: number;
  startedAt?: number;
  firstDeltaAt?: number;
  ac: AbortController;
  gen?: AsyncGenerator<string, AnswerResult, void>;
  text: string;
  deltas: number;
  basis: AnswerBasis;
  finished: boolean;
  onDelta?: (d: string) => void;
  /** Deltas not read by the Answer's iterator yet. */
  buffer: string[];
  /** The iterator waiting for a delta or the end. */
  readers: Waiters;
  done: Deferred<AnswerDone>;
}

export interface AnswersHost {
  readonly limits: StreamLimits;
  /** The session has work for the scheduler. */
  wake(): void;
  closing(): boolean;
  context(): SessionContext;
  basis(): AnswerBasis;
  prefilled(e: SessionEvents['prefilled']): void;
  /** A standing question's job ended; `answer` when it completed and the session is open. */
  watchDone(watchId: string, result: { question: string; answer: string; basis: AnswerBasis } | undefined): void;
}

let responseCounter = 0;

const round1 = (x: number): number => Math.round(x * 10) / 10;

export class AnswerQueue {
  private readonly jobs: Job[] = [];
  private active: Job | undefined;
  private aborted: Job[] = [];

  constructor(private readonly host: AnswersHost) {}

  /** Answers waiting or running (standing questions included). */
  get pending(): number {
    return this.jobs.length + (this.active ? 1 : 0);
  }

  /** Whether an answer is waiting or running: the session wants an answer turn. */
  get busy(): boolean {
    return this.active !== undefined || this.jobs.length > 0;
  }

  /** Queues a response (limits checked by the caller's `checkQuestion` and here) and returns its handle. */
  ask(question: string, options: AskOptions, defaults: { maxNewTokens: number; temperature: number }): Answer {
    const L = this.host.limits;
    const pending = this.jobs.filter((j) => j.kind === 'response').length + (this.active?.kind === 'response' ? 1 : 0);
    if (pending >= L.maxPendingResponses) {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${pending} responses are already pending; the limit maxPendingResponses is ${L.maxPendingResponses}`, {
        retryable: true,
        details: { limit: 'maxPendingResponses', max: L.maxPendingResponses },
      });
    }
    const maxNewTokens = options.maxNewTokens ?? defaults.maxNewTokens;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxNewTokens must be a positive integer');
    if (maxNewTokens > L.maxNewTokens) {
      throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `maxNewTokens ${maxNewTokens} exceeds the server limit ${L.maxNewTokens}`, {
        details: { limit: 'maxNewTokens', value: maxNewTokens, max: L.maxNewTokens },
      });
    }
    const job = this.newJob('response', question, maxNewTokens, options.temperature ?? defaults.temperature, options.onDelta);
    if (options.signal) {
      if (options.signal.aborted) job.ac.abort();
      else options.signal.addEventListener('abort', () => this.cancelJob(job), { once: true });
    }
    this.jobs.push(job);
    this.host.wake();
    return this.handle(job);
  }

  /** Queues a standing question (greedy); its result goes to `AnswersHost.watchDone`. */
  askWatch(watchId: string, question: string, maxNewTokens: number): void {
    const job = this.newJob('watch', question, maxNewTokens, 0);
    job.watchId = watchId;
    this.jobs.push(job);
  }

  /** Cancels a response by id, or the one being generated. Returns whether one was found. */
  cancel(responseId?: string): boolean {
    const job =
      responseId === undefined
        ? this.active?.kind === 'response'
          ? this.active
          : this.jobs.find((j) => j.kind === 'response')
        : [this.active, ...this.jobs].find((j) => j?.id === responseId);
    if (!job || job.finished) return false;
    this.cancelJob(job);
    return true;
  }

  /** Generates up to `maxDeltas` deltas of the current answer (starting the next one when none runs). */
  async runTurn(maxDeltas: number): Promise<void> {
    const job = this.active ?? this.jobs.shift();
    if (!job) return;
    this.active = job;
    try {
      if (job.ac.signal.aborted) {
        if (job.gen) await job.gen.return(undefined as never).catch(() => undefined);
        this.finish(job, 'cancelled', null);
        return;
      }
      if (!job.gen) {
        job.startedAt = performance.now();
        job.basis = this.host.basis();
        job.gen = this.host.context().askStream(job.question, { signal: job.ac.signal, maxNewTokens: job.maxNewTokens, temperature: job.temperature, seed: job.seed });
      }
      for (let i = 0; i < maxDeltas; i++) {
        const r = await job.gen.next();
        if (r.done) {
          this.finish(job, 'completed', r.value);
          return;
        }
        if (job.firstDeltaAt === undefined) job.firstDeltaAt = performance.now();
        job.text += r.value;
        job.deltas++;
        if (job.kind === 'response') {
          job.buffer.push(r.value);
          job.readers.wakeAll();
          job.onDelta?.(r.value);
        }
        if (job.ac.signal.aborted) break;
      }
    } catch (e) {
      const err = toWinnowError(e, 'WINNOW_ERR_INFERENCE');
      if (err.code === 'WINNOW_ERR_ABORTED' || job.ac.signal.aborted) this.finish(job, 'cancelled', null);
      else this.finish(job, 'failed', null, err);
    }
  }

  /** Closing, step one: every answer is aborted and none starts any more. */
  abortAll(): void {
    this.aborted = [...(this.active ? [this.active] : []), ...this.jobs];
    this.jobs.length = 0;
    for (const j of this.aborted) j.ac.abort();
  }

  /** Closing, step two: the aborted answers' generators are returned and every `done` resolves `cancelled`. */
  async finishAborted(): Promise<void> {
    for (const j of this.aborted.splice(0)) {
      if (j.gen) await j.gen.return(undefined as never).catch(() => undefined);
      this.finish(j, 'cancelled', null);
    }
    this.active = undefined;
  }

  private newJob(kind: Job['kind'], question: string, maxNewTokens: number, temperature: number, onDelta?: (d: string) => void): Job {
    return {
      id: `resp_${(++responseCounter).toString(36)}_${randomUUID().slice(0, 6)}`,
      question,
      kind,
      maxNewTokens,
      temperature,
      // A fresh seed per answer: with the library's fixed default every sampled answer to the same
      // question on the same context would be the same one.
      seed: randomInt(0, 2 ** 31 - 1),
      createdAt: performance.now(),
      ac: new AbortController(),
      text: '',
      deltas: 0,
      basis: { kept: 0, total: 0, ptsMs: 0, frames: 0 },
      finished: false,
      ...(onDelta ? { onDelta } : {}),
      buffer: [],
      readers: new Waiters(),
      done: deferred<AnswerDone>(),
    };
  }

  private handle(job: Job): Answer {
    const cancel = (): void => this.cancelJob(job);
    return {
      id: job.id,
      question: job.question,
      done: job.done.promise,
      cancel,
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<string>> => {
          for (;;) {
            const d = job.buffer.shift();
            if (d !== undefined) return { value: d, done: false };
            if (job.finished) return { value: undefined, done: true };
            await job.readers.wait();
          }
        },
        // Leaving a for-await loop early means the rest of the answer is not wanted.
        return: async (): Promise<IteratorResult<string>> => {
          cancel();
          return { value: undefined, done: true };
        },
      }),
    };
  }

  private cancelJob(job: Job): void {
    if (job.finished) return;
    job.ac.abort();
    const i = this.jobs.indexOf(job);
    if (i >= 0) {
      this.jobs.splice(i, 1);
      this.finish(job, 'cancelled', null);
    } else {
      // Active: the scheduler's next turn sees the abort and finishes it.
      this.host.wake();
    }
  }

  private finish(job: Job, status: AnswerDone['status'], result: AnswerResult | null, error?: WinnowError): void {
    if (job.finished) return;
    job.finished = true;
    if (this.active === job) this.active = undefined;
    const now = performance.now();
    const done: AnswerDone = {
      id: job.id,
      status,
      text: job.text.trim(),
      stopReason: result?.stopReason ?? null,
      usage: {
        visualTokensKept: job.basis.kept,
        visualTokensTotal: job.basis.total,
        promptTokens: result ? result.contextTokens + result.questionTokens : 0,
        outputTokens: result ? result.generatedTokens : job.deltas,
      },
      timings: {
        ttftMs: job.firstDeltaAt !== undefined ? round1(job.firstDeltaAt - job.createdAt) : result ? round1((job.startedAt ?? now) - job.createdAt + result.ttftMs) : -1,
        totalMs: round1(now - job.createdAt),
        queueMs: round1((job.startedAt ?? now) - job.createdAt),
      },
      ...(error ? { error } : {}),
    };
    job.readers.wakeAll();
    if (result) this.host.prefilled({ kind: job.kind, prefillMs: result.prefillMs, questionTokens: result.questionTokens });
    if (job.kind === 'watch' && job.watchId) {
      this.host.watchDone(job.watchId, status === 'completed' && !this.host.closing() ? { question: job.question, answer: done.text, basis: job.basis } : undefined);
    }
    job.done.resolve(done);
  }
}
