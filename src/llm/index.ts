// Public surface of the language-model runtime.
export { LanguageModel } from './model.js';
export type { LanguageModelLoadOptions, LanguageModelSource } from './model.js';
export { VideoContext } from './context.js';
export type { VideoContextOptions, VideoContextEvents, VideoContextStats, AppendResult } from './context.js';
export type { VisualFrame } from './video-state.js';
export type { EvictionEvent } from './eviction.js';
export type { AskOptions, AnswerResult, StopReason } from './generation.js';
export { VideoPromptLayout, formatFrameMarker } from './layout.js';
export type { FrameSlots } from './layout.js';
export { TextTokenizer, IncrementalDetokenizer, StopStringMatcher } from './tokenizer.js';
export type { ChatMessage } from './tokenizer.js';
export { TokenSampler, SeededRandom } from './sampling.js';
export type { SamplingOptions } from './sampling.js';
export { KvCache, DecoderRuntime, readDecoderContract } from './decoder.js';
export type { DecoderContract, KvDtype } from './decoder.js';
export { loadLanguageModelConfig, parseLanguageModelConfig, languageModelConfig, DEFAULT_FRAME_MARKER } from './config.js';
export type { LanguageModelConfig, VisualPositionScheme } from './config.js';
