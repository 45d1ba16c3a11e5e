// Public surface of the encode stage: model folders (shared with src/llm), preprocessing, the
// encode operator and token-grid pooling. What both model stages share (opening ONNX files, the
// config.json schema, component contracts) lives in src/model and is re-exported here.
export { ModelFolder, loadModel } from './model-folder.js';
export type { LoadModelOptions, ModelFiles } from './model-folder.js';
export { MODEL_COMPONENTS, DTYPE_SUFFIX, validateContract, parseModelConfig } from '../model/index.js';
export type {
  ModelDtype,
  ModelComponent,
  ExecutionProviderOption,
  ExecutionProviderName,
  TensorSpec,
  ComponentSession,
  ModelConfig,
  GenerationConfig,
  TemporalIdentitySpec,
  PoolingSpec,
  PoolingMode,
} from '../model/index.js';
export { tokenGrid } from './vision.js';
export type { VisionEncoderInfo, VisionOutput } from './vision.js';
export { parsePreprocessorConfig, RESAMPLE_KERNEL } from './preprocessor-config.js';
export type { PreprocessPlan, ResizeKernel, ResizeTarget } from './preprocessor-config.js';
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
export { modelInputSize, offlineDecodeResize } from './input-size.js';
export type { PictureSize } from './input-size.js';
