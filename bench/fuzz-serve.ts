// The long run of the `winnow serve` fuzz suite: the same fast-check properties as
// test/stream/fuzz.test.ts (defined in test/stream/fuzz/), against real servers on
// 127.0.0.1 with the default model, with many more cases each. Prints per property how many cases
// it tried and whether it passed (a failure prints fast-check's seed, path and counterexample), then
// a summary. Exit status 1 when any property fails. Not part of `npm test`.
//   node --import tsx bench/fuzz-serve.ts [--scale 1] [--only jpeg,source] [--seed N [--path P]] [--quick]
// --scale multiplies every property's case count (--quick: 0.1); --only keeps properties whose
// name contains one of the words; --seed (and --path) replay a reported failure.
import { PROPERTIES, setupFuzz, worstHealthzMs } from '../test/stream/fuzz/index.js';
import { modelSkip } from '../test/stream/helpers.js';

const argOf = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const scale = Number(argOf('scale') ?? (process.argv.includes('--quick') ? 0.1 : 1));
const only = argOf('only')?.split(',');
const seedArg = argOf('seed');
const seed = seedArg === undefined ? undefined : Number(seedArg);
const path = argOf('path');

async function main(): Promise<void> {
  if (modelSkip) {
    console.log(`skipped: ${modelSkip}`);
    return;
  }
  const props = PROPERTIES.filter((p) => !only || only.some((w) => p.name.includes(w)));
  const t0 = performance.now();
  const env = await setupFuzz({ patience: 2 });
  console.log(`fuzzing winnow serve: ${props.length} properties, scale ${scale}${seed !== undefined ? `, seed ${seed}` : ''} (setup ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const failed: string[] = [];
  let total = 0;
  try {
    for (const p of props) {
      const numRuns = Math.max(1, Math.round(p.benchRuns * scale));
      const started = performance.now();
      try {
        const s = await p.run(env, { numRuns, shrinkBudgetMs: 60_000, ...(seed !== undefined ? { seed } : {}), ...(path !== undefined ? { path } : {}) });
        total += s.cases;
        console.log(
          `PASS ${p.name}: ${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s; event-loop delay p99 ${s.eldP99Ms.toFixed(1)} ms, max ${s.eldMaxMs.toFixed(1)} ms${s.notes.length ? `; ${s.notes.join('; ')}` : ''}`,
        );
      } catch (e) {
        const cases = env.stats.get(p.name)?.cases ?? 0;
        total += cases;
        failed.push(p.name);
        console.log(`FAIL ${p.name}: after ${cases} cases in ${((performance.now() - started) / 1000).toFixed(1)} s\n  ${(e as Error).message.replace(/\n/g, '\n  ')}`);
      }
    }
  } finally {
    await env.close();
    await env.engine.close();
  }
  const wall = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    failed.length === 0
      ? `all ${props.length} properties passed: ${total} cases in ${wall} s (slowest /healthz after a case ${worstHealthzMs().toFixed(0)} ms)`
      : `${failed.length} of ${props.length} properties FAILED (${failed.join('; ')}); ${total} cases in ${wall} s`,
  );
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'fuzz-serve', scale, properties: Object.fromEntries([...env.stats].map(([k, v]) => [k, v.cases])), total, failed })}`);
  if (failed.length) process.exitCode = 1;
}

await main();
