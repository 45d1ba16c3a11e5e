import type { Frame } from '../ingest/types.js';

/** What the encode stage emits for one frame (src/encode imports this type from here). */
export interface EncodedFrame {
  frame: Frame;
  /** numTokens × dim, row-major, in the LLM's embedding space (after the projector). */
  tokens: Float32Array;
  numTokens: number;
  dim: number;
  /** Token grid; gridH × gridW === numTokens, raster order. */
  gridH: number;
  gridW: number;
  /** Per-token cosine similarity to the ViT's [CLS] token, when the encoder provides it. */
  clsSimilarity?: Float32Array;
  /**
   * Per-token class from the encoder (patch_classes), full grid only: a pooled video frame has
   * already used them for its temporal identity and drops them.
   */
  patchClasses?: Int32Array;
  /** Identifies the stream a frame belongs to (temporal pruning keeps state per source). */
  sourceId?: string;
}

export interface PruneStats {
  kept: number;
  total: number;
  /** Wall time spent scoring and selecting for this frame, milliseconds. */
  scoreMs: number;
}

export interface PrunedFrame {
  frame: Frame;
  /** Original token indices that survived, ascending. */
  kept: Int32Array;
  /** The kept rows, kept.length × dim, in the order of `kept`. */
  tokens: Float32Array;
  /** Per ORIGINAL token: max cosine similarity to the codebook (NaN when no codebook is used). */
  scores: Float32Array;
  gridH: number;
  gridW: number;
  dim: number;
  sourceId?: string;
  stats: PruneStats;
}

export type StrategyName = 'threshold' | 'ratio' | 'double-softmax' | 'random' | 'pool' | 'cls' | 'none';

export const STRATEGY_NAMES: readonly StrategyName[] = ['threshold', 'ratio', 'double-softmax', 'random', 'pool', 'cls', 'none'];

/**
 * What to do when a codebook records the vision encoder it was built with and the model's encoder
 * is another file: 'error' (WINNOW_ERR_CODEBOOK_MISMATCH), 'warn' (report, then prune anyway) or
 * 'off' (do not hash the encoder).
 */
export const ENCODER_CHECK_POLICIES = ['error', 'warn', 'off'] as const;
export type EncoderCheckPolicy = (typeof ENCODER_CHECK_POLICIES)[number];

/** Strategies that need a codebook to score tokens. */
export const CODEBOOK_STRATEGIES: ReadonlySet<StrategyName> = new Set(['threshold', 'ratio', 'double-softmax']);
