// The claims issue 8 tests, checked mechanically from a report's rows (no cherry-picking: every
// qualifying row is listed, and the verdict says which, if any, meets the claim):
//  1. codebook pruning (threshold, ratio, double-softmax) keeps ≥ 95 % of `none`'s frame-question
//     accuracy with ≤ 15 % of tokens, and beats `random` and `pool` at the same budget by ≥ 10 points;
//  2. on static-camera videos `threshold+temporal` keeps ≥ 95 % of `none`'s video-question accuracy
//     with ≤ 5 % of tokens.
import type { BudgetRow, ConfigSummary, EvalStrategy, PartReport } from './types.js';

export interface ClaimRow {
  strategy: EvalStrategy;
  budget: number | null;
  keptFraction: number;
  accuracy: number | null;
  relativeToNone: number | null;
  /** Accuracy minus random's / pool's at the same budget, in percentage points (null when not run). */
  vsRandomPts: number | null;
  vsPoolPts: number | null;
  /** The swept parameters of the row (τ, τt) where it is one point of a sweep. */
  setting?: string;
  /** A sweep point beside the pre-registered budget row: listed, but not part of the verdict. */
  posthoc?: boolean;
  met: boolean;
}

function videoRow(c: ConfigSummary, budget: number | null, posthoc: boolean): ClaimRow {
  return {
    strategy: 'threshold+temporal',
    budget,
    setting: `τ=${c.config.tau} τt=${c.config.temporalTau}`,
    keptFraction: c.keptFraction,
    accuracy: c.headline.accuracy,
    relativeToNone: c.relativeToNone,
    vsRandomPts: null,
    vsPoolPts: null,
    ...(posthoc ? { posthoc } : {}),
    met: (c.relativeToNone ?? 0) >= 0.95,
  };
}

export interface ClaimCheck {
  id: 'frame-codebook' | 'video-temporal';
  claim: string;
  rows: ClaimRow[];
  met: boolean | null;
  verdict: string;
}

const CODEBOOK: ReadonlySet<EvalStrategy> = new Set(['threshold', 'ratio', 'double-softmax']);

function atBudget(part: PartReport, strategy: EvalStrategy, budget: number | null): BudgetRow | undefined {
  return part.rows.find((r) => r.strategy === strategy && r.budget === budget && !r.label);
}

export function checkClaims(parts: readonly PartReport[]): ClaimCheck[] {
  const out: ClaimCheck[] = [];
  const stills = parts.find((p) => p.part === 'stills');
  if (stills) {
    const rows: ClaimRow[] = [];
    for (const r of stills.rows) {
      if (!CODEBOOK.has(r.strategy) || r.summary.keptFraction > 0.15) continue;
      const acc = r.summary.headline.accuracy;
      const other = (s: EvalStrategy): number | null => {
        const o = r.budget !== null ? atBudget(stills, s, r.budget)?.summary.headline.accuracy : undefined;
        return o === undefined || o === null || acc === null ? null : 100 * (acc - o);
      };
      const vsRandomPts = other('random');
      const vsPoolPts = other('pool');
      rows.push({
        strategy: r.strategy,
        budget: r.label ? null : r.budget,
        keptFraction: r.summary.keptFraction,
        accuracy: acc,
        relativeToNone: r.summary.relativeToNone,
        vsRandomPts,
        vsPoolPts,
        met: (r.summary.relativeToNone ?? 0) >= 0.95 && (vsRandomPts ?? -Infinity) >= 10 && (vsPoolPts ?? -Infinity) >= 10,
      });
    }
    const ok = rows.filter((x) => x.met);
    out.push({
      id: 'frame-codebook',
      claim: 'codebook pruning keeps ≥ 95 % of unpruned frame-question accuracy with ≤ 15 % of tokens and beats random and pool at the same kept count by ≥ 10 points',
      rows,
      met: rows.length ? ok.length > 0 : null,
      verdict: rows.length === 0 ? 'no codebook row at ≤ 15 % kept' : ok.length ? `met by ${ok.map((x) => `${x.strategy}@${x.budget}`).join(', ')}` : 'not met by any codebook row at ≤ 15 % kept',
    });
  }
  const videos = parts.find((p) => p.part === 'videos');
  if (videos) {
    // The verdict is the pre-registered row: the setting whose kept fraction is nearest the 5 %
    // budget (as every budget row is chosen). Other τ × τt points of the sweep at ≤ 5 % are listed
    // too, marked post hoc: picked after seeing these videos' answers, they decide nothing, also when
    // the budget row itself keeps a little over 5 % (then the claim is simply not met by it; counting
    // the best of the other points instead would be choosing the setting by its result). Confirm a
    // post-hoc setting on a held-out set (`--tau-sweep τ --temporal-sweep τt` on another seed).
    // Without any budget row (an old report), every sweep point at ≤ 5 % counts.
    const rows: ClaimRow[] = [];
    const budgetIds = new Set<string>();
    let overBudget: ConfigSummary | undefined;
    for (const r of videos.rows) {
      if (r.strategy !== 'threshold+temporal' || r.budget === null || budgetIds.has(r.summary.config.id)) continue;
      if (r.summary.keptFraction <= 0.05) {
        budgetIds.add(r.summary.config.id);
        rows.push(videoRow(r.summary, r.budget, false));
      } else if (r.budget <= 0.05) overBudget ??= r.summary;
    }
    const preRegistered = rows.length > 0 || overBudget !== undefined;
    for (const c of videos.configs) {
      if (c.config.strategy !== 'threshold+temporal' || c.keptFraction > 0.05 || budgetIds.has(c.config.id)) continue;
      rows.push(videoRow(c, null, preRegistered));
    }
    const counted = rows.filter((x) => !x.posthoc);
    const ok = counted.filter((x) => x.met);
    const posthocOk = rows.filter((x) => x.posthoc && x.met);
    out.push({
      id: 'video-temporal',
      claim: 'on static-camera videos threshold+temporal keeps ≥ 95 % of unpruned video-question accuracy with ≤ 5 % of tokens',
      rows,
      met: counted.length ? ok.length > 0 : overBudget ? false : null,
      verdict:
        (counted.length === 0 && overBudget
          ? `not met by the budget row (τ=${overBudget.config.tau} τt=${overBudget.config.temporalTau}): it kept ${(100 * overBudget.keptFraction).toFixed(2)} %, over the 5 % budget`
          : counted.length === 0
          ? 'no threshold+temporal setting kept ≤ 5 %'
          : ok.length
            ? `met by ${ok.map((x) => x.setting).join('; ')} (${ok.length} of ${counted.length} settings at ≤ 5 % kept)`
            : `not met by ${counted.length === 1 ? `the budget row (${counted[0].setting})` : `any of ${counted.length} settings at ≤ 5 % kept`}`) +
        (posthocOk.length ? `; post hoc, ${posthocOk.map((x) => x.setting).join('; ')} reached ≥ 95 % on this set (chosen on it: confirm on a held-out set)` : ''),
    });
  }
  return out;
}

export function claimsMarkdown(claims: readonly ClaimCheck[]): string {
  const pct = (x: number | null): string => (x === null ? '–' : (100 * x).toFixed(1));
  const pts = (x: number | null): string => (x === null ? '–' : `${x >= 0 ? '+' : ''}${x.toFixed(1)}`);
  const out: string[] = [];
  for (const c of claims) {
    out.push(`- **Claim:** ${c.claim}. **${c.met === null ? 'Not testable' : c.met ? 'Met' : 'Not met'}** — ${c.verdict}.`);
    for (const r of c.rows) {
      out.push(
        `  - ${r.strategy}${r.budget !== null ? ` @${r.budget}` : r.posthoc ? ' (post hoc)' : ' (sweep/default)'}${r.setting ? ` ${r.setting}` : ''}: kept ${pct(r.keptFraction)} %, accuracy ${pct(r.accuracy)} % = ${r.relativeToNone === null ? '–' : (100 * r.relativeToNone).toFixed(1)} % of none` +
          (c.id === 'frame-codebook' ? `, vs random ${pts(r.vsRandomPts)} pts, vs pool ${pts(r.vsPoolPts)} pts` : ''),
      );
    }
  }
  return out.join('\n');
}
