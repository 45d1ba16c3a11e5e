// Acceptance of a codebook on rendered stills (default: the held-out evaluation seed 2000):
// frame-question accuracy (F1-F4, exact match of the greedy answer) with all tokens, with
// codebook pruning (`--strategy threshold` at the codebook's default τ or --tau, or `--strategy
// ratio` at --ratio; default: the codebook's default strategy), and with `random` keeping exactly as
// many tokens per image as the codebook strategy did (averaged over --random-seeds seeds). With --taus it only
// reports the kept fraction for each τ (used to choose τ on TRAINING images, never on these).
//   node --import tsx bench/codebook/acceptance.ts --codebook codebooks/winnow-tiny.safetensors [--stills 200] [--seed 2000]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { lastValueFrom, of, take } from 'rxjs';
import { ModelFolder, encode } from '../../src/encode/index.js';
import { openVideo } from '../../src/ingest/index.js';
import { LanguageModel, type VisualFrame } from '../../src/llm/index.js';
import { Pruner, loadCodebook, randomStrategy } from '../../src/prune/index.js';
import { writeDataset } from '../../src/synth/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: a } = parseArgs({
  options: {
    codebook: { type: 'string', default: join(root, 'codebooks', 'winnow-tiny.safetensors') },
    model: { type: 'string', default: join(root, 'models', 'winnow-tiny') },
    images: { type: 'string' },
    stills: { type: 'string', default: '200' },
    seed: { type: 'string', default: '2000' },
    tau: { type: 'string' },
    taus: { type: 'string' },
    strategy: { type: 'string' },
    ratio: { type: 'string' },
    'random-seeds': { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
let dir = a.images;
const rendered = !dir;
if (!dir) {
  dir = mkdtempSync(join(tmpdir(), 'winnow-accept-'));
  await writeDataset({ outDir: dir, seed: Number(a.seed), stills: Number(a.stills), videos: 0, durationS: 1 });
}
// On exit, so the --taus branch's process.exit cleans up too; the ground truth is read late.
const renderedDir = dir;
if (rendered) process.on('exit', () => rmSync(renderedDir, { recursive: true, force: true }));
const files = readdirSync(dir).filter((f) => f.endsWith('.png')).sort().slice(0, Number(a.stills));
const folder = await ModelFolder.load(a.model as string, { executionProvider: 'cpu' });
const lm = await LanguageModel.fromModelFolder(folder);
const codebook = await loadCodebook(a.codebook as string);
const strategy = a.taus ? 'threshold' : (a.strategy ?? codebook.defaults?.strategy ?? 'threshold');
if (strategy !== 'threshold' && strategy !== 'ratio') throw new Error(`--strategy must be threshold or ratio, got ${strategy}`);
// τ and r default to the codebook's own (the Pruner reads them from its metadata).
const pruner = await Pruner.load({ codebook, strategy, ...(a.tau ? { tau: Number(a.tau) } : {}), ...(a.ratio ? { ratio: Number(a.ratio) } : {}) });
const tau = a.tau ? Number(a.tau) : (codebook.defaults?.tau as number);
const setting = strategy === 'ratio' ? `ratio ${pruner.ratio}` : `threshold τ ${tau}`;
const encoded = [];
for (const f of files) {
  const frame = await lastValueFrom(openVideo(join(dir, f), { size: { width: 112, height: 112 }, resize: 'pad' }).pipe(take(1)));
  encoded.push({ file: f, enc: await lastValueFrom(of(frame).pipe(encode(folder, { maxWaitMs: 0 }))) });
}

if (a.taus) {
  // Kept fraction per τ from the codebook scores (max cosine to a prototype).
  const scores = [];
  for (const { enc } of encoded) scores.push((await pruner.prune(enc)).scores);
  for (const t of a.taus.split(',').map(Number)) {
    let kept = 0;
    let total = 0;
    for (const s of scores) for (const x of s) {
      total++;
      if (x < t) kept++;
    }
    console.log(`tau ${t}: kept ${(100 * kept / total).toFixed(1)} %`);
  }
  await pruner.close();
  await lm.close();
  await folder.close();
  process.exit(0);
}

interface Tally { right: number; total: number }
const fams = ['F1', 'F2', 'F3', 'F4'] as const;
const blank = (): Record<string, Tally> => Object.fromEntries(['F', ...fams].map((k) => [k, { right: 0, total: 0 }]));
const acc = { full: blank(), pruned: blank(), random: blank() };
let keptSum = 0;
const randomSeeds = Number(a['random-seeds']);
const t0 = performance.now();
async function answer(v: VisualFrame, qs: { id: string; question: string; answer: string }[], into: Record<string, Tally>, weight: number): Promise<void> {
  const ctx = lm.createContext();
  try {
    await ctx.appendFrame(v);
    for (const q of qs) {
      const r = await ctx.ask(q.question);
      const ok = r.text.trim() === q.answer ? 1 : 0;
      for (const k of ['F', q.id]) {
        into[k].right += ok * weight;
        into[k].total += weight;
      }
    }
  } finally {
    await ctx.close();
  }
}
const subset = (tokens: Float32Array, kept: ArrayLike<number>, dim: number): Float32Array => {
  const out = new Float32Array(kept.length * dim);
  for (let k = 0; k < kept.length; k++) out.set(tokens.subarray(kept[k] * dim, (kept[k] + 1) * dim), k * dim);
  return out;
};
for (const [n, { file, enc }] of encoded.entries()) {
  const truth = JSON.parse(readFileSync(join(dir, file.replace(/\.png$/, '.json')), 'utf8')) as { qa: { id: string; question: string; answer: string }[] };
  const qs = truth.qa.filter((q) => q.id.startsWith('F'));
  const pf = await pruner.prune(enc);
  keptSum += pf.kept.length / enc.numTokens;
  await answer({ frame: enc.frame, tokens: enc.tokens, dim: enc.dim }, qs, acc.full, 1);
  await answer({ frame: enc.frame, tokens: pf.tokens, dim: enc.dim }, qs, acc.pruned, 1);
  for (let s = 0; s < randomSeeds; s++) {
    const kept = randomStrategy(enc.numTokens, pf.kept.length, 1000 * n + s);
    await answer({ frame: enc.frame, tokens: subset(enc.tokens, kept, enc.dim), dim: enc.dim }, qs, acc.random, 1 / randomSeeds);
  }
}
const pct = (t: Tally): number => (t.total ? (100 * t.right) / t.total : NaN);
const result = {
  images: encoded.length,
  setting,
  tau,
  prototypes: pruner.codebook?.count,
  keptPercent: (100 * keptSum) / encoded.length,
  accuracy: Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([f, t]) => [f, pct(t)]))])),
  questions: acc.full.F.total,
  relativeToFull: pct(acc.pruned.F) / pct(acc.full.F),
  seconds: (performance.now() - t0) / 1000,
};
if (a.json) console.log(JSON.stringify(result));
else {
  console.log(`images ${result.images}, frame questions ${result.questions}, codebook ${result.prototypes} prototypes, ${setting}`);
  console.log(`kept tokens (${setting}): ${result.keptPercent.toFixed(1)} %`);
  for (const [k, v] of Object.entries(result.accuracy)) console.log(`${k.padEnd(10)} ${['F', ...fams].map((f) => `${f} ${v[f].toFixed(1)}`).join('  ')}`);
  console.log(`pruned / full = ${(100 * result.relativeToFull).toFixed(1)} %`);
}
await pruner.close();
await lm.close();
await folder.close();
