// Public surface of the runtime: the pipeline loaded once and shared by every entry point.
export { WinnowRuntime, VisionRuntime } from './runtime.js';
export type { RuntimeOptions, PrunerSettings } from './runtime.js';
export { DEFAULT_MODEL_DIR, DEFAULT_CODEBOOK, resolveModel, resolveModelDir, describeNoCodebook } from './defaults.js';
export type { ModelChoice, ResolvedModel, NoCodebookReason } from './defaults.js';
export { appendPruned } from './frames.js';
export type { EncodeSourceOptions, PrefillOptions, PrefillResult } from './frames.js';
export type { PictureSize } from '../encode/index.js';
