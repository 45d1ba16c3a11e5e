// `winnow ask` end to end on rendered scenes: real ffmpeg decoding, the default model's vision
// encoder, pruning and the language model; the library form (runAsk) and the CLI process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDataset } from '../../src/synth/index.js';
import { AskPipeline, runAsk, type AskAnswer } from '../../src/cli/commands/ask.js';
import { fileTempDir, modelSkip, runCli } from '../shared/index.js';

const skip = modelSkip;
const tmp = fileTempDir('winnow-ask-');
let still: string;
let video: string;
let pipeline: AskPipeline | undefined;

before(async () => {
  if (!skip) pipeline = await AskPipeline.load({ fps: 1, strategy: 'none' }, { log: () => undefined });
  const { files } = await writeDataset({ outDir: tmp.dir, seed: 5, stills: 1, videos: 1, durationS: 6 });
  still = files.find((f) => f.endsWith('.png'))!;
  video = files.find((f) => f.endsWith('.mp4'))!;
});

after(async () => {
  await pipeline?.close();
});

const KEYS = ['question', 'answer', 'keptTokens', 'totalTokens', 'frames', 'ttftMs', 'prefillMs'];

test('runAsk on a video: every frame reaches the context, each question answered from it', { skip }, async () => {
  const notes: string[] = [];
  const deltas: string[] = [];
  const answers = await pipeline!.run(video, ['how many circles appeared?', 'did a red square appear?'], {
    log: (l) => notes.push(l),
    onText: (d) => deltas.push(d),
  });
  assert.equal(answers.length, 2);
  for (const a of answers) {
    for (const k of KEYS) assert.ok(k in a, k);
    assert.equal(a.frames, 6);
    // Videos are pooled to 7×7 before pruning; strategy none keeps them all.
    assert.equal(a.totalTokens, 6 * 49);
    assert.equal(a.keptTokens, a.totalTokens);
    assert.ok(a.ttftMs > 0 && a.prefillMs > 0);
    assert.equal(typeof a.answer, 'string');
  }
  assert.equal(deltas.join('').replace(/\s+/g, ''), answers.map((a) => a.answer).join('').replace(/\s+/g, ''));
});

test('runAsk on a still image keeps the full 14×14 grid; pruning lowers keptTokens', { skip }, async () => {
  const [all] = await pipeline!.run(still, ['what color is the square?'], { log: () => undefined });
  assert.equal(all.frames, 1);
  assert.equal(all.totalTokens, 196);
  assert.equal(all.keptTokens, 196);
  const [pooled] = await runAsk(still, ['what color is the square?'], { fps: 1, strategy: 'pool', ratio: 0.25 }, { log: () => undefined });
  assert.equal(pooled.totalTokens, 196);
  assert.equal(pooled.keptTokens, 49);
});

test('runAsk from a byte stream, with maxFrames and an early stop', { skip }, async () => {
  const [limited] = await runAsk(createReadStream(video), ['how many circles appeared?'], { fps: 1, strategy: 'none', maxFrames: 3 }, { log: () => undefined });
  assert.equal(limited.frames, 3);
  const stop = new AbortController();
  const [stopped] = await pipeline!.run(video, ['how many circles appeared?'], {
    log: () => undefined,
    stop: stop.signal,
    onFrame: (n) => {
      if (n === 2) stop.abort();
    },
  });
  assert.equal(stopped.frames, 2);
});

test('winnow ask --json prints one JSON line per question; errors exit non-zero with a code', { skip }, () => {
  const cli = (...args: string[]) => runCli(['ask', ...args], { cwd: tmpdir() });
  // Run from another cwd: the default model resolves from the package, not the cwd.
  const r = cli(still, 'how many circles are there?', 'is there a red circle?', '--json', '--strategy', 'none');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 2);
  const parsed = lines.map((l) => JSON.parse(l) as AskAnswer);
  assert.deepEqual(parsed.map((p) => p.question), ['how many circles are there?', 'is there a red circle?']);
  for (const p of parsed) for (const k of KEYS) assert.ok(k in p, k);
  const bad = cli(still, 'what?', '--model', join(tmp.dir, 'no-such-model'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /WINNOW_ERR_MODEL_MISSING_FILE/);
  // The execution provider is selectable: cpu runs and says so; cuda on this CPU-only install is a
  // typed error, never a silent CPU fallback; an unknown provider is an invalid argument.
  const onCpu = cli(still, 'how many circles are there?', '--json', '--strategy', 'none', '--execution-provider', 'cpu');
  assert.equal(onCpu.code, 0, onCpu.stderr);
  assert.match(onCpu.stderr, /model on cpu \(requested\)/);
  assert.deepEqual(JSON.parse(onCpu.stdout.trim()).answer, parsed[0].answer);
  const cuda = cli(still, 'how many circles are there?', '--execution-provider', 'cuda');
  assert.equal(cuda.code, 1, cuda.stderr);
  assert.match(cuda.stderr, /WINNOW_ERR_EXECUTION_PROVIDER/);
  const unknown = cli(still, 'how many circles are there?', '--execution-provider', 'tpu');
  assert.equal(unknown.code, 2);
});
