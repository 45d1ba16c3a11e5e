// Answers on rendered scenes of the synthetic world (../shared/SYNTHETIC_WORLD.md) through the
// whole `winnow ask` pipeline with default pruning, compared with the accuracy MODEL_CARD.md
// reports. Frame questions (F1–F4) on still images, video questions (V1–V3) and "now" frame
// questions on short videos (the last frame is "now").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDataset } from '../../src/synth/index.js';
import { AskPipeline } from '../../src/cli/commands/ask.js';
import { MODEL_DIR, fileTempDir, modelSkip } from '../shared/index.js';

const CARD = join(MODEL_DIR, 'MODEL_CARD.md');

interface Qa {
  id: string;
  question: string;
  answer: string;
  tMs: number;
}

type Accuracy = Record<string, number>;

/**
 * Accuracy per question family from MODEL_CARD.md: stills from the table with a `setting` column
 * (its "default pruning" row when present, else "all 196 tokens"); videos from the table whose
 * header starts with V1 (its F columns are the "now" questions asked at a video's last frame).
 */
function cardAccuracy(): { stills: Accuracy; videos: Accuracy } | null {
  if (!existsSync(CARD)) return null;
  const lines = readFileSync(CARD, 'utf8').split('\n');
  const cells = (line: string): string[] => line.split('|').slice(1, -1).map((c) => c.trim());
  const out = { stills: {} as Accuracy, videos: {} as Accuracy };
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim().startsWith('|') || (i > 0 && lines[i - 1].trim().startsWith('|'))) continue;
    const header = cells(lines[i]);
    const rows: string[][] = [];
    for (let j = i + 2; j < lines.length && lines[j].trim().startsWith('|'); j++) rows.push(cells(lines[j]));
    let target: Accuracy;
    let row: string[] | undefined;
    if (header[0] === 'setting') {
      target = out.stills;
      row = rows.find((r) => /default pruning/i.test(r[0])) ?? rows.find((r) => /all 196/i.test(r[0]));
    } else if (header[0] === 'V1') {
      target = out.videos;
      row = rows[0];
    } else continue;
    if (!row) continue;
    header.forEach((h, c) => {
      const v = Number(row![c]);
      if (/^[FV][1-4]$/.test(h) && Number.isFinite(v)) target[h] = v > 1 ? v / 100 : v;
    });
  }
  return Object.keys(out.stills).length || Object.keys(out.videos).length ? out : null;
}

const card = cardAccuracy();
const trained = card !== null && [...Object.values(card.stills), ...Object.values(card.videos)].some((v) => v > 0.05);
const skip = modelSkip || (trained ? false : 'the installed default model is untrained (MODEL_CARD.md reports ~0 accuracy)');

const tmp = fileTempDir('winnow-acc-');
let pipeline: AskPipeline | undefined;

before(async () => {
  if (skip) return;
  pipeline = await AskPipeline.load({ fps: 1 }, { log: () => undefined });
});

after(async () => {
  await pipeline?.close();
});

interface Tally {
  right: number;
  total: number;
  /** Scenes that asked this family. */
  units: Set<string>;
}

function score(results: Map<string, Tally>, id: string, ok: boolean, unit: string): void {
  const r = results.get(id) ?? { right: 0, total: 0, units: new Set<string>() };
  r.total++;
  r.units.add(unit);
  if (ok) r.right++;
  results.set(id, r);
}

/**
 * `perScene`: the standard error counts scenes, not questions. The questions of one still share its
 * scene and its pruning decisions, so they fail together (seed 7's 48 stills: F2 96.5 %
 * unpruned vs 98.7 % on the card's 200, and 95.8 % pruned; 144 questions but 48 scenes). The video test
 * has 3 videos: per scene its bound would say nothing, so it stays per question (a smoke check of
 * the video path against the card).
 */
function check(results: Map<string, Tally>, ref: Accuracy, perScene: boolean): void {
  const report: string[] = [];
  for (const [id, r] of [...results].sort()) {
    const acc = r.right / r.total;
    const want = ref[id];
    report.push(`${id}: ${(acc * 100).toFixed(1)} % of ${r.total} in ${r.units.size} scenes (card ${want === undefined ? '–' : (want * 100).toFixed(1) + ' %'})`);
    if (want === undefined) continue;
    // 2 points, widened by two standard errors of this sample (the card's set differs from ours).
    const n = perScene ? r.units.size : r.total;
    const tol = Math.max(0.02, 2 * Math.sqrt((want * (1 - want)) / n));
    assert.ok(acc >= want - tol, `${id}: ${acc.toFixed(3)} < card ${want} − ${tol.toFixed(3)}\n${report.join('\n')}`);
  }
  console.log(report.join('\n'));
}

test('frame questions F1–F4 on still images, default pruning', { skip }, async () => {
  const out = join(tmp.dir, 'stills');
  // 96 stills (~890 questions): with 16, one family had ~50 questions and a standard error of 4-5
  // points, too coarse to tell a pruning regression from an unlucky sample; with 48, F2 passed by
  // 0.14 points (95.8 against 95.66). At 96: F2 97.9 against 96.6, F4 87.5 against 82.0.
  const { files } = await writeDataset({ outDir: out, seed: 7, stills: 96, videos: 0, durationS: 1 });
  const results = new Map<string, Tally>();
  for (const png of files) {
    const truth = JSON.parse(await readFile(png.replace(/\.png$/, '.json'), 'utf8')) as { qa: Qa[] };
    const qa = truth.qa.filter((q) => /^F[1-4]$/.test(q.id));
    const answers = await pipeline!.run(png, qa.map((q) => q.question), { log: () => undefined });
    answers.forEach((a, i) => score(results, qa[i].id, a.answer === qa[i].answer, png));
  }
  check(results, card!.stills, true);
});

test('video questions V1–V3 and "now" questions on short videos, default pruning', { skip }, async () => {
  const out = join(tmp.dir, 'videos');
  const { files } = await writeDataset({ outDir: out, seed: 7, stills: 0, videos: 3, durationS: 12 });
  const results = new Map<string, Tally>();
  for (const mp4 of files.filter((f) => f.endsWith('.mp4'))) {
    const truth = JSON.parse(await readFile(mp4.replace(/\.mp4$/, '.json'), 'utf8')) as { qa: Qa[] };
    const lastMs = Math.max(...truth.qa.map((q) => q.tMs));
    const qa = truth.qa.filter((q) => q.tMs === lastMs && q.id !== 'C1');
    const answers = await pipeline!.run(mp4, qa.map((q) => q.question), { log: () => undefined });
    answers.forEach((a, i) => score(results, qa[i].id, a.answer === qa[i].answer, mp4));
  }
  check(results, card!.videos, false);
});
