// Public library surface. Each stage re-exports its own small public API.
export { WinnowError, isWinnowError } from './errors.js';
export type { WinnowErrorCode, WinnowErrorOptions } from './errors.js';
export type { Frame } from './ingest/types.js';
export { openVideo, probe, resolveFfmpeg, resolveFfmpegPath, resolveFfprobePath, binaryVersion, buildScaleFilter, buildSelectFilter, DEFAULT_PAD_COLOR } from './ingest/index.js';
export type {
  FrameSize,
  DeviceSource,
  VideoSource,
  ResizeMode,
  OverflowPolicy,
  ReconnectOptions,
  FfmpegEnv,
  FfmpegLocateOptions,
  OpenVideoOptions,
  IngestEvent,
  ProbeResult,
  ProbeOptions,
  BinarySource,
  ResolvedBinary,
  ResolvedFfmpeg,
} from './ingest/index.js';
export {
  Pruner,
  prune,
  loadCodebook,
  saveCodebook,
  codebookNormStats,
  createPrototypeIndex,
  TemporalFilter,
  thresholdStrategy,
  ratioStrategy,
  doubleSoftmaxStrategy,
  randomStrategy,
  poolStrategy,
  clsStrategy,
  readNpy,
  writeNpy,
} from './prune/index.js';
export type {
  EncodedFrame,
  PrunedFrame,
  PruneStats,
  StrategyName,
  Codebook,
  PrototypeIndex,
  PrototypeIndexOptions,
  PrunerOptions,
  PrunerLoadOptions,
  PruneOperatorOptions,
} from './prune/index.js';
export { ModelFolder, loadModel, encode, poolTokenGrid, rgbToNormalizedChw, normalizationTable, pixelValues } from './encode/index.js';
export type {
  LoadModelOptions,
  ModelDtype,
  ModelComponent,
  ExecutionProviderOption,
  ComponentSession,
  VisionEncoderInfo,
  ModelConfig,
  PreprocessPlan,
  PoolingSpec,
  EncodeOptions,
  EncodeBatchStats,
  RgbImage,
} from './encode/index.js';
export { LanguageModel, VideoContext, TextTokenizer, IncrementalDetokenizer, StopStringMatcher, TokenSampler, formatFrameMarker } from './llm/index.js';
export type {
  LanguageModelLoadOptions,
  VisualFrame,
  VideoContextOptions,
  VideoContextEvents,
  VideoContextStats,
  AskOptions,
  AnswerResult,
  AppendResult,
  EvictionEvent,
  StopReason,
  SamplingOptions,
  ChatMessage,
  LanguageModelConfig,
  VisualPositionScheme,
} from './llm/index.js';
