// The long-video evaluation's table: per length, run and checkpoint, pooled over that length's
// videos (answers pooled, costs averaged), and a line per length with peak RSS and speed.
import type { QuestionFamily } from '../synth/index.js';
import { FRAME_FAMILIES, pooled } from './report.js';
import type { AnswerRecord, FamilyScore, LongCheckpoint, LongEvalReport } from './types.js';

/** One row of the table: a run at the k-th checkpoint of every video of one length. */
export interface LongRow {
  lengthMin: number;
  label: string;
  /** Mean checkpoint time over the videos, minutes. */
  atMin: number;
  videos: number;
  families: Partial<Record<QuestionFamily, FamilyScore>>;
  frames: FamilyScore;
  contextTokens: number;
  markerShare: number;
  kvBytes: number;
  msPerFrame: number;
  meanTtftMs: number;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function score(answers: readonly AnswerRecord[], family: QuestionFamily): FamilyScore | undefined {
  const mine = answers.filter((a) => a.family === family);
  if (mine.length === 0) return undefined;
  const correct = mine.filter((a) => a.correct).length;
  return { correct, total: mine.length, accuracy: correct / mine.length };
}

const LONG_FAMILIES: readonly QuestionFamily[] = ['V1', 'V2', 'V3', 'V4', 'F1', 'F2', 'F3', 'F4', 'C1'];

export function longRows(r: LongEvalReport): LongRow[] {
  const rows: LongRow[] = [];
  for (const lengthMin of r.options.lengthsMin) {
    const videos = r.videos.filter((v) => v.lengthMin === lengthMin);
    const labels = [...new Set(videos.flatMap((v) => v.runs.map((x) => x.label)))];
    for (const label of labels) {
      const runs = videos.map((v) => v.runs.find((x) => x.label === label)).filter((x) => x !== undefined);
      const n = Math.max(0, ...runs.map((x) => x.checkpoints.length));
      for (let k = 0; k < n; k++) {
        const cps = runs.map((x) => x.checkpoints[k]).filter((c): c is LongCheckpoint => c !== undefined);
        const answers = cps.flatMap((c) => c.answers);
        const families: Partial<Record<QuestionFamily, FamilyScore>> = {};
        for (const f of LONG_FAMILIES) {
          const s = score(answers, f);
          if (s) families[f] = s;
        }
        rows.push({
          lengthMin,
          label,
          atMin: mean(cps.map((c) => c.tMs / 60_000)),
          videos: cps.length,
          families,
          frames: pooled(families, FRAME_FAMILIES),
          contextTokens: mean(cps.map((c) => c.contextTokens)),
          markerShare: mean(cps.map((c) => c.markerShare)),
          kvBytes: mean(cps.map((c) => c.kvBytes)),
          msPerFrame: mean(cps.map((c) => c.msPerFrame)),
          meanTtftMs: mean(cps.map((c) => c.meanTtftMs)),
        });
      }
    }
  }
  return rows;
}

const pct = (s: FamilyScore | undefined): string => (s?.accuracy == null ? '–' : `${(100 * s.accuracy).toFixed(0)} (${s.correct}/${s.total})`);
const num = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

export const LONG_TABLE_COLUMNS = ['length', 'run', 'at min', 'V1 %', 'V2 %', 'V3 %', 'V4 ±2 s %', 'F1–F4 %', 'C1 %', 'context tokens', 'marker %', 'KV MiB', 'ms/frame', 'TTFT ms'];

export function longMarkdown(r: LongEvalReport): string {
  const o = r.options;
  const out: string[] = [
    `Model \`${r.model.name ?? r.model.dir}\`, codebook ${r.codebook ? `\`${r.codebook.path.split('/').pop()}\` (default ${r.codebook.defaultStrategy ?? '?'}${r.codebook.defaultTau !== null ? ` τ=${r.codebook.defaultTau}` : ''})` : 'none'}; ` +
      `watch profile seed ${o.seed}, ${o.videosPerLength} video(s) per length, ${o.fps} fps, KV budget ${o.maxContextTokens} tokens; ${r.wallS.toFixed(0)} s wall.`,
    '',
    `| ${LONG_TABLE_COLUMNS.join(' | ')} |`,
    `|${LONG_TABLE_COLUMNS.map(() => '---').join('|')}|`,
  ];
  for (const x of longRows(r)) {
    const f = x.families;
    out.push(
      `| ${x.lengthMin} min | ${x.label} | ${num(x.atMin, 1)} | ${pct(f.V1)} | ${pct(f.V2)} | ${pct(f.V3)} | ${pct(f.V4)} | ${pct(x.frames.total ? x.frames : undefined)} | ${pct(f.C1)} | ` +
        `${num(x.contextTokens)} | ${num(100 * x.markerShare, 1)} | ${num(x.kvBytes / 1048576, 2)} | ${num(x.msPerFrame, 2)} | ${num(x.meanTtftMs, 1)} |`,
    );
  }
  out.push('', '| length | video | frames | × real time | peak RSS MiB |', '|---|---|---|---|---|');
  for (const v of r.videos) out.push(`| ${v.lengthMin} min | ${v.index} | ${v.frames} | ${num(v.realtimeFactor, 1)} | ${num(v.peakRssBytes / 1048576)} |`);
  for (const n of r.notes) out.push('', `- ${n}`);
  return out.join('\n');
}
