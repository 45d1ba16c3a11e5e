// Aggregation (per config over a part), row selection (each strategy at each budget) and the
// Markdown tables. All numbers in the tables come from the same summaries the JSON holds.
import type { QuestionFamily } from '../synth/index.js';
import { claimsMarkdown } from './claims.js';
import type {
  AnswerRecord,
  BudgetRow,
  ConfigSummary,
  EvalConfig,
  EvalPart,
  EvalReport,
  EvalStrategy,
  FamilyScore,
  PartReport,
  SceneResult,
} from './types.js';

export const FRAME_FAMILIES: readonly QuestionFamily[] = ['F1', 'F2', 'F3', 'F4'];
export const VIDEO_FAMILIES: readonly QuestionFamily[] = ['V1', 'V2', 'V3'];
const ALL_FAMILIES: readonly QuestionFamily[] = ['F1', 'F2', 'F3', 'F4', 'C1', 'V1', 'V2', 'V3'];

export function headlineFamilies(part: EvalPart): QuestionFamily[] {
  return part === 'stills' ? [...FRAME_FAMILIES] : [...VIDEO_FAMILIES];
}

function score(correct: number, total: number): FamilyScore {
  return { correct, total, accuracy: total > 0 ? correct / total : null };
}

export function familyScores(answers: Iterable<AnswerRecord>): Partial<Record<QuestionFamily, FamilyScore>> {
  const acc = new Map<QuestionFamily, { c: number; t: number }>();
  for (const a of answers) {
    const s = acc.get(a.family) ?? { c: 0, t: 0 };
    s.t++;
    if (a.correct) s.c++;
    acc.set(a.family, s);
  }
  const out: Partial<Record<QuestionFamily, FamilyScore>> = {};
  for (const f of ALL_FAMILIES) {
    const s = acc.get(f);
    if (s) out[f] = score(s.c, s.t);
  }
  return out;
}

export function pooled(families: Partial<Record<QuestionFamily, FamilyScore>>, which: readonly QuestionFamily[]): FamilyScore {
  let c = 0;
  let t = 0;
  for (const f of which) {
    c += families[f]?.correct ?? 0;
    t += families[f]?.total ?? 0;
  }
  return score(c, t);
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Aggregates every config of one part over the part's scenes. */
export function summarize(part: EvalPart, configs: readonly EvalConfig[], results: readonly SceneResult[]): ConfigSummary[] {
  const heads = headlineFamilies(part);
  const mine = results.filter((r) => r.scene.part === part);
  const out: ConfigSummary[] = [];
  for (const config of configs) {
    let frames = 0;
    let kept = 0;
    let total = 0;
    let prefill = 0;
    let pruneMs = 0;
    let scenes = 0;
    let decTok = 0;
    let decMs = 0;
    const answers: AnswerRecord[] = [];
    for (const r of mine) {
      const c = r.configs.find((x) => x.configId === config.id);
      if (!c) continue;
      scenes++;
      frames += c.frames;
      kept += c.keptTokens;
      total += c.totalTokens;
      prefill += c.prefillMs;
      pruneMs += c.pruneMs;
      for (const a of c.answers) {
        answers.push(a);
        decTok += a.decodeTokens;
        decMs += a.decodeMs;
      }
    }
    const families = familyScores(answers);
    const ttfts = answers.map((a) => a.ttftMs);
    out.push({
      config,
      scenes,
      frames,
      questions: answers.length,
      families,
      headline: pooled(families, heads),
      relativeToNone: null,
      meanKeptPerFrame: frames ? kept / frames : 0,
      meanTotalPerFrame: frames ? total / frames : 0,
      keptFraction: total ? kept / total : 0,
      prefillMsPerFrame: frames ? prefill / frames : 0,
      prefillMsPerScene: scenes ? prefill / scenes : 0,
      pruneMsPerFrame: frames ? pruneMs / frames : 0,
      meanTtftMs: ttfts.length ? ttfts.reduce((s, x) => s + x, 0) / ttfts.length : NaN,
      medianTtftMs: median(ttfts),
      decodeTokensPerS: decMs > 0 ? (decTok * 1000) / decMs : null,
    });
  }
  const none = out.find((s) => s.config.strategy === 'none');
  const base = none?.headline.accuracy ?? null;
  for (const s of out) s.relativeToNone = base && s.headline.accuracy !== null ? s.headline.accuracy / base : null;
  return out;
}

const SWEPT: ReadonlySet<EvalStrategy> = new Set(['threshold', 'temporal', 'threshold+temporal']);

/**
 * One row per strategy and budget: ratio strategies at their own budget; swept strategies at the
 * sweep point whose kept fraction is closest to the budget (ties: the smaller kept fraction); plus
 * the codebook's default threshold as its own row.
 */
export function selectRows(summaries: readonly ConfigSummary[], strategies: readonly EvalStrategy[], budgets: readonly number[], defaultTau?: number): BudgetRow[] {
  const rows: BudgetRow[] = [];
  for (const strategy of strategies) {
    const mine = summaries.filter((s) => s.config.strategy === strategy);
    if (mine.length === 0) continue;
    if (strategy === 'none') {
      rows.push({ strategy, budget: null, summary: mine[0] });
      continue;
    }
    for (const b of budgets) {
      if (SWEPT.has(strategy)) {
        let best: ConfigSummary | undefined;
        for (const s of mine) {
          if (s.frames === 0) continue;
          const d = Math.abs(s.keptFraction - b);
          const bd = best ? Math.abs(best.keptFraction - b) : Infinity;
          if (d < bd - 1e-12 || (Math.abs(d - bd) <= 1e-12 && best && s.keptFraction < best.keptFraction)) best = s;
        }
        if (best) rows.push({ strategy, budget: b, summary: best });
      } else {
        const s = mine.find((x) => x.config.ratio === b);
        if (s) rows.push({ strategy, budget: b, summary: s });
      }
    }
    if (strategy === 'threshold' && defaultTau !== undefined) {
      const s = mine.find((x) => x.config.tau !== undefined && Math.abs(x.config.tau - defaultTau) < 1e-9);
      if (s) rows.push({ strategy, budget: null, label: 'codebook default', summary: s });
    }
  }
  return rows;
}

const pct = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || Number.isNaN(x) ? '–' : (100 * x).toFixed(digits));
const num = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));

/** The setting a row ran with, e.g. `r=0.1`, `τ=0.4312`, `τ=0.43 τt=0.98`. */
export function settingLabel(c: EvalConfig): string {
  const parts: string[] = [];
  if (c.ratio !== undefined) parts.push(`r=${c.ratio}`);
  if (c.tau !== undefined) parts.push(`τ=${c.tau}`);
  if (c.temporalTau !== undefined) parts.push(`τt=${c.temporalTau}`);
  return parts.join(' ') || '–';
}

export const TABLE_COLUMNS: Record<EvalPart, string[]> = {
  stills: ['strategy', 'budget', 'setting', 'kept/frame', 'kept %', 'F1', 'F2', 'F3', 'F4', 'frame acc %', 'vs none', 'prefill ms/frame', 'TTFT ms', 'decode tok/s'],
  videos: ['strategy', 'budget', 'setting', 'kept/frame', 'kept %', 'V1', 'V2', 'V3', 'video acc %', 'vs none', 'F1–F4 now %', 'prefill ms/frame', 'TTFT ms', 'decode tok/s'],
};

/** The cells of one row, in TABLE_COLUMNS order (the test parses tables back with this). */
export function rowCells(part: EvalPart, row: BudgetRow): string[] {
  const s = row.summary;
  const fam = (f: QuestionFamily): string => pct(s.families[f]?.accuracy);
  const budget = row.label ?? (row.budget === null ? 'all' : String(row.budget));
  const head = [row.strategy, budget, settingLabel(s.config), num(s.meanKeptPerFrame), pct(s.keptFraction)];
  const tail = [num(s.prefillMsPerFrame, 2), num(s.meanTtftMs, 2), num(s.decodeTokensPerS, 0)];
  if (part === 'stills') return [...head, ...FRAME_FAMILIES.map(fam), pct(s.headline.accuracy), num(s.relativeToNone, 3), ...tail];
  return [...head, ...VIDEO_FAMILIES.map(fam), pct(s.headline.accuracy), num(s.relativeToNone, 3), pct(pooled(s.families, FRAME_FAMILIES).accuracy), ...tail];
}

export function partTable(p: PartReport): string {
  const cols = TABLE_COLUMNS[p.part];
  const lines = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];
  for (const r of p.rows) lines.push(`| ${rowCells(p.part, r).join(' | ')} |`);
  return lines.join('\n');
}

/** The whole report as Markdown (what `winnow eval` prints and the README embeds). */
export function reportMarkdown(r: EvalReport): string {
  const out: string[] = [];
  const set = r.set;
  out.push(
    `Model \`${r.model.name ?? r.model.dir}\`, codebook ${r.codebook ? `\`${r.codebook.path.split('/').pop()}\` (${r.codebook.prototypes} prototypes)` : 'none'}; ` +
      `set seed ${set.seed ?? 'unknown'}: ${set.stills} stills, ${set.videos} videos (${set.videoDurationsS.length ? `${Math.min(...set.videoDurationsS)}–${Math.max(...set.videoDurationsS)} s` : '–'}) at ${r.options.fps} fps; ` +
      `random seed ${r.options.randomSeed}; ${r.timing.wallS.toFixed(0)} s wall.`,
  );
  for (const p of r.parts) {
    const n = p.rows[0]?.summary;
    out.push('');
    out.push(
      p.part === 'stills'
        ? `**Frame questions on stills** (${p.scenes} images, ${n?.questions ?? 0} questions per setting; ${n ? n.meanTotalPerFrame.toFixed(0) : '?'} tokens per image before pruning)`
        : `**Video questions on 1-fps videos** (${p.scenes} videos, ${n?.questions ?? 0} questions per setting at ${r.options.checkpoints} moments each; ${n ? n.meanTotalPerFrame.toFixed(0) : '?'} pooled tokens per frame before pruning)`,
    );
    out.push('');
    out.push(partTable(p));
    for (const s of p.skipped) out.push(`\n_${s.strategy} not run on ${p.part}: ${s.reason}._`);
  }
  if (r.claims?.length) {
    out.push('');
    out.push(claimsMarkdown(r.claims));
  }
  if (r.notes.length) {
    out.push('');
    for (const n of r.notes) out.push(`- ${n}`);
  }
  return out.join('\n');
}

/** Parses a Markdown table produced by partTable back into rows of cells (for consistency checks). */
export function parseTable(md: string): { header: string[]; rows: string[][] } {
  const lines = md.split('\n').filter((l) => l.trim().startsWith('|'));
  const cells = (l: string): string[] => l.trim().slice(1, -1).split('|').map((c) => c.trim());
  return { header: cells(lines[0]), rows: lines.slice(2).map(cells) };
}
