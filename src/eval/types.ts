// Types shared by the evaluation: what is evaluated (configs over scenes of a set) and what comes
// out (per-scene records, per-config aggregates, the report).
import type { QuestionFamily } from '../synth/index.js';

/** Pruning strategies the evaluation knows: the pruner's own, plus temporal filtering alone or on top of threshold. */
export type EvalStrategy = 'none' | 'threshold' | 'ratio' | 'double-softmax' | 'random' | 'pool' | 'cls' | 'temporal' | 'threshold+temporal';

export const EVAL_STRATEGIES: readonly EvalStrategy[] = ['none', 'threshold', 'ratio', 'double-softmax', 'random', 'pool', 'cls', 'temporal', 'threshold+temporal'];

/** Strategies that take a kept fraction directly (evaluated at each budget). */
export const RATIO_STRATEGIES: ReadonlySet<EvalStrategy> = new Set(['ratio', 'double-softmax', 'random', 'pool', 'cls']);

/** Strategies that need a codebook. */
export const CODEBOOK_EVAL_STRATEGIES: ReadonlySet<EvalStrategy> = new Set(['threshold', 'ratio', 'double-softmax', 'threshold+temporal']);

/** Strategies that only make sense over several frames of one source. */
export const TEMPORAL_EVAL_STRATEGIES: ReadonlySet<EvalStrategy> = new Set(['temporal', 'threshold+temporal']);

/** Stills are single frames (all 196 tokens); videos are 1-fps frame sequences (pooled grids). */
export type EvalPart = 'stills' | 'videos';

/** One pruning setting that every scene of a part is answered under. */
export interface EvalConfig {
  /** Stable id, e.g. `ratio@0.1`, `threshold:tau=0.4312`, `threshold+temporal:tau=…,tt=…`. */
  id: string;
  strategy: EvalStrategy;
  /** Kept fraction asked for (ratio strategies). */
  ratio?: number;
  /** Codebook similarity threshold (threshold, threshold+temporal). */
  tau?: number;
  /** Temporal similarity threshold (temporal, threshold+temporal). */
  temporalTau?: number;
}

export interface SceneRef {
  part: EvalPart;
  /** Media file (PNG / MP4). */
  path: string;
  /** Ground truth JSON beside it. */
  truthPath: string;
  name: string;
}

export interface AnswerRecord {
  family: QuestionFamily;
  question: string;
  expected: string;
  /**
   * What the model generated. Generation stops one token after the expected answer's length:
   * enough to decide exact-match correctness exactly as an unbounded `winnow ask` would, while
   * a wrong, rambling answer costs no more than a right one. `truncated` says when it stopped there.
   */
  answer: string;
  truncated: boolean;
  correct: boolean;
  /** Time the question refers to (the last frame in context is this second). */
  tMs: number;
  ttftMs: number;
  /** Tokens generated after the first, and the time they took (decode speed). */
  decodeTokens: number;
  decodeMs: number;
}

/** What one config did on one scene. */
export interface SceneConfigResult {
  configId: string;
  frames: number;
  /** Visual tokens after pruning, summed over frames (the pruner's `stats.kept`). */
  keptTokens: number;
  /** Visual tokens before pruning, summed over frames (the pruner's `stats.total`). */
  totalTokens: number;
  /** LLM prefill of all frames (video), milliseconds. */
  prefillMs: number;
  /** Pruning (scoring + selection) of all frames, milliseconds. */
  pruneMs: number;
  answers: AnswerRecord[];
}

export interface SceneResult {
  scene: SceneRef;
  /** Seconds spent decoding + encoding the scene once (shared by all configs). */
  encodeMs: number;
  configs: SceneConfigResult[];
}

export interface FamilyScore {
  correct: number;
  total: number;
  accuracy: number | null;
}

/** One config aggregated over a part. */
export interface ConfigSummary {
  config: EvalConfig;
  scenes: number;
  frames: number;
  questions: number;
  families: Partial<Record<QuestionFamily, FamilyScore>>;
  /** Pooled over the part's headline families (F1–F4 for stills, V1–V3 for videos). */
  headline: FamilyScore;
  /** headline accuracy ÷ `none`'s headline accuracy (null without `none` or when it is 0). */
  relativeToNone: number | null;
  meanKeptPerFrame: number;
  meanTotalPerFrame: number;
  keptFraction: number;
  /** Mean LLM prefill per frame and per scene, milliseconds. */
  prefillMsPerFrame: number;
  prefillMsPerScene: number;
  pruneMsPerFrame: number;
  meanTtftMs: number;
  medianTtftMs: number;
  decodeTokensPerS: number | null;
}

/** A row of the report: a strategy at a budget (for swept strategies, the sweep point closest to it). */
export interface BudgetRow {
  strategy: EvalStrategy;
  /** Budget the row stands for (null for `none` and for the codebook default). */
  budget: number | null;
  /** Set for the codebook's own default setting. */
  label?: string;
  summary: ConfigSummary;
}

export interface PartReport {
  part: EvalPart;
  headlineFamilies: QuestionFamily[];
  scenes: number;
  /** Every config run, including the whole τ sweeps. */
  configs: ConfigSummary[];
  /** What the table shows. */
  rows: BudgetRow[];
  skipped: { strategy: EvalStrategy; reason: string }[];
}

/** What one run (pruned or not) had and answered at one checkpoint of a long video. */
export interface LongCheckpoint {
  /** The second asked about (ms): the context holds exactly the frames up to it. */
  tMs: number;
  /** Tokens in the KV cache when the questions were asked, the questions excluded. */
  contextTokens: number;
  visualTokens: number;
  /** contextTokens − visualTokens: frame markers and the prompt's fixed tokens. */
  markerTokens: number;
  markerShare: number;
  framesInContext: number;
  evictedFrames: number;
  kvBytes: number;
  /** Pruning + prefill per frame since the previous checkpoint (the run's own cost; decode and encode are shared). */
  msPerFrame: number;
  meanTtftMs: number;
  /** Resident set of the process when asked. */
  rssBytes: number;
  families: Partial<Record<QuestionFamily, FamilyScore>>;
  answers: AnswerRecord[];
}

export interface LongRun {
  /** `none`, or `default`: the codebook's default pruning (as `winnow ask`). */
  label: 'none' | 'default';
  config: EvalConfig;
  frames: number;
  keptFraction: number;
  meanKeptPerFrame: number;
  msPerFrame: number;
  checkpoints: LongCheckpoint[];
}

export interface LongVideoResult {
  lengthMin: number;
  index: number;
  path: string;
  /** Frames streamed (the length at 1 fps). */
  frames: number;
  wallS: number;
  /** Seconds of video per second of wall time, both runs and the shared decode + encode included. */
  realtimeFactor: number;
  /** The process's peak RSS after this video (both runs side by side; monotone over the evaluation). */
  peakRssBytes: number;
  runs: LongRun[];
}

export interface LongEvalReport {
  tool: 'winnow eval --long';
  version: 1;
  createdAt: string;
  model: { dir: string; name: string | null };
  codebook: { path: string; defaultStrategy: string | null; defaultTau: number | null } | null;
  options: {
    lengthsMin: number[];
    videosPerLength: number;
    seed: number;
    fps: number;
    maxContextTokens: number;
    checkpointFractions: number[];
  };
  wallS: number;
  videos: LongVideoResult[];
  notes: string[];
}

export interface EvalReport {
  tool: 'winnow eval';
  version: 1;
  createdAt: string;
  model: { dir: string; name: string | null };
  codebook: { path: string; prototypes: number; defaultStrategy: string | null; defaultTau: number | null } | null;
  set: { dir: string; seed: number | null; stills: number; videos: number; videoDurationsS: number[] };
  options: {
    fps: number;
    budgets: number[];
    strategies: EvalStrategy[];
    families: QuestionFamily[];
    checkpoints: number;
    randomSeed: number;
    threads: number | null;
    workers: number;
    calibrationScenes: { stills: number; videos: number };
  };
  timing: { wallS: number; encodeS: number };
  parts: PartReport[];
  notes: string[];
  /** The claims checked against the rows (see claims.ts). */
  claims: import('./claims.js').ClaimCheck[];
  /** Per scene and config answers; only with `saveAnswers`. */
  scenes?: SceneResult[];
}
