// One clip, the same questions, three entry points on the shared runtime: `winnow ask` (runAsk),
// a `winnow serve` session over a real WebSocket (the file opened by path under --allow-path),
// and the Evaluator. Greedy decoding and equal pruning settings must give identical answers and
// identical kept/total token counts: the entry points differ in how frames reach the model
// (offline decode vs the server's scheduler), never in what the model sees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runAsk } from '../../src/cli/commands/ask.js';
import { Evaluator, type Checkpoint } from '../../src/eval/index.js';
import type { EvalConfig } from '../../src/eval/types.js';
import { createServer, type WinnowServer } from '../../src/stream/index.js';
import type { StrategyName } from '../../src/prune/index.js';
import type { QaPair, VideoTruth } from '../../src/synth/index.js';
import { fileTempDir, modelSkip } from '../shared/index.js';
import { TestClient, renderVideo } from '../stream/helpers.js';

const skip = modelSkip;
const DURATION_S = 5;
const SEED = 11;
const LAST_MS = (DURATION_S - 1) * 1000;

/**
 * What `winnow ask` answered on this clip before the pipeline moved into src/runtime (recorded by
 * running commit f733970's runAsk on the same render): the restructuring must not change them.
 */
const BEFORE = {
  questions: ['what color is the circle?', 'how many circles are there?', 'is there a green triangle?', 'is the green triangle on the left or the right?'],
  codebookDefault: { answers: ['purple', 'one', 'yes', 'right'], kept: 35, total: 245 },
  none: { answers: ['purple', 'one', 'yes', 'right'], kept: 245, total: 245 },
};

const tmp = fileTempDir('winnow-equal-');
let mp4: string;
let truth: VideoTruth;
let server: WinnowServer | undefined;
let evaluator: Evaluator | undefined;

before(async () => {
  if (skip) return;
  ({ mp4, truth } = await renderVideo(tmp.dir, SEED, DURATION_S));
  // Default model and its bundled codebook, as `winnow serve` with no options (plus the clip's folder).
  server = await createServer({ port: 0, allowPaths: [tmp.dir] });
  evaluator = await Evaluator.load({ fps: 1 });
});

after(async () => {
  await server?.close();
  await evaluator?.close();
});

/** Up to four questions about the last second, one per family (captions excluded: long answers). */
function questions(): QaPair[] {
  const seen = new Set<string>();
  const out: QaPair[] = [];
  for (const q of truth.qa) {
    if (q.tMs !== LAST_MS || q.id === 'C1' || seen.has(q.id)) continue;
    seen.add(q.id);
    out.push(q);
    if (out.length === 4) break;
  }
  return out;
}

interface Run {
  answers: string[];
  kept: number;
  total: number;
}

async function viaAsk(qs: readonly string[], strategy: StrategyName | undefined): Promise<Run> {
  const answers = await runAsk(mp4, qs, { fps: 1, ...(strategy ? { strategy } : {}) }, { log: () => undefined });
  return { answers: answers.map((a) => a.answer), kept: answers[0].keptTokens, total: answers[0].totalTokens };
}

async function viaServer(qs: readonly string[], strategy: StrategyName | undefined): Promise<Run> {
  const c = await TestClient.connect((server as WinnowServer).url);
  try {
    c.send({ type: 'session.update', session: { fps: 1, ...(strategy ? { pruning: { strategy } } : {}) } });
    c.send({ type: 'source.open', path: mp4 });
    const ended = await c.wait<{ type: 'source.ended'; frames: number; reason: string }>('source.ended', () => true, 60_000);
    assert.equal(ended.reason, 'end');
    assert.equal(ended.frames, DURATION_S);
    const answers: string[] = [];
    for (const q of qs) {
      const a = await c.ask(q);
      assert.equal(a.done.response.status, 'completed');
      answers.push(a.text.trim());
    }
    const processed = c.ofType<{ type: 'frame.processed'; kept: number; total: number }>('frame.processed');
    return { answers, kept: processed.reduce((s, e) => s + e.kept, 0), total: processed.reduce((s, e) => s + e.total, 0) };
  } finally {
    await c.close();
  }
}

/** The Evaluator asks with a token budget from the expected answer, so `expect` is `winnow ask`'s answer. */
async function viaEvaluator(qa: readonly QaPair[], expect: readonly string[], config: EvalConfig): Promise<Run> {
  const ev = evaluator as Evaluator;
  const enc = await ev.encodeScene({ part: 'videos', path: mp4, truthPath: '', name: `seed${SEED}` });
  const checkpoints: Checkpoint[] = [{ tMs: LAST_MS, qa: qa.map((q, i) => ({ ...q, answer: expect[i] })) }];
  const r = await ev.runConfig(enc, checkpoints, config);
  assert.equal(r.frames, DURATION_S);
  return { answers: r.answers.map((a) => a.answer), kept: r.keptTokens, total: r.totalTokens };
}

function assertSame(name: string, a: Run, b: Run): void {
  assert.deepEqual(b.answers, a.answers, `${name}: answers differ`);
  assert.equal(b.kept, a.kept, `${name}: kept tokens differ`);
  assert.equal(b.total, a.total, `${name}: total tokens differ`);
}

test('ask, a served session and the evaluator answer alike with the codebook default pruning', { skip, timeout: 300_000 }, async () => {
  const qa = questions();
  assert.ok(qa.length >= 3, `only ${qa.length} questions about the last second`);
  const qs = qa.map((q) => q.question);
  const defaults = (evaluator as Evaluator).codebook?.defaults;
  assert.ok(defaults?.strategy, 'the bundled codebook names a default strategy');
  const config: EvalConfig = { id: 'codebook-default', strategy: defaults.strategy, tau: defaults.tau, ratio: defaults.ratio };
  const ask = await viaAsk(qs, undefined);
  assert.ok(ask.kept < ask.total, 'the default pruning drops tokens');
  assert.deepEqual(qs, BEFORE.questions);
  assertSame('ask before the change', BEFORE.codebookDefault, ask);
  assertSame('server', ask, await viaServer(qs, undefined));
  assertSame('evaluator', ask, await viaEvaluator(qa, ask.answers, config));
});

test('ask, a served session and the evaluator answer alike without pruning', { skip, timeout: 300_000 }, async () => {
  const qa = questions();
  const qs = qa.map((q) => q.question);
  const ask = await viaAsk(qs, 'none');
  assert.equal(ask.kept, ask.total);
  assertSame('ask before the change', BEFORE.none, ask);
  assertSame('server', ask, await viaServer(qs, 'none'));
  assertSame('evaluator', ask, await viaEvaluator(qa, ask.answers, { id: 'none', strategy: 'none' }));
});
