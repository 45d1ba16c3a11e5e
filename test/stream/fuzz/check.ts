// How a fuzz property is declared and run: fc.assert(fc.asyncProperty(…)) with the bookkeeping the
// test and the bench print (cases tried, wall time, event-loop delay) and a time budget on shrinking,
// since one case against a real server can take seconds.
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import type { WinnowServer } from '../../../src/stream/index.js';
import type { TestClient } from '../helpers.js';
import { inSession } from './clients.js';
import type { FuzzEnv } from './env.js';

export interface PropertyStats {
  cases: number;
  ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  notes: string[];
}

export interface RunOptions {
  numRuns: number;
  seed?: number;
  /** With `seed`: replays the counterexample at this fast-check path. */
  path?: string;
  /** Stop shrinking a failure after this long (the counterexample found so far is reported). */
  shrinkBudgetMs?: number;
}

export interface FuzzProperty {
  name: string;
  /** One line: what it checks. */
  what: string;
  /** Cases inside npm test, and in bench/fuzz-serve.ts. */
  testRuns: number;
  benchRuns: number;
  run(env: FuzzEnv, o: RunOptions): Promise<PropertyStats>;
}

/** Extras of a run: lines for the report (read when the run ends) and cases tried before the generated ones, every run. */
export interface CheckExtras<T> {
  notes?: () => string[];
  /** Known-hostile inputs. */
  examples?: T[];
}

/** One run of a property, made afresh per run (so counters behind its notes start at zero). */
export interface PropertyRun {
  check(env: FuzzEnv, name: string, o: RunOptions): Promise<PropertyStats>;
}

/** `predicate` must hold for every value of `arb`. */
export function forAll<T>(arb: fc.Arbitrary<T>, predicate: (v: T) => Promise<void>, extras: CheckExtras<NoInfer<T>> = {}): PropertyRun {
  return { check: (env, name, o) => check(env, name, arb, predicate, o, extras) };
}

/** forAll where every case runs in a fresh session of `server`, after which `server` must still serve (clients.ts inSession). */
export function forAllSessions<T>(env: FuzzEnv, server: WinnowServer, arb: fc.Arbitrary<T>, body: (v: T, c: TestClient) => Promise<void>, extras: CheckExtras<NoInfer<T>> = {}): PropertyRun {
  return forAll(arb, (v) => inSession(env, server, (c) => body(v, c)), extras);
}

/** A property: `prepare` is called at the start of every run (it may check preconditions against `env`). */
export function property(meta: Omit<FuzzProperty, 'run'>, prepare: (env: FuzzEnv) => PropertyRun | Promise<PropertyRun>): FuzzProperty {
  return {
    ...meta,
    async run(env, o) {
      return (await prepare(env)).check(env, meta.name, o);
    },
  };
}

/** Counts how often each outcome was seen, for a property's notes. */
export class Tally {
  private readonly counts = new Map<string, number>();
  add(outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }
  toString(): string {
    return [...this.counts].map(([k, v]) => `${k} ×${v}`).join(', ');
  }
}

/**
 * Runs one property, counting every predicate call (shrinking included). A failure throws
 * fast-check's report (seed, path, counterexample, the assertion that failed).
 */
async function check<T>(env: FuzzEnv, name: string, arb: fc.Arbitrary<T>, predicate: (v: T) => Promise<void>, o: RunOptions, extras: CheckExtras<T>): Promise<PropertyStats> {
  const { notes = () => [], examples } = extras;
  let cases = 0;
  let failedAt: number | undefined;
  const budget = o.shrinkBudgetMs ?? 15_000;
  env.eld.reset();
  const t0 = performance.now();
  const record = (): PropertyStats => {
    const stats: PropertyStats = { cases, ms: performance.now() - t0, eldP99Ms: env.eld.percentile(99) / 1e6, eldMaxMs: env.eld.max / 1e6, notes: notes() };
    const prev = env.stats.get(name);
    env.stats.set(name, prev ? { ...stats, cases: prev.cases + cases, ms: prev.ms + stats.ms, notes: [...prev.notes, ...stats.notes] } : stats);
    return stats;
  };
  try {
    await fc.assert(
      fc.asyncProperty(arb, async (v) => {
        // Past the shrink budget every further candidate passes, so shrinking stops with the smallest failure so far.
        if (failedAt !== undefined && performance.now() - failedAt > budget) return;
        cases++;
        try {
          await predicate(v);
        } catch (e) {
          failedAt ??= performance.now();
          throw e;
        }
      }),
      {
        numRuns: o.numRuns,
        includeErrorInReport: true,
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        ...(o.path !== undefined ? { path: o.path } : {}),
        ...(examples ? { examples: examples.map((x) => [x] as [T]) } : {}),
      },
    );
  } catch (e) {
    record();
    let report = (e as Error).message;
    // Counterexamples can hold megabytes of text; keep the report readable.
    if (report.length > 12_000) report = `${report.slice(0, 8_000)}\n… (${report.length - 11_000} characters cut) …\n${report.slice(-3_000)}`;
    throw new Error(`property "${name}" failed (${cases} cases tried):\n${report}`);
  }
  return record();
}
