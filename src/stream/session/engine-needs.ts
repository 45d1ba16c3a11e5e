// What a session needs from the shared engine, and no more: WinnowEngine provides it, and so can a
// small fake in tests that exercise sessions without onnxruntime.
import type { EncodedFrame, ObjectTracker } from '../../encode/index.js';
import type { VideoContext } from '../../llm/index.js';
import type { Pruner } from '../../prune/index.js';
import type { FairScheduler } from '../scheduler.js';
import type { SessionConfig } from './config.js';

/** The parts of a VideoContext a session uses. */
export type SessionContext = Pick<VideoContext, 'on' | 'stats' | 'appendFrame' | 'askStream' | 'close'>;

/** The parts of a Pruner a session uses. */
export type SessionPruner = Pick<Pruner, 'prune' | 'close'>;

export interface SessionEngine {
  /** Sessions register their frame path and answer turns with it. */
  readonly scheduler: Pick<FairScheduler, 'add' | 'remove' | 'wake'>;
  readonly lm: {
    /** `generation.maxNewTokens`: the model's answer length when generation_config.json sets one. */
    readonly config: { readonly generation: { readonly maxNewTokens?: number | null } };
    createContext(options: { maxContextTokens: number }): SessionContext;
  };
  /** Model input size; inputs are resized to it before they reach the encoder. */
  readonly inputSize: { width: number; height: number };
  createPruner(settings: SessionConfig['pruning']): SessionPruner;
  createTracker(): ObjectTracker | undefined;
  finishVideo(encoded: EncodedFrame, tracker: ObjectTracker | undefined): EncodedFrame;
  close(): Promise<void>;
}
