// Public surface of the codebook builder (`winnow codebook build`).
export { buildCodebook, loadExperimentModel, imageSelection, summarize, analysisName, REFERENCE_PARAMETERS, DEFAULT_BATCH } from './builder.js';
export { mergeNearDuplicates, DEFAULT_MERGE_COSINE } from './merge.js';
export type { MergeResult } from './merge.js';
export type { ExperimentModel, CodebookBuildOptions, CodebookBuildParameters, CodebookBuildResult, BuildProgress, Distributions } from './builder.js';
export { dpcKnn, seededRandom, deriveSeed } from './dpc-knn.js';
export type { DpcKnnOptions, DpcKnnResult } from './dpc-knn.js';
export { jsdTopK, topProbability, topKIndices, JsdScratch } from './divergence.js';
export { measureImage, neighbourhood } from './experiments.js';
export type { ExperimentOptions, TokenMeasures } from './experiments.js';
export { BatchedForward, buildLayout } from './forward.js';
export type { PromptLayout, SequenceTable, ForwardStats } from './forward.js';
export { lowInformation, selectImageTokens, selectPrototypes, weightedJsd, quantiles } from './select.js';
export type { SelectionOptions, GlobalSelection } from './select.js';
export { WorkDir } from './workdir.js';
export type { ImageRecord } from './workdir.js';
export { renderAnalysis } from './analyze.js';
export { sha256File } from '../codebook.js';
