// Answering one question on top of the video state: prefill the templated question into scratch
// buffer sets, then sample the answer token by token (streamed as text deltas that never split a
// character, cut at stop strings). The video state is only read, so a question rolls back by
// being forgotten.
import { WinnowError, throwIfAborted } from '../errors.js';
import { positiveInt } from '../util/validate.js';
import type { LanguageModelConfig } from './config.js';
import type { DecoderRuntime, KvBufferSet, KvCache } from './decoder.js';
import type { VideoPromptLayout } from './layout.js';
import { TokenSampler, type SamplingOptions } from './sampling.js';
import { IncrementalDetokenizer, StopStringMatcher, type TextTokenizer } from './tokenizer.js';

export interface AskOptions extends SamplingOptions {
  signal?: AbortSignal;
  /** Default: generation_config.json's max_new_tokens, else 64. */
  maxNewTokens?: number;
  /** Extra strings that end the answer (not included in it). */
  stop?: readonly string[];
  /** Extra token ids that end the answer besides the model's eos. */
  stopTokenIds?: readonly number[];
  /** Called with each text delta as soon as it is complete UTF-16 text. */
  onText?: (delta: string) => void;
}

export type StopReason = 'eos' | 'stop-string' | 'max-new-tokens' | 'context-full';

export interface AnswerResult {
  text: string;
  stopReason: StopReason;
  /** Tokens generated (including the eos token when one ended the answer). */
  generatedTokens: number;
  /** Tokens of the templated question. */
  questionTokens: number;
  /** Tokens in the video context the question was asked against. */
  contextTokens: number;
  /** From the call to the first answer token. */
  ttftMs: number;
  /** Question prefill only. */
  prefillMs: number;
  totalMs: number;
}

/** Answers without this many new tokens in generation_config.json stop after this many. */
const DEFAULT_MAX_NEW_TOKENS = 64;

/** What a question needs before it waits for the cache: checked options, sampler, ids. */
export interface QuestionPlan {
  sampler: TokenSampler;
  maxNewTokens: number;
  eos: ReadonlySet<number>;
  questionIds: number[];
}

export function planQuestion(config: LanguageModelConfig, layout: VideoPromptLayout, question: string, options: AskOptions): QuestionPlan {
  const gen = config.generation;
  const sampler = new TokenSampler({
    temperature: options.temperature ?? (gen.doSample ? gen.temperature : 0),
    topK: options.topK ?? (gen.doSample ? gen.topK : 0),
    topP: options.topP ?? (gen.doSample ? gen.topP : 1),
    seed: options.seed,
  });
  const maxNewTokens = positiveInt('maxNewTokens', options.maxNewTokens ?? gen.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS);
  const eos = new Set<number>([...config.eosTokenIds, ...(options.stopTokenIds ?? [])]);
  return { sampler, maxNewTokens, eos, questionIds: layout.questionIds(question) };
}

/** The video state a question is asked against, and how runs may use the buffers. */
export interface AnswerTarget {
  runtime: DecoderRuntime;
  tokenizer: TextTokenizer;
  layout: VideoPromptLayout;
  /** The video state (never written). */
  video: KvCache;
  /** Next position after the video. */
  nextPosition: number;
  maxContextTokens: number;
  maxPositionEmbeddings: number;
  maxChunkTokens: number;
  /** See VideoContextOptions.deferQuestionCache. */
  deferQuestionCache: boolean;
  /** The set a run reading `current` may write into. */
  outputSet: (current: KvCache) => KvBufferSet;
}

/** Prefills the question and generates the answer; `t0` is when the caller was called (for TTFT). */
export async function* answer(target: AnswerTarget, plan: QuestionPlan, options: AskOptions, t0: number): AsyncGenerator<string, AnswerResult, void> {
  const { runtime, layout, video, maxChunkTokens } = target;
  const { signal, onText } = options;
  const qIds = plan.questionIds;
  const tPrefill = performance.now();
  let cur: KvCache = video;
  throwIfAborted(signal);
  const ctxTokens = video.length === 0 ? layout.prefixIds.length : video.length;
  const room = target.maxContextTokens - ctxTokens - qIds.length;
  const posRoom = target.maxPositionEmbeddings - (video.length === 0 ? layout.prefixIds.length : target.nextPosition) - qIds.length;
  if (room < 1 || posRoom < 1) {
    throw new WinnowError('WINNOW_ERR_CONTEXT_OVERFLOW', `the question (${qIds.length} tokens) does not fit the context`, {
      details: { questionTokens: qIds.length, contextTokens: ctxTokens, maxContextTokens: target.maxContextTokens },
    });
  }
  const budget = Math.min(plan.maxNewTokens, room, posRoom);
  // Question prefill (with the prefix when no frame came yet). The last chunk only needs its
  // logits for the first answer token; see deferQuestionCache for its cache.
  const ids = video.length === 0 ? [...layout.prefixIds, ...qIds] : qIds;
  let pos = video.length === 0 ? 0 : target.nextPosition;
  let logits: Float32Array | null = null;
  let pendingIds: BigInt64Array | null = null;
  let pendingPositions: BigInt64Array | null = null;
  for (let a = 0; a < ids.length; a += maxChunkTokens) {
    throwIfAborted(signal);
    const b = Math.min(ids.length, a + maxChunkTokens);
    const chunkIds = BigInt64Array.from(ids.slice(a, b), (x) => BigInt(x));
    const positions = new BigInt64Array(b - a);
    for (let i = 0; i < b - a; i++) positions[i] = BigInt(pos + i);
    pos += b - a;
    const embeds = await runtime.embed(chunkIds);
    if (b === ids.length && target.deferQuestionCache) {
      logits = (await runtime.logitsOnly(embeds, positions, cur)).lastLogits;
      pendingIds = chunkIds;
      pendingPositions = positions;
    } else {
      const r = await runtime.forward(embeds, positions, cur, target.outputSet(cur), target.maxContextTokens);
      cur = r.present;
      logits = r.lastLogits;
    }
  }
  const prefillMs = performance.now() - tPrefill;
  const detok = IncrementalDetokenizer.forTokenizer(target.tokenizer);
  const stops = new StopStringMatcher(options.stop ?? []);
  const oneId = new BigInt64Array(1);
  const onePos = new BigInt64Array(1);
  let text = '';
  let generated = 0;
  let ttftMs = -1;
  let stopReason: StopReason = budget < plan.maxNewTokens ? 'context-full' : 'max-new-tokens';
  const emit = async function* (delta: string): AsyncGenerator<string, void, void> {
    if (delta.length === 0) return;
    text += delta;
    onText?.(delta);
    yield delta;
  };
  for (;;) {
    throwIfAborted(signal);
    const next = plan.sampler.sample(logits as Float32Array);
    generated++;
    if (ttftMs < 0) ttftMs = performance.now() - t0;
    if (plan.eos.has(next)) {
      stopReason = 'eos';
      break;
    }
    const piece = stops.push(detok.push(next));
    yield* emit(piece.text);
    if (piece.stopped) {
      stopReason = 'stop-string';
      break;
    }
    if (generated >= budget) break;
    throwIfAborted(signal);
    oneId[0] = BigInt(next);
    onePos[0] = BigInt(pos++);
    let stepIds = oneId;
    let stepPositions = onePos;
    if (pendingIds !== null && pendingPositions !== null) {
      // The question's last chunk has no cache yet: run it again with this token, once.
      if (pendingIds.length + 1 <= maxChunkTokens) {
        stepIds = BigInt64Array.of(...pendingIds, oneId[0]);
        stepPositions = BigInt64Array.of(...pendingPositions, onePos[0]);
      } else {
        const embeds = await runtime.embed(pendingIds);
        cur = (await runtime.forward(embeds, pendingPositions, cur, target.outputSet(cur), target.maxContextTokens)).present;
        throwIfAborted(signal);
      }
      pendingIds = null;
      pendingPositions = null;
    }
    const embeds = await runtime.embed(stepIds);
    const r = await runtime.forward(embeds, stepPositions, cur, target.outputSet(cur), target.maxContextTokens);
    cur = r.present;
    logits = r.lastLogits;
  }
  if (stopReason !== 'stop-string') yield* emit(stops.push(detok.flush()).text + stops.flush());
  return {
    text,
    stopReason,
    generatedTokens: generated,
    questionTokens: qIds.length,
    contextTokens: ctxTokens,
    ttftMs,
    prefillMs,
    totalMs: performance.now() - t0,
  };
}
