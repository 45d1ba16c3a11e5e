// Property-based fuzzing of `winnow serve` (issue "Hardening winnow serve") with fast-check, against
// real servers on 127.0.0.1 with the default model: every client event type mutated, hostile types,
// structure and size bombs, invalid UTF-8, binary frames and images, pushed-container bombs,
// source.open path/URL forms, connection patterns, slow consumers and auth throttling. What each
// property asserts is in test/stream/fuzz/ (PROPERTIES in index.ts); here each runs with a few
// cases. A failure prints fast-check's seed, path and counterexample; replay it with
//   FUZZ_ONLY='<property name>' FUZZ_SEED=<seed> FUZZ_PATH=<path> node scripts/run-tests.mjs test/stream/fuzz
// and scale the cases with FUZZ_RUNS_SCALE=<factor>. The long run is bench/fuzz-serve.ts.
import { test, before, after } from 'node:test';
import { PROPERTIES, setupFuzz, worstHealthzMs, type FuzzEnv } from './fuzz/index.js';
import { modelSkip } from './helpers.js';

const skip = modelSkip;
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const path = process.env.FUZZ_PATH;
const only = process.env.FUZZ_ONLY;
const scale = Number(process.env.FUZZ_RUNS_SCALE ?? 1);
let env: FuzzEnv;
const t0 = performance.now();

before(async () => {
  if (skip) return;
  env = await setupFuzz();
});

after(async () => {
  if (skip || !env) return;
  const stats = [...env.stats.values()];
  const total = stats.reduce((n, s) => n + s.cases, 0);
  console.log(
    `fuzz: ${total} cases tried in ${stats.length} properties in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
      `(${[...env.stats].map(([name, s]) => `${name}: ${s.cases}`).join('; ')}); slowest /healthz after a case ${worstHealthzMs().toFixed(0)} ms`,
  );
  await env.close();
  await env.engine.close();
});

for (const p of PROPERTIES) {
  const skipThis = skip || (only !== undefined && !p.name.includes(only) ? `FUZZ_ONLY=${only}` : false);
  test(`fuzz: ${p.name}`, { skip: skipThis }, async (t) => {
    const s = await p.run(env, { numRuns: Math.max(1, Math.round(p.testRuns * scale)), ...(seed !== undefined ? { seed } : {}), ...(path !== undefined ? { path } : {}) });
    t.diagnostic(`${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s; event-loop delay p99 ${s.eldP99Ms.toFixed(1)} ms, max ${s.eldMaxMs.toFixed(1)} ms${s.notes.length ? `; ${s.notes.join('; ')}` : ''}`);
  });
}
