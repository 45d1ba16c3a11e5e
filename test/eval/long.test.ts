// `winnow eval --long` on the real pipeline: one 10-minute watch video (the profile's shortest,
// 600 frames; about 30 s here), questions at 30 s, 5 min and the end. Checks the report's own arithmetic: the context at a checkpoint holds exactly the frames
// up to it, marker tokens are context − visual tokens, V4 is scored within ±2 s, family scores
// recompute from the answers, the table and the plot say what the JSON says.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LONG_TABLE_COLUMNS, longMarkdown, longPlotSpec, parseTable, renderLongPlot, runLongEval, type LongEvalReport } from '../../src/eval/index.js';
import { hmsWithinTolerance, watchAt } from '../../src/synth/index.js';
import { fileTempDir, modelSkip, rejection } from '../shared/index.js';

const skip = modelSkip;
const tmp = fileTempDir('winnow-eval-long-');
const SEED = 4000;
const FRACTIONS = [0.05, 0.5];
let report: LongEvalReport;

before(async () => {
  if (skip) return;
  report = await runLongEval({ dir: tmp.dir, lengthsMin: [10], videosPerLength: 1, seed: SEED, checkpointFractions: FRACTIONS });
});

test('long: lengths outside the watch profile and bad video counts are refused before anything loads', async () => {
  assert.equal((await rejection(runLongEval({ dir: '/nonexistent', lengthsMin: [5] }))).code, 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal((await rejection(runLongEval({ dir: '/nonexistent', lengthsMin: [481] }))).code, 'WINNOW_ERR_INVALID_ARGUMENT');
  assert.equal((await rejection(runLongEval({ dir: '/nonexistent', lengthsMin: [10], videosPerLength: 0 }))).code, 'WINNOW_ERR_INVALID_ARGUMENT');
});

test('long: each checkpoint is asked with exactly the frames up to it, the ground truth\'s questions all asked', { skip }, () => {
  assert.equal(report.videos.length, 1);
  const v = report.videos[0];
  assert.equal(v.frames, 600);
  assert.ok(v.peakRssBytes > 0 && v.realtimeFactor > 0);
  const truth = watchAt(SEED, 0, 600_000, FRACTIONS.map((f) => f * 600_000));
  assert.deepEqual(truth.checkpointsMs, [30_000, 300_000, 599_000]);
  assert.deepEqual(v.runs.map((r) => r.label), ['default', 'none']);
  for (const run of v.runs) {
    assert.equal(run.frames, v.frames);
    assert.deepEqual(run.checkpoints.map((c) => c.tMs), truth.checkpointsMs);
    for (const c of run.checkpoints) {
      const qa = truth.qa.filter((q) => q.tMs === c.tMs);
      assert.deepEqual(c.answers.map((a) => a.question), qa.map((q) => q.question));
      assert.ok(c.answers.some((a) => a.family === 'V4') === qa.some((q) => q.id === 'V4'));
      // The context holds frames 0 … t, less those evicted to stay within the budget.
      assert.equal(c.framesInContext + c.evictedFrames, c.tMs / 1000 + 1);
      assert.equal(c.markerTokens, c.contextTokens - c.visualTokens);
      assert.ok(c.markerTokens > 0 && c.contextTokens <= 4096);
      assert.equal(c.markerShare, c.markerTokens / c.contextTokens);
      assert.ok(c.kvBytes > 0 && c.msPerFrame > 0 && c.meanTtftMs > 0 && c.rssBytes > 0);
    }
    // 31 frames fit any budget: the first checkpoint has all of them.
    assert.equal(run.checkpoints[0].evictedFrames, 0);
  }
  const none = v.runs[1];
  // Unpruned frames keep all 49 pooled tokens.
  assert.equal(none.meanKeptPerFrame, 49);
  for (const c of none.checkpoints) assert.equal(c.visualTokens, 49 * c.framesInContext);
  assert.ok(v.runs[0].meanKeptPerFrame <= none.meanKeptPerFrame);
});

test('long: V4 is right within ±2 s, the rest by exact match; family scores recompute from the answers', { skip }, () => {
  for (const run of report.videos[0].runs) {
    for (const c of run.checkpoints) {
      for (const a of c.answers) {
        const want = a.family === 'V4' ? hmsWithinTolerance(a.answer, a.expected) : a.answer === a.expected;
        assert.equal(a.correct, !a.truncated && want, `${a.family} ${a.question}`);
      }
      for (const [family, s] of Object.entries(c.families)) {
        const mine = c.answers.filter((a) => a.family === family);
        assert.equal(s.total, mine.length);
        assert.equal(s.correct, mine.filter((a) => a.correct).length);
      }
    }
  }
});

test('long: the table has a row per run and checkpoint, the plot renders', { skip }, async () => {
  const md = longMarkdown(report);
  const t = parseTable(md);
  assert.deepEqual(t.header, LONG_TABLE_COLUMNS);
  const rows = t.rows.filter((r) => r.length === LONG_TABLE_COLUMNS.length && r[0] === '10 min');
  assert.equal(rows.length, 6);
  const none5 = report.videos[0].runs[1].checkpoints[1];
  const row = rows.find((r) => r[1] === 'none' && r[2] === '5.0');
  assert.ok(row);
  assert.equal(row[LONG_TABLE_COLUMNS.indexOf('context tokens')], String(none5.contextTokens));
  const spec = longPlotSpec(report) as { data: { values: { metric: string }[] } };
  assert.equal(spec.data.values.filter((x) => x.metric === 'ms per frame').length, 6);
  const png = join(tmp.dir, 'long.png');
  await renderLongPlot(report, png);
  assert.ok((await stat(png)).size > 1000);
});
