// Public surface of the encode stage: model folders (shared with src/llm), preprocessing, the
// encode operator and token-grid pooling.
export { ModelFolder, loadModel, MODEL_COMPONENTS, DTYPE_SUFFIX, validateContract, tokenGrid } from './model-folder.js';
export type {
  ModelDtype,
  ModelComponent,
  ExecutionProviderOption,
  ExecutionProviderName,
  LoadModelOptions,
  TensorSpec,
  ComponentSession,
  VisionEncoderInfo,
  VisionOutput,
  ModelFiles,
} from './model-folder.js';
export { parseModelConfig, parsePreprocessorConfig, RESAMPLE_KERNEL } from './config.js';
export type { ModelConfig, TemporalIdentitySpec, PreprocessPlan, PoolingSpec, PoolingMode, ResizeKernel, ResizeTarget } from './config.js';
export {
  normalizationTable,
  rgbToNormalizedChw,
  geometricTransform,
  pixelValues,
  placeRgb,
  fitSize,
  isModelSized,
} from './preprocess.js';
export type { RgbImage } from './preprocess.js';
export { poolTokenGrid, pooledGridSize } from './pool.js';
export type { PooledGrid } from './pool.js';
export { encode, finishVideoFrame, videoPooling } from './encode.js';
export { ObjectTracker } from './tracker.js';
export type { EncodeOptions, EncodeBatchStats, EncodeOverflowPolicy } from './encode.js';
export type { EncodedFrame } from './types.js';
