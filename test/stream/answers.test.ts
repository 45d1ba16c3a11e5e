// End to end with answer quality: rendered videos (held-out seeds) pushed over the socket by two
// concurrent sessions, every ground-truth question about the last second asked while both
// sessions are open. Answers must (1) equal what the offline `winnow ask` pipeline answers for the
// same video (the streaming path changes nothing: same decode, encoder, pruning, context), and
// (2) match the ground truth often enough (exact match, as the model card scores) — which holds only
// with a trained default model. The protocol tests do not depend on answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AskPipeline } from '../../src/cli/commands/ask.js';
import type { VideoTruth } from '../../src/synth/index.js';
import { modelSkip } from '../shared/index.js';
import { TestClient, modelServer, normAnswer as norm, pushFile, renderVideo } from './helpers.js';

const skip = modelSkip;
/** Exact-match accuracy each session must reach over its questions. */
const MIN_ACCURACY = 0.5;
/** Share of answers that must equal the offline pipeline's (batching may flip a near-tie). */
const MIN_AGREEMENT = 0.9;
const DURATION_S = 10;

const videos: { mp4: string; truth: VideoTruth }[] = [];
// Seeds away from the trainer's (1000/2000); 7 is the model card's evaluation seed.
const fx = modelServer('winnow-answers-', async (dir) => {
  videos.push(...(await Promise.all([renderVideo(dir, 7, DURATION_S), renderVideo(dir, 8, DURATION_S)])));
});

async function session(mp4: string, truth: VideoTruth): Promise<{ correct: number; total: number; wrong: string[]; answers: Map<string, string> }> {
  const c = await TestClient.connect(fx.server.url);
  try {
    c.send({ type: 'session.update', session: { fps: 1 } });
    const ended = await pushFile(c, mp4);
    assert.equal(ended.frames, DURATION_S);
    // Questions about the newest frame and about the whole video so far, asked at its end.
    const lastMs = (DURATION_S - 1) * 1000;
    const qa = truth.qa.filter((q) => q.tMs === lastMs && q.id !== 'C1');
    assert.ok(qa.length >= 8, `only ${qa.length} questions`);
    let correct = 0;
    const wrong: string[] = [];
    const answers = new Map<string, string>();
    for (const q of qa) {
      const a = await c.ask(q.question);
      assert.equal(a.done.response.status, 'completed');
      answers.set(q.question, a.text);
      if (norm(a.text) === norm(q.answer)) correct++;
      else wrong.push(`${q.id} ${q.question} → ${a.text} (truth ${q.answer})`);
    }
    return { correct, total: qa.length, wrong, answers };
  } finally {
    await c.close();
  }
}

test('two concurrent sessions answer questions about different pushed videos correctly', { skip, timeout: 180_000 }, async () => {
  const results = await Promise.all(videos.map((v) => session(v.mp4, v.truth)));
  // The same questions through the offline pipeline (`winnow ask`), after the sessions are done.
  const pipeline = await AskPipeline.load({ fps: 1, model: fx.engine.folder.dir, strategy: 'none' }, { log: () => undefined });
  const agreement: number[] = [];
  try {
    for (const [i, r] of results.entries()) {
      const questions = [...r.answers.keys()];
      const offline = await pipeline.run(videos[i].mp4, questions, { log: () => undefined });
      const same = offline.filter((o) => norm(o.answer) === norm(r.answers.get(o.question)!)).length;
      agreement.push(same / questions.length);
      process.stderr.write(`seed ${videos[i].truth.seed}: ${r.correct}/${r.total} correct, ${same}/${questions.length} equal to winnow ask\n${r.wrong.map((w) => `  ${w}`).join('\n')}\n`);
    }
  } finally {
    await pipeline.close();
  }
  for (const a of agreement) assert.ok(a >= MIN_AGREEMENT, `streamed answers differ from winnow ask's: agreement ${a.toFixed(2)}`);
  for (const [i, r] of results.entries()) {
    const acc = r.correct / r.total;
    assert.ok(acc >= MIN_ACCURACY, `seed ${videos[i].truth.seed}: accuracy ${acc.toFixed(2)} < ${MIN_ACCURACY}`);
  }
});
