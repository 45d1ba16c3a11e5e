// Winnow in-process, without a socket: the library API that `winnow serve` is built on.
//
//   node --import tsx examples/embed.ts clip.mp4 "how many circles appeared?" "did a red square appear?"
//
// From an installed package, import from 'winnow' instead of '../src/index.js'.
import { createSession } from '../src/index.js';

async function main(): Promise<void> {
  const [file, ...questions] = process.argv.slice(2);
  if (!file) throw new Error('usage: embed.ts VIDEO [QUESTION]...');
  if (questions.length === 0) questions.push('how many circles appeared?');

  // Loads the bundled default model (pass { model, codebook } for others); closed with the session.
  const session = await createSession({ config: { fps: 1, pruning: { strategy: 'pool', ratio: 0.5 } } });
  try {
    session.on('frame', (f) => process.stderr.write(`frame ${f.index} t=${f.ptsMs / 1000}s kept ${f.kept}/${f.total} tokens\n`));
    session.on('evicted', (e) => process.stderr.write(`context full: evicted ${e.frames} frames\n`));

    // The session decodes the file itself (ffmpeg, sampled at fps, paused when the model is busy).
    // Frames decoded by the host application go in with session.pushFrames(iterable) instead.
    const ended = new Promise<void>((resolve, reject) =>
      session.on('source.ended', (e) => (e.reason === 'error' ? reject(e.error) : resolve())),
    );
    session.openSource({ path: file });
    await ended;

    for (const q of questions) {
      const answer = session.ask(q);
      process.stdout.write(`Q: ${q}\nA: `);
      for await (const delta of answer) process.stdout.write(delta);
      const done = await answer.done;
      process.stdout.write(`\n   [${done.status}; ${done.usage.visualTokensKept}/${done.usage.visualTokensTotal} visual tokens; ${done.timings.totalMs} ms]\n`);
    }
    const s = session.stats;
    process.stderr.write(`${s.framesProcessed} frames, ${s.contextTokens} context tokens\n`);
  } finally {
    await session.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`embed: ${(e as Error).message}\n`);
  process.exit(1);
});
