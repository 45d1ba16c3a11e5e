// The claims issue 8 tests, checked mechanically from a report's rows (no cherry-picking: every
// qualifying row is listed, and the verdict says which, if any, meets the claim):
//  1. codebook pruning (threshold, ratio, double-softmax) keeps ≥ 95 % of `none`'s frame-question
//     accuracy with ≤ 15 % of tokens, and beats `random` and `pool` at the same budget by ≥ 10 points;
//  2. on static-camera videos `threshold+temporal` keeps ≥ 95 % of `none`'s video-question accuracy
//     with ≤ 5 % of tokens.
import type { BudgetRow, EvalStrategy, PartReport } from './types.js';

export interface ClaimRow {
  strategy: EvalStrategy;
  budget: number | null;
  keptFraction: number;
  accuracy: number | null;
  relativeToNone: number | null;
  /** Accuracy minus random's / pool's at the same budget, in percentage points (null when not run). */
  vsRandomPts: number | null;
  vsPoolPts: number | null;
  met: boolean;
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
    const rows: ClaimRow[] = videos.rows
      .filter((r) => r.strategy === 'threshold+temporal' && r.summary.keptFraction <= 0.05)
      .map((r) => ({
        strategy: r.strategy,
        budget: r.budget,
        keptFraction: r.summary.keptFraction,
        accuracy: r.summary.headline.accuracy,
        relativeToNone: r.summary.relativeToNone,
        vsRandomPts: null,
        vsPoolPts: null,
        met: (r.summary.relativeToNone ?? 0) >= 0.95,
      }));
    // The τ sweep may not land at ≤ 5 %: then every sweep point at ≤ 5 % counts.
    if (rows.length === 0) {
      for (const c of videos.configs) {
        if (c.config.strategy !== 'threshold+temporal' || c.keptFraction > 0.05) continue;
        rows.push({ strategy: 'threshold+temporal', budget: null, keptFraction: c.keptFraction, accuracy: c.headline.accuracy, relativeToNone: c.relativeToNone, vsRandomPts: null, vsPoolPts: null, met: (c.relativeToNone ?? 0) >= 0.95 });
      }
    }
    const ok = rows.filter((x) => x.met);
    out.push({
      id: 'video-temporal',
      claim: 'on static-camera videos threshold+temporal keeps ≥ 95 % of unpruned video-question accuracy with ≤ 5 % of tokens',
      rows,
      met: rows.length ? ok.length > 0 : null,
      verdict: rows.length === 0 ? 'no threshold+temporal setting kept ≤ 5 %' : ok.length ? `met (${ok.length} of ${rows.length} settings at ≤ 5 % kept)` : `not met by any of ${rows.length} settings at ≤ 5 % kept`,
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
        `  - ${r.strategy}${r.budget !== null ? ` @${r.budget}` : ' (sweep/default)'}: kept ${pct(r.keptFraction)} %, accuracy ${pct(r.accuracy)} % = ${r.relativeToNone === null ? '–' : (100 * r.relativeToNone).toFixed(1)} % of none` +
          (c.id === 'frame-codebook' ? `, vs random ${pts(r.vsRandomPts)} pts, vs pool ${pts(r.vsPoolPts)} pts` : ''),
      );
    }
  }
  return out.join('\n');
}
