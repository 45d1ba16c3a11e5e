// Public surface of the language-model runtime.
export { LanguageModel } from './model.js';
export type { LanguageModelLoadOptions } from './model.js';
export { VideoContext } from './context.js';
export type {
  VisualFrame,
  VideoContextOptions,
  VideoContextEvents,
  VideoContextStats,
  AskOptions,
  AnswerResult,
  AppendResult,
  EvictionEvent,
  StopReason,
} from './context.js';
export { TextTokenizer, IncrementalDetokenizer, StopStringMatcher } from './tokenizer.js';
export type { ChatMessage } from './tokenizer.js';
export { TokenSampler, SeededRandom } from './sampling.js';
export type { SamplingOptions } from './sampling.js';
export { KvCache, DecoderRuntime, readDecoderContract } from './decoder.js';
export type { DecoderContract, KvDtype } from './decoder.js';
export { loadLanguageModelConfig, parseLanguageModelConfig, formatFrameMarker } from './config.js';
export type { LanguageModelConfig, VisualPositionScheme } from './config.js';
