// Public surface of the evaluation: `winnow eval` as a library, its sets, reports and plot.
export { runEval, DEFAULT_BUDGETS, DEFAULT_FAMILIES } from './run.js';
export type { EvalOptions } from './run.js';
export { Evaluator, selectCheckpoints } from './evaluator.js';
export type { EvaluatorLoadOptions, EncodedScene, Checkpoint, AnswerScoring } from './evaluator.js';
export { writeEvalSet, writeLongVideo, writeWatchVideo, loadEvalSet, readTruth, RESERVED_SEEDS, DEFAULT_EVAL_SEED } from './set.js';
export type { EvalSet, EvalSetManifest, WriteEvalSetOptions } from './set.js';
export { calibrate, planConfigs, quantileThreshold, sweepFractions } from './configs.js';
export type { Calibration, ConfigPlan } from './configs.js';
export { summarize, selectRows, reportMarkdown, partTable, parseTable, rowCells, settingLabel, TABLE_COLUMNS, FRAME_FAMILIES, VIDEO_FAMILIES } from './report.js';
export { renderPlot, plotSpec, renderLongPlot, longPlotSpec } from './plot.js';
export { runLongEval, DEFAULT_LONG_LENGTHS_MIN, DEFAULT_LONG_VIDEOS, DEFAULT_LONG_SEED } from './long.js';
export type { LongEvalOptions } from './long.js';
export { longRows, longMarkdown, LONG_TABLE_COLUMNS } from './long-report.js';
export type { LongRow } from './long-report.js';
export * from './types.js';
export { checkClaims, claimsMarkdown } from './claims.js';
export type { ClaimCheck, ClaimRow } from './claims.js';
