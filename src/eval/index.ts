// Public surface of the evaluation: `winnow eval` as a library, its sets, reports and plot.
export { runEval, DEFAULT_BUDGETS, DEFAULT_FAMILIES } from './run.js';
export type { EvalOptions, LongEvalOptions } from './run.js';
export { Evaluator, selectCheckpoints } from './evaluator.js';
export type { EvaluatorLoadOptions, EncodedScene, Checkpoint } from './evaluator.js';
export { writeEvalSet, writeLongVideo, loadEvalSet, readTruth, RESERVED_SEEDS, DEFAULT_EVAL_SEED } from './set.js';
export type { EvalSet, EvalSetManifest, WriteEvalSetOptions } from './set.js';
export { calibrate, planConfigs, quantileThreshold, sweepFractions } from './configs.js';
export type { Calibration, ConfigPlan } from './configs.js';
export { summarize, selectRows, reportMarkdown, partTable, longTable, parseTable, rowCells, settingLabel, TABLE_COLUMNS, FRAME_FAMILIES, VIDEO_FAMILIES } from './report.js';
export { renderPlot, plotSpec } from './plot.js';
export { runLongVideo } from './long.js';
export type { LongVideoOptions } from './long.js';
export * from './types.js';
export { checkClaims, claimsMarkdown } from './claims.js';
export type { ClaimCheck, ClaimRow } from './claims.js';
