// Public surface of the prune stage.
export type { EncodedFrame, PrunedFrame, PruneStats, StrategyName } from './types.js';
export { STRATEGY_NAMES, CODEBOOK_STRATEGIES, ENCODER_CHECK_POLICIES } from './types.js';
export {
  loadCodebook,
  saveCodebook,
  encodeCodebook,
  decodeSafetensorsCodebook,
  decodeTorchCodebook,
  codebookNormStats,
  checkCodebookEncoder,
  sha256File,
  samplesPathFor,
  CODEBOOK_FORMAT_VERSION,
} from './codebook.js';
export type { Codebook, CodebookModelInfo, CodebookDefaults, CodebookBuildInfo, LoadCodebookOptions, CodebookNormStats, EncoderCheckPolicy, CodebookEncoderCheck, CheckCodebookEncoderOptions } from './codebook.js';
export { createPrototypeIndex } from './prototype-index.js';
export type { PrototypeIndex, PrototypeIndexOptions, HnswOptions, IndexBackend, ExactKernel, ScoreBuffers } from './prototype-index.js';
export {
  thresholdStrategy,
  ratioStrategy,
  doubleSoftmaxStrategy,
  randomStrategy,
  poolStrategy,
  clsStrategy,
  noneStrategy,
  pyRound,
} from './strategies.js';
export { TemporalFilter } from './temporal.js';
export type { TemporalOptions } from './temporal.js';
export { Pruner, prune } from './pruner.js';
export { loadPruningCodebook, sharedIndexView } from './loaded-codebook.js';
export type { PruningCodebook, LoadPruningCodebookOptions } from './loaded-codebook.js';
export type { PrunerOptions, PrunerLoadOptions, PruneOperatorOptions, PruneOverflowPolicy } from './pruner.js';
export { readNpy, writeNpy } from './npy.js';
export type { NpyMatrix } from './npy.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
