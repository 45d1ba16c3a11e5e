// What both model stages (src/encode, src/llm) share about a model folder: opening its ONNX files
// (dtype variants, execution provider, typed errors), the schema of its config.json and
// generation_config.json, and the I/O contract each component is checked against.
export {
  OnnxSessionOpener,
  MODEL_COMPONENTS,
  DTYPE_SUFFIX,
  componentPath,
  missingFileError,
  fileExists,
} from './onnx-session.js';
export type { ModelDtype, ModelComponent, ExecutionProviderOption, ExecutionProviderName, OnnxSessionOptions } from './onnx-session.js';
export { parseModelConfig, parseGenerationConfig, loadModelConfigFiles, readModelJson, configError, zodIssues } from './config.js';
export type {
  ModelConfig,
  TextModelConfig,
  GenerationConfig,
  TemporalIdentitySpec,
  PoolingSpec,
  PoolingMode,
  VisualPositionScheme,
} from './config.js';
export { validateContract, openComponent, openFolderComponent, contractError, specsOf, staticDim } from './contract.js';
export type { TensorSpec, ComponentSession } from './contract.js';
