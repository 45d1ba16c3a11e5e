// What a session reports: its event map (one emitter type, the shared TypedEmitter) and the payloads
// that are the session's own (the server translates each into a protocol event).
import type { WinnowError } from '../../errors.js';
import { TypedEmitter } from '../../util/emitter.js';
import type { DropPolicy, SourceDescription, TimingInfo, UsageInfo } from '../protocol.js';
import type { StopReason } from '../../llm/index.js';

export interface FrameProcessed {
  index: number;
  ptsMs: number;
  kept: number;
  total: number;
  /** Frame decoded (or pushed) → in the context. */
  latencyMs: number;
  /** LLM prefill of this frame. */
  prefillMs: number;
}

export interface SourceEnded {
  source: SourceDescription;
  /** Frames of this input that reached the context. */
  frames: number;
  /** Frames of this input dropped (all policies), each already reported by a `dropped` event. */
  dropped: number;
  reason: 'end' | 'closed' | 'error';
  error?: WinnowError;
}

export interface WatchResult {
  id: string;
  question: string;
  answer: string;
  /** Newest frame in context when the question was asked. */
  ptsMs: number;
  /** Frames in context. */
  frames: number;
}

export interface AnswerDone {
  id: string;
  status: 'completed' | 'cancelled' | 'failed';
  text: string;
  stopReason: StopReason | null;
  usage: UsageInfo;
  timings: TimingInfo;
  error?: WinnowError;
}

export interface SessionEvents {
  /** A frame was sampled from the input and queued for the model. */
  queued: { index: number; ptsMs: number };
  frame: FrameProcessed;
  /**
   * Frames dropped under `policy` since the previous event of that policy (coalesced: at most one per
   * policy every 200 ms, and always flushed before `source.ended` and `closed`). `total`: all policies.
   */
  dropped: { count: number; total: number; policy: DropPolicy };
  evicted: { frames: number; tokens: number; remainingFrames: number; oldestPtsMs: number | null };
  'source.opened': SourceDescription;
  'source.reconnecting': { source: SourceDescription; attempt: number; delayMs: number; reason: string };
  'source.ended': SourceEnded;
  watch: WatchResult;
  /** A question (response or standing question) was prefilled against the context. */
  prefilled: { kind: 'response' | 'watch'; prefillMs: number; questionTokens: number };
  /** Problems not tied to a call (a frame the model could not process, a webhook that failed). */
  error: WinnowError;
  closed: { reason: string };
}

export type SessionEmitter = TypedEmitter<SessionEvents>;
