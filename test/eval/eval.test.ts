// `winnow eval` on a tiny rendered set (2 stills, one 5-s video), checking its own arithmetic:
// `none` answers equal what `winnow ask` answers on the same scenes, kept counts equal what the
// `winnow ask` pipeline's pruner reports for the same setting, per-family accuracies and kept
// fractions recompute from the saved answers, the τ sweep reports the point closest to each
// budget, and the Markdown table says what the JSON says. None of it depends on answer quality.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { AskPipeline } from '../../src/cli/commands/ask.js';
import { README_BEGIN, README_END, updateReadme } from '../../src/cli/commands/eval.js';
import {
  Evaluator,
  TABLE_COLUMNS,
  parseTable,
  partTable,
  quantileThreshold,
  readTruth,
  runEval,
  selectCheckpoints,
  writeEvalSet,
  type EvalReport,
  type SceneResult,
} from '../../src/eval/index.js';
import type { QaPair } from '../../src/synth/index.js';
import { fileTempDir, modelSkip, runCli } from '../shared/index.js';
import { makeBackgroundCodebook } from './helpers.js';

const skip = modelSkip;
const tmp = fileTempDir('winnow-eval-');
let dir: string;
let setDir: string;
let codebook: string;
let report: EvalReport;

before(async () => {
  if (skip) return;
  dir = tmp.dir;
  setDir = join(dir, 'set');
  await writeEvalSet({ outDir: setDir, seed: 4000, stills: 2, videos: 1, minDurationS: 5, maxDurationS: 5 });
  const ev = await Evaluator.load({ threads: 1 });
  try {
    codebook = await makeBackgroundCodebook(ev, join(dir, 'cb'));
  } finally {
    await ev.close();
  }
  report = await runEval({
    setDir,
    codebook,
    threads: 1,
    strategies: ['none', 'threshold', 'ratio', 'random', 'threshold+temporal'],
    budgets: [0.1, 0.5],
    checkpoints: 2,
    calibrationScenes: { stills: 1, videos: 1 },
    saveAnswers: true,
  });
});

function scenes(): SceneResult[] {
  assert.ok(report.scenes, 'saveAnswers keeps the per-scene answers');
  return report.scenes;
}

function cfg(r: SceneResult, id: string) {
  const c = r.configs.find((x) => x.configId === id);
  assert.ok(c, `config ${id} ran on ${r.scene.name}`);
  return c;
}

test('the set records its seed and the report its composition', { skip }, async () => {
  assert.equal(report.set.seed, 4000);
  assert.equal(report.set.stills, 2);
  assert.equal(report.set.videos, 1);
  assert.deepEqual(report.set.videoDurationsS, [5]);
  assert.deepEqual(report.parts.map((p) => p.part), ['stills', 'videos']);
  // Temporal filtering needs several frames: not run on stills, and said so.
  assert.ok(report.parts[0].skipped.some((s) => s.strategy === 'threshold+temporal'));
});

test('none answers what `winnow ask` answers on the same scenes', { skip }, async () => {
  const pipeline = await AskPipeline.load({ fps: 1, strategy: 'none', codebook, threads: 1 }, { log: () => undefined });
  try {
    for (const r of scenes()) {
      const none = cfg(r, 'none');
      // Ask answers about the whole source, i.e. the last moment the eval asked at.
      const lastT = Math.max(...none.answers.map((a) => a.tMs));
      const atEnd = none.answers.filter((a) => a.tMs === lastT);
      assert.ok(atEnd.length > 0);
      const got = await pipeline.run(r.scene.path, atEnd.map((a) => a.question), { log: () => undefined });
      assert.equal(got.length, atEnd.length);
      for (let i = 0; i < atEnd.length; i++) {
        const e = atEnd[i];
        const a = got[i];
        // Same verdict as exact match on ask's full answer…
        assert.equal(a.answer === e.expected, e.correct, `${r.scene.name}: "${e.question}" ask="${a.answer}" eval="${e.answer}"`);
        // …and the same text (the eval stops one token past the expected length).
        if (e.truncated) assert.ok(a.answer.startsWith(e.answer), `${r.scene.name}: ask="${a.answer}" should start with eval="${e.answer}"`);
        else assert.equal(a.answer, e.answer);
        assert.equal(a.keptTokens, none.keptTokens);
        assert.equal(a.totalTokens, none.totalTokens);
        assert.equal(a.frames, none.frames);
      }
    }
  } finally {
    await pipeline.close();
  }
});

test('kept counts equal the `winnow ask` pruner stats for the same settings', { skip }, async () => {
  // Threshold sweeps are calibrated per part, so each part has its own τ values.
  const settings: { id: string; part?: 'stills' | 'videos'; opts: Record<string, unknown> }[] = [
    { id: 'ratio@0.1', opts: { strategy: 'ratio', ratio: 0.1 } },
    { id: 'random@0.5', opts: { strategy: 'random', ratio: 0.5 } },
  ];
  for (const part of report.parts) {
    const thr = part.rows.find((r) => r.strategy === 'threshold' && r.budget === 0.1)?.summary.config;
    assert.ok(thr);
    settings.push({ id: thr.id, part: part.part, opts: { strategy: 'threshold', tau: thr.tau } });
  }
  const tt = report.parts.find((p) => p.part === 'videos')?.rows.find((r) => r.strategy === 'threshold+temporal')?.summary.config;
  assert.ok(tt && tt.temporalTau !== undefined);
  settings.push({ id: tt.id, part: 'videos', opts: { strategy: 'threshold', tau: tt.tau, temporal: tt.temporalTau } });
  for (const s of settings) {
    const pipeline = await AskPipeline.load({ fps: 1, codebook, threads: 1, maxNewTokens: 1, ...s.opts }, { log: () => undefined });
    try {
      for (const r of scenes()) {
        if (s.part && r.scene.part !== s.part) continue;
        const c = cfg(r, s.id);
        const [a] = await pipeline.run(r.scene.path, ['is there a red circle?'], { log: () => undefined });
        assert.equal(a.keptTokens, c.keptTokens, `${s.id} on ${r.scene.name}`);
        assert.equal(a.totalTokens, c.totalTokens, `${s.id} on ${r.scene.name}`);
        assert.equal(a.frames, c.frames);
      }
    } finally {
      await pipeline.close();
    }
  }
  // Ratio strategies keep round(L·r) per frame exactly.
  for (const r of scenes()) {
    const c = cfg(r, 'ratio@0.1');
    const L = c.totalTokens / c.frames;
    assert.equal(c.keptTokens, c.frames * Math.round(L * 0.1));
  }
});

test('accuracies, kept fractions and relative-to-none recompute from the saved answers', { skip }, async () => {
  for (const part of report.parts) {
    const mine = scenes().filter((s) => s.scene.part === part.part);
    const none = part.configs.find((c) => c.config.strategy === 'none');
    assert.ok(none);
    for (const s of part.configs) {
      let kept = 0;
      let total = 0;
      let frames = 0;
      const fam = new Map<string, { c: number; t: number }>();
      for (const r of mine) {
        const c = cfg(r, s.config.id);
        kept += c.keptTokens;
        total += c.totalTokens;
        frames += c.frames;
        for (const a of c.answers) {
          const f = fam.get(a.family) ?? { c: 0, t: 0 };
          f.t++;
          if (a.correct) f.c++;
          fam.set(a.family, f);
          assert.equal(a.correct, !a.truncated && a.answer === a.expected);
        }
      }
      assert.equal(s.frames, frames);
      assert.ok(Math.abs(s.keptFraction - kept / total) < 1e-12);
      assert.ok(Math.abs(s.meanKeptPerFrame - kept / frames) < 1e-12);
      let hc = 0;
      let ht = 0;
      for (const [f, v] of fam) {
        assert.deepEqual([s.families[f as 'F1']?.correct, s.families[f as 'F1']?.total], [v.c, v.t], `${s.config.id} ${f}`);
        if (part.headlineFamilies.includes(f as 'F1')) {
          hc += v.c;
          ht += v.t;
        }
      }
      assert.deepEqual([s.headline.correct, s.headline.total], [hc, ht]);
      const base = none.headline.accuracy;
      if (base) assert.ok(Math.abs((s.relativeToNone ?? NaN) - (s.headline.accuracy as number) / base) < 1e-12);
      else assert.equal(s.relativeToNone, null);
    }
    // Every setting was asked the same questions.
    assert.equal(new Set(part.configs.map((c) => c.questions)).size, 1);
  }
});

test('a swept strategy is reported at the sweep point closest to each budget', { skip }, async () => {
  for (const part of report.parts) {
    for (const row of part.rows) {
      if (row.budget === null || !['threshold', 'threshold+temporal'].includes(row.strategy)) continue;
      const sweep = part.configs.filter((c) => c.config.strategy === row.strategy);
      assert.ok(sweep.length >= 2);
      const best = Math.min(...sweep.map((c) => Math.abs(c.keptFraction - row.budget!)));
      assert.ok(Math.abs(Math.abs(row.summary.keptFraction - row.budget) - best) < 1e-12, `${part.part} ${row.strategy}@${row.budget}`);
    }
    assert.ok(part.rows.some((r) => r.label === 'codebook default'), 'the codebook default τ has its own row');
  }
});

test('the Markdown table says what the JSON says', { skip }, async () => {
  for (const part of report.parts) {
    const { header, rows } = parseTable(partTable(part));
    assert.deepEqual(header, TABLE_COLUMNS[part.part]);
    assert.equal(rows.length, part.rows.length);
    const col = (name: string): number => header.indexOf(name);
    const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : (100 * x).toFixed(1));
    for (let i = 0; i < rows.length; i++) {
      const s = part.rows[i].summary;
      assert.equal(rows[i][col('strategy')], part.rows[i].strategy);
      assert.equal(rows[i][col('kept %')], pct(s.keptFraction));
      assert.equal(rows[i][col('kept/frame')], s.meanKeptPerFrame.toFixed(1));
      assert.equal(rows[i][col(part.part === 'stills' ? 'frame acc %' : 'video acc %')], pct(s.headline.accuracy));
      for (const f of part.headlineFamilies) assert.equal(rows[i][col(f)], pct(s.families[f]?.accuracy));
      assert.equal(rows[i][col('prefill ms/frame')], s.prefillMsPerFrame.toFixed(2));
    }
  }
});

test('winnow eval CLI writes the table, the JSON, a PNG plot and the README block', { skip }, async () => {
  const out = join(dir, 'r.json');
  const plot = join(dir, 'plot.png');
  const readme = join(dir, 'README.md');
  await writeFile(readme, `# x\n\n## Evaluation\n\n${README_BEGIN}\nold\n${README_END}\n\nafter\n`);
  const r = runCli(
    [
      'eval',
      '--set', setDir, '--codebook', codebook, '--strategies', 'none,pool,ratio', '--keep', '0.1', '--max-videos', '0',
      '--threads', '1', '--out', out, '--plot', plot, '--readme', readme,
    ],
    { cwd: tmpdir() },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\| strategy \| budget \|/);
  const json = JSON.parse(await readFile(out, 'utf8')) as EvalReport;
  assert.equal(json.set.seed, 4000);
  assert.deepEqual(json.parts[0].rows.map((x) => x.strategy), ['none', 'pool', 'ratio']);
  const meta = await sharp(plot).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 400 && (meta.height ?? 0) > 200);
  const md = await readFile(readme, 'utf8');
  assert.ok(!md.includes('\nold\n'));
  assert.ok(md.includes('![accuracy vs kept visual tokens](plot.png)'));
  assert.ok(md.includes('| strategy | budget |') && md.endsWith('after\n'));
  await assert.rejects(updateReadme(join(dir, 'r.json'), 'x'), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});

test('bad arguments fail with codes', { skip }, async () => {
  await assert.rejects(runEval({ setDir, strategies: ['nope' as never] }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  await assert.rejects(runEval({ setDir, budgets: [1.5] }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  await assert.rejects(runEval({ setDir: join(dir, 'cb') }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
  await assert.rejects(runEval({ setDir: join(dir, 'missing') }), { code: 'WINNOW_ERR_IO' });
  await assert.rejects(writeEvalSet({ outDir: setDir, seed: 5, stills: 1, videos: 0 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});

test('checkpoints: evenly spread moments, the last included; quantile thresholds keep the asked share', async () => {
  const qa = (t: number, id: QaPair['id'] = 'V1'): QaPair => ({ id, question: `q${t}`, answer: 'yes', tMs: t });
  const all = [0, 1000, 2000, 3000, 4000, 5000].flatMap((t) => [qa(t), qa(t, 'F2')]);
  assert.deepEqual(selectCheckpoints(all, new Set(['V1']), 1).map((c) => c.tMs), [5000]);
  assert.deepEqual(selectCheckpoints(all, new Set(['V1']), 2).map((c) => c.tMs), [2000, 5000]);
  assert.deepEqual(selectCheckpoints(all, new Set(['V1']), 3).map((c) => c.tMs), [1000, 3000, 5000]);
  assert.deepEqual(selectCheckpoints(all, new Set(['V1']), 99).length, 6);
  assert.ok(selectCheckpoints(all, new Set(['V1', 'F2']), 1)[0].qa.length === 2);
  assert.deepEqual(selectCheckpoints(all, new Set(['C1']), 3), []);
  const s = Float64Array.from({ length: 100 }, (_, i) => i / 100);
  for (const q of [0.05, 0.1, 0.5]) {
    const tau = quantileThreshold(s, q);
    assert.equal(s.filter((v) => v < tau).length, Math.round(100 * q));
  }
});

test('ground truth of the set is the renderer\'s (seeded, with QA)', { skip }, async () => {
  const t = await readTruth({ part: 'stills', path: join(setDir, 'still_00000.png'), truthPath: join(setDir, 'still_00000.json'), name: 'still_00000' });
  assert.equal(t.seed, 4000);
  assert.ok(t.qa.length > 0);
});

test('claims: met only when relative accuracy ≥ 95 % at ≤ 15 % kept and ≥ 10 points over random and pool at that budget', async () => {
  const { checkClaims } = await import('../../src/eval/index.js');
  const row = (strategy: string, budget: number | null, kept: number, acc: number, label?: string) => ({
    strategy,
    budget,
    ...(label ? { label } : {}),
    summary: { config: { id: `${strategy}@${budget}`, strategy }, keptFraction: kept, headline: { correct: 0, total: 1, accuracy: acc }, relativeToNone: acc / 0.9 },
  });
  const stills = {
    part: 'stills',
    headlineFamilies: ['F1'],
    scenes: 1,
    configs: [],
    skipped: [],
    rows: [row('none', null, 1, 0.9), row('ratio', 0.1, 0.1, 0.88), row('random', 0.1, 0.1, 0.7), row('pool', 0.1, 0.1, 0.79), row('ratio', 0.2, 0.2, 0.9), row('threshold', 0.05, 0.06, 0.5)],
  };
  const [c] = checkClaims([stills as never]);
  assert.equal(c.rows.length, 2); // ratio@0.1 and threshold@0.05; ratio@0.2 keeps too much
  assert.equal(c.met, false); // pool is only 9 points behind
  stills.rows[3] = row('pool', 0.1, 0.1, 0.77);
  const [c2] = checkClaims([stills as never]);
  assert.equal(c2.met, true);
  assert.match(c2.verdict, /ratio@0.1/);
});

test('video claim: decided by the budget row nearest 5 %, also when it keeps a little over 5 %; other sweep points at ≤ 5 % are listed post hoc and decide nothing', async () => {
  const { checkClaims } = await import('../../src/eval/index.js');
  const cfg = (tau: number, tt: number, kept: number, rel: number) => ({
    config: { id: `threshold+temporal:tau=${tau},tt=${tt}`, strategy: 'threshold+temporal', tau, temporalTau: tt },
    keptFraction: kept,
    headline: { correct: 0, total: 1, accuracy: rel * 0.9 },
    relativeToNone: rel,
  });
  const nearest = cfg(0.6, 0.99, 0.049, 0.73);
  const better = cfg(0.88, 0.77, 0.043, 0.951);
  const tooMany = cfg(0.96, 0.99, 0.11, 0.99);
  const videos = (budgetRow: ReturnType<typeof cfg> | null) => ({
    part: 'videos',
    headlineFamilies: ['V1'],
    scenes: 1,
    skipped: [],
    configs: [nearest, better, tooMany],
    rows: budgetRow ? [{ strategy: 'threshold+temporal', budget: 0.05, summary: budgetRow }] : [],
  });
  const [c] = checkClaims([videos(nearest) as never]);
  assert.equal(c.met, false, 'the pre-registered row misses');
  assert.deepEqual(
    c.rows.map((r) => [r.setting, r.posthoc ?? false, r.met]),
    [
      ['τ=0.6 τt=0.99', false, false],
      ['τ=0.88 τt=0.77', true, true],
    ],
  );
  assert.match(c.verdict, /post hoc, τ=0.88 τt=0.77/);
  // A budget row just over 5 % does not hand the verdict to the best of the other points.
  const over = cfg(0.8, 0.9999, 0.0502, 0.65);
  const [c2] = checkClaims([{ ...videos(over), configs: [over, nearest, better, tooMany] } as never]);
  assert.equal(c2.met, false);
  assert.match(c2.verdict, /budget row \(τ=0.8 τt=0.9999\): it kept 5.02 %, over the 5 % budget/);
  assert.ok(c2.rows.every((r) => r.posthoc), 'every other point at ≤ 5 % is post hoc');
  assert.equal(c2.rows.length, 2);
  // A report without budget rows (older format): every sweep point at ≤ 5 % counts.
  const [c3] = checkClaims([videos(null) as never]);
  assert.equal(c3.met, true);
  assert.ok(c3.rows.every((r) => !r.posthoc));
});

test('--workers 2 gives the same answers and kept counts as one process', { skip }, async () => {
  const one = report.parts.find((p) => p.part === 'stills');
  assert.ok(one);
  const r2 = await runEval({
    setDir,
    codebook,
    threads: 1,
    workers: 2,
    strategies: ['none', 'ratio'],
    budgets: [0.1],
    maxVideos: 0,
    calibrationScenes: { stills: 1, videos: 1 },
    saveAnswers: true,
  });
  assert.equal(r2.options.workers, 2);
  const scenes2 = r2.scenes ?? [];
  assert.deepEqual(scenes2.map((s) => s.scene.name), ['still_00000', 'still_00001']);
  for (const s of scenes2) {
    const ref = scenes().find((x) => x.scene.name === s.scene.name);
    assert.ok(ref);
    for (const id of ['none', 'ratio@0.1']) {
      const a = s.configs.find((c) => c.configId === id);
      const b = cfg(ref, id);
      assert.ok(a);
      assert.equal(a.keptTokens, b.keptTokens);
      assert.deepEqual(a.answers.map((x) => x.answer), b.answers.map((x) => x.answer));
    }
  }
});
