// The package root: the entry points a user starts from, then every stage as a namespace for the
// rest (`import { ingest } from 'winnow'; ingest.buildScaleFilter(…)`). Helpers stay in their
// stage, and members marked internal are stripped from the published declarations.

// Errors: one type, a stable `code`, `retryable`.
export { WinnowError, isWinnowError } from './errors.js';
export type { WinnowErrorCode, WinnowErrorOptions } from './errors.js';

// Sessions (the library API) and the WebSocket server behind `winnow serve`.
export { createSession, Session, createServer, WinnowServer, WinnowEngine } from './stream/index.js';
export type { SessionOptions, SessionConfigUpdate, SessionStats, Answer, ServerOptions, StreamLimits, ClientEvent, ServerEvent } from './stream/index.js';

// Video in: any source → frames, and the confinement for sources someone else named.
export { openVideo, probe, SourcePolicy } from './ingest/index.js';
export type { Frame, VideoSource, OpenVideoOptions, ProbeResult, SourcePolicyOptions, ConfinedSource } from './ingest/index.js';

// Models: the pipeline loaded once, or its parts.
export { WinnowRuntime, resolveModel } from './runtime/index.js';
export type { RuntimeOptions } from './runtime/index.js';
export { ModelFolder, loadModel } from './encode/index.js';
export type { LoadModelOptions, ExecutionProviderOption, EncodedFrame } from './encode/index.js';
export { LanguageModel, VideoContext } from './llm/index.js';
export type { LanguageModelLoadOptions, VideoContextOptions, AnswerResult } from './llm/index.js';

// Pruning: the codebook and the pruner.
export { Pruner, loadCodebook } from './prune/index.js';
export type { Codebook, PrunedFrame, PrunerOptions, PrunerLoadOptions, StrategyName } from './prune/index.js';

// Every stage, whole.
export * as ingest from './ingest/index.js';
export * as encoding from './encode/index.js';
export * as pruning from './prune/index.js';
export * as llm from './llm/index.js';
export * as runtime from './runtime/index.js';
export * as stream from './stream/index.js';
export * as synth from './synth/index.js';
