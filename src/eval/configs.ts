// Which pruning settings a part is evaluated under. Ratio strategies run at each budget; threshold
// and temporal filtering have no budget knob, so they are swept over thresholds placed at quantiles
// of the similarities measured on a few calibration scenes (the kept fraction depends only on the
// score distribution, never on answers), and reported at the sweep point closest to each budget.
import { TemporalFilter } from '../prune/index.js';
import type { EncodedFrame } from '../encode/index.js';
import type { Pruner } from '../prune/index.js';
import { RATIO_STRATEGIES, type EvalConfig, type EvalPart, type EvalStrategy } from './types.js';

export interface Calibration {
  /** Codebook max-similarity of every token of the calibration frames (null without a codebook). */
  scores: Float32Array | null;
  /**
   * Cosine similarity of each token to the same grid position in the previous frame of the same
   * video (frames after the first). Null for stills.
   */
  temporalSims: Float32Array | null;
  /** Mean share of a video's tokens that sit in its first frame (temporal filtering keeps all of them). */
  firstFrameShare: number;
}

/** Sorted copy without NaNs. */
function sorted(xs: Float32Array): Float64Array {
  const out = Float64Array.from(xs.filter((v) => !Number.isNaN(v)));
  return out.sort();
}

/** The value below which a fraction `q` of `s` (sorted) lies: the threshold that keeps about q. */
export function quantileThreshold(s: Float64Array, q: number): number {
  if (s.length === 0) return NaN;
  const k = Math.round(q * s.length);
  if (k <= 0) return s[0];
  if (k >= s.length) return s[s.length - 1] + 1e-6;
  // Halfway between neighbours so `s < τ` keeps exactly k calibration tokens.
  return (s[k - 1] + s[k]) / 2;
}

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;

/**
 * Measures the calibration distributions: codebook scores through a scoring pruner (strategy
 * none with the codebook) and temporal similarities through a TemporalFilter that drops nothing.
 */
export async function calibrate(scorer: Pruner | null, scenes: readonly { frames: EncodedFrame[] }[], video: boolean): Promise<Calibration> {
  const scores: number[] = [];
  const sims: number[] = [];
  let firstShare = 0;
  for (const s of scenes) {
    if (scorer) {
      scorer.resetSource();
      for (const f of s.frames) {
        const pf = await scorer.prune(f);
        for (const v of pf.scores) scores.push(v);
      }
    }
    if (video && s.frames.length > 0) {
      // τ above any cosine: nothing is dropped, so the reference is always the previous frame.
      const tf = new TemporalFilter({ tau: 2 });
      let total = 0;
      for (const f of s.frames) {
        const L = f.numTokens;
        const mask = new Uint8Array(L).fill(1);
        const sim = new Float32Array(L);
        tf.filter(undefined, f.tokens, f.gridH, f.gridW, f.dim, mask, sim);
        tf.commit(undefined, f.tokens, f.dim, Int32Array.from({ length: L }, (_, i) => i));
        for (const v of sim) if (!Number.isNaN(v)) sims.push(v);
        total += L;
      }
      firstShare += s.frames[0].numTokens / total;
    }
  }
  return {
    scores: scorer ? Float32Array.from(scores) : null,
    temporalSims: video ? Float32Array.from(sims) : null,
    firstFrameShare: video && scenes.length ? firstShare / scenes.length : 0,
  };
}

export interface ConfigPlan {
  budgets: readonly number[];
  strategies: readonly EvalStrategy[];
  hasCodebook: boolean;
  /** The codebook's default τ (its own row), when it has one. */
  defaultTau?: number;
  /** Explicit threshold sweep instead of the calibrated one. */
  tauSweep?: readonly number[];
  /** Explicit temporal τ_t sweep instead of the calibrated one. */
  temporalSweep?: readonly number[];
}

/** Kept fractions the threshold sweep aims at (budgets plus points in between, for the curve). */
export function sweepFractions(budgets: readonly number[]): number[] {
  const extra = [0.02, 0.035, 0.075, 0.15, 0.3, 0.75];
  return [...new Set([...budgets, ...extra].map(round4))].filter((q) => q > 0 && q < 1).sort((a, b) => a - b);
}

/** The configs of one part (temporal strategies only for videos). */
export function planConfigs(part: EvalPart, plan: ConfigPlan, cal: Calibration): { configs: EvalConfig[]; skipped: { strategy: EvalStrategy; reason: string }[] } {
  const configs: EvalConfig[] = [];
  const skipped: { strategy: EvalStrategy; reason: string }[] = [];
  const fracs = sweepFractions(plan.budgets);
  const scores = cal.scores ? sorted(cal.scores) : null;
  const taus = (): number[] => {
    if (plan.tauSweep) return [...plan.tauSweep];
    const list = scores ? fracs.map((q) => round4(quantileThreshold(scores, q))) : [];
    return [...new Set(list)].sort((a, b) => a - b);
  };
  // Temporal filtering keeps a video's whole first frame, so a kept fraction q of the whole video
  // needs a share (q − first) / (1 − first) of the later frames' tokens to count as changed.
  const sims = cal.temporalSims ? sorted(cal.temporalSims) : null;
  const temporalTaus = (targets: readonly number[]): number[] => {
    if (plan.temporalSweep) return [...plan.temporalSweep];
    if (!sims || sims.length === 0) return [];
    const first = cal.firstFrameShare;
    const list = targets.map((q) => round4(quantileThreshold(sims, Math.min(1, Math.max(0.001, (q - first) / (1 - first))))));
    return [...new Set(list)].sort((a, b) => a - b);
  };
  for (const strategy of plan.strategies) {
    if (part === 'stills' && (strategy === 'temporal' || strategy === 'threshold+temporal')) {
      skipped.push({ strategy, reason: 'needs several frames of one source (videos only)' });
      continue;
    }
    const needsCodebook = strategy === 'threshold' || strategy === 'ratio' || strategy === 'double-softmax' || strategy === 'threshold+temporal';
    if (needsCodebook && !plan.hasCodebook) {
      skipped.push({ strategy, reason: 'no codebook' });
      continue;
    }
    if (strategy === 'none') configs.push({ id: 'none', strategy });
    else if (RATIO_STRATEGIES.has(strategy)) {
      for (const b of plan.budgets) configs.push({ id: `${strategy}@${b}`, strategy, ratio: b });
    } else if (strategy === 'threshold') {
      const list = taus();
      if (plan.defaultTau !== undefined && !list.includes(round4(plan.defaultTau))) list.push(plan.defaultTau);
      for (const tau of list) configs.push({ id: `threshold:tau=${tau}`, strategy, tau });
    } else if (strategy === 'temporal') {
      const list = temporalTaus([...fracs.filter((q) => q > cal.firstFrameShare), 0.9]);
      if (list.length === 0) skipped.push({ strategy, reason: 'no temporal calibration' });
      for (const tt of list) configs.push({ id: `temporal:tt=${tt}`, strategy, temporalTau: tt });
    } else if (strategy === 'threshold+temporal') {
      // τ for each budget crossed with three temporal settings: most, some, few later tokens "unchanged".
      const list = plan.tauSweep ? [...plan.tauSweep] : scores ? [...new Set(plan.budgets.map((q) => round4(quantileThreshold(scores, q))))] : [];
      if (plan.defaultTau !== undefined && !list.includes(round4(plan.defaultTau))) list.push(plan.defaultTau);
      const tts = plan.temporalSweep ? [...plan.temporalSweep] : sims && sims.length ? [...new Set([0.05, 0.15, 0.3].map((q) => round4(quantileThreshold(sims, q))))] : [];
      if (tts.length === 0) skipped.push({ strategy, reason: 'no temporal calibration' });
      for (const tau of list.sort((a, b) => a - b)) for (const tt of tts) configs.push({ id: `threshold+temporal:tau=${tau},tt=${tt}`, strategy, tau, temporalTau: tt });
    }
  }
  return { configs, skipped };
}
