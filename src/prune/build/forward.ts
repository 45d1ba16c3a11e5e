// Batched first-token runs of the decoder for the codebook experiments: many short sequences
// (one per token, window or leave-one-out variant) per decoder call, each from an empty past.
// src/llm's DecoderRuntime is batch-1 by design (it serves one video context), so this sits on
// the same sessions with its own preallocated [B, S, D] scratch.
import * as ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../../errors.js';
import type { DecoderContract, LanguageModelConfig, TextTokenizer } from '../../llm/index.js';
import { formatFrameMarker } from '../../llm/index.js';

/**
 * Where visual tokens go in the model's prompt: `prefixIds` (bos, frame marker), then the visual
 * tokens, then `suffixIds` (the chat-templated prompt with the generation prompt). Positions
 * follow the model's scheme: `frame-shared` gives every visual token the same position,
 * `sequential` counts them up (LLaVA).
 */
export interface PromptLayout {
  prefixIds: number[];
  suffixIds: number[];
  scheme: 'sequential' | 'frame-shared';
  /** Embeddings of prefix and suffix ids, [len × D]. */
  prefixEmbeds: Float32Array;
  suffixEmbeds: Float32Array;
  /** The pad token's input embedding [D]: what ablated tokens are replaced by. */
  padEmbed: Float32Array;
  padTokenId: number;
  prompt: string;
  /** The marker text actually used ('' for none). */
  frameMarker: string;
}

export interface LayoutOptions {
  prompt: string;
  /** Text before the visual tokens; default: the model's frame marker for t = 0 (empty string: none). */
  frameMarker?: string;
  /** Pad id override; default: generation_config / config pad_token_id. */
  padTokenId?: number;
}

/** embed_tokens on ids, batch 1, as a fresh array. */
export async function embedIds(embed: ort.InferenceSession, ids: readonly number[]): Promise<Float32Array> {
  if (ids.length === 0) return new Float32Array(0);
  const input = new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, ids.length]);
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await embed.run({ input_ids: input });
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_INFERENCE', `embed_tokens failed: ${(e as Error).message}`, { cause: e });
  }
  const t = out.inputs_embeds as ort.Tensor;
  if (t.type !== 'float32') throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `embed_tokens returned ${t.type}, expected float32`);
  return (t.data as Float32Array).slice();
}

export async function buildLayout(
  embed: ort.InferenceSession,
  tokenizer: TextTokenizer,
  config: LanguageModelConfig,
  options: LayoutOptions,
): Promise<PromptLayout> {
  const pad = options.padTokenId ?? config.padTokenId;
  if (pad === null || pad === undefined) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', 'the model declares no pad_token_id (config.json / generation_config.json); pass --pad-token-id');
  }
  const marker = options.frameMarker ?? formatFrameMarker(config.frameMarker, 0);
  const prefixIds = [...(config.bosTokenId === null ? [] : [config.bosTokenId]), ...(marker ? tokenizer.encode(marker) : [])];
  const suffixText = tokenizer.applyChatTemplate([{ role: 'user', content: options.prompt }], true);
  const suffixIds = tokenizer.encode(suffixText);
  if (suffixIds.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'the prompt tokenizes to nothing');
  const [prefixEmbeds, suffixEmbeds, padEmbed] = await Promise.all([embedIds(embed, prefixIds), embedIds(embed, suffixIds), embedIds(embed, [pad])]);
  return { prefixIds, suffixIds, scheme: config.visualPositionScheme, prefixEmbeds, suffixEmbeds, padEmbed, padTokenId: pad, prompt: options.prompt, frameMarker: marker };
}

/**
 * A set of sequences over one token matrix: sequence q has `counts[q]` (default `stride`) visual
 * slots, slot v holding token `index[q·stride + v]` of `tokens` (rows of width D), or the pad
 * embedding when that index is −1. Built once per image and experiment, so no per-sequence
 * objects are allocated on the hot path.
 */
export interface SequenceTable {
  tokens: Float32Array;
  index: Int32Array;
  stride: number;
  counts?: Int32Array;
}

export interface ForwardStats {
  calls: number;
  sequences: number;
  tokens: number;
  ms: number;
}

/**
 * Runs batches of [prefix, visual…, suffix] sequences and returns each one's first-token logits.
 * Sequences of different lengths are left-padded (attention_mask 0, position 0) so that the
 * last position is the answer's first token for every row.
 */
export class BatchedForward {
  private embeds = new Float32Array(0);
  private mask = new BigInt64Array(0);
  private positions = new BigInt64Array(0);
  private readonly emptyPast = new Map<number, ort.Tensor[]>();
  readonly stats: ForwardStats = { calls: 0, sequences: 0, tokens: 0, ms: 0 };
  readonly dim: number;

  constructor(
    private readonly decoder: ort.InferenceSession,
    private readonly contract: DecoderContract,
    private readonly layout: PromptLayout,
  ) {
    this.dim = contract.hiddenSize;
    if (layout.padEmbed.length !== this.dim) {
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `embed_tokens is ${layout.padEmbed.length}-wide, the decoder takes ${this.dim}`);
    }
  }

  /** Tokens of a sequence with `visual` visual tokens. */
  length(visual: number): number {
    return this.layout.prefixIds.length + visual + this.layout.suffixIds.length;
  }

  private pastFor(batch: number): ort.Tensor[] {
    let p = this.emptyPast.get(batch);
    if (!p) {
      const { kvHeads, headDim, kvDtype } = this.contract;
      p = this.contract.pastNames.map((): ort.Tensor =>
        kvDtype === 'float16'
          ? new ort.Tensor('float16', new Uint16Array(0), [batch, kvHeads, 0, headDim])
          : new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]),
      );
      this.emptyPast.set(batch, p);
    }
    return p;
  }

  /**
   * First-token logits of sequences first … first+batch−1 of `table`, [batch × V] (a fresh
   * array), in one decoder call: callers chunk by their batch budget.
   */
  async run(table: SequenceTable, first: number, batch: number, signal?: AbortSignal): Promise<{ logits: Float32Array; vocab: number }> {
    throwIfAborted(signal);
    const t0 = performance.now();
    const b = batch;
    const d = this.dim;
    const { prefixIds, suffixIds, prefixEmbeds, suffixEmbeds, scheme, padEmbed } = this.layout;
    const { tokens, index, stride, counts } = table;
    const countOf = (q: number): number => (counts ? counts[q] : stride);
    let s = 0;
    for (let r = 0; r < b; r++) s = Math.max(s, this.length(countOf(first + r)));
    const need = b * s;
    if (this.embeds.length < need * d) this.embeds = new Float32Array(need * d);
    if (this.mask.length < need) {
      this.mask = new BigInt64Array(need);
      this.positions = new BigInt64Array(need);
    }
    const embeds = this.embeds.subarray(0, need * d);
    const mask = this.mask.subarray(0, need);
    const positions = this.positions.subarray(0, need);
    const shared = scheme === 'frame-shared';
    for (let r = 0; r < b; r++) {
      const q = first + r;
      const count = countOf(q);
      const len = this.length(count);
      const padN = s - len;
      let t = r * s;
      if (padN > 0) {
        embeds.fill(0, t * d, (t + padN) * d);
        mask.fill(0n, t, t + padN);
        positions.fill(0n, t, t + padN);
        t += padN;
      }
      embeds.set(prefixEmbeds, t * d);
      let pos = 0;
      for (let i = 0; i < prefixIds.length; i++) {
        mask[t] = 1n;
        positions[t++] = BigInt(pos++);
      }
      for (let v = 0; v < count; v++) {
        const src = index[q * stride + v];
        if (src < 0) embeds.set(padEmbed, t * d);
        else {
          // A plain copy: subarray() would allocate a view per token.
          const a = src * d;
          const o = t * d;
          for (let k = 0; k < d; k++) embeds[o + k] = tokens[a + k];
        }
        mask[t] = 1n;
        positions[t++] = BigInt(shared ? pos : pos + v);
      }
      if (count > 0) pos += shared ? 1 : count;
      embeds.set(suffixEmbeds, t * d);
      for (let i = 0; i < suffixIds.length; i++) {
        mask[t] = 1n;
        positions[t++] = BigInt(pos++);
      }
    }
    const c = this.contract;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [b, s, d]),
      attention_mask: new ort.Tensor('int64', mask, [b, s]),
    };
    if (c.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [b, s]);
    if (c.hasNumLogitsToKeep) feeds.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(1n), []);
    if (c.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(0), [1]);
    const past = this.pastFor(b);
    for (let i = 0; i < c.pastNames.length; i++) feeds[c.pastNames[i]] = past[i];
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.decoder.run(feeds, ['logits']);
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', `decoder failed: ${(e as Error).message}`, { cause: e, details: { batch: b, tokens: s } });
    }
    const logits = out.logits as ort.Tensor;
    const data = logits.data as Float32Array;
    const v = logits.dims[logits.dims.length - 1];
    const rows = logits.dims.length === 3 ? logits.dims[1] : 1;
    const result = new Float32Array(b * v);
    for (let r = 0; r < b; r++) {
      const off = (r * rows + rows - 1) * v;
      result.set(data.subarray(off, off + v), r * v);
    }
    logits.dispose();
    this.stats.calls++;
    this.stats.sequences += b;
    this.stats.tokens += b * s;
    this.stats.ms += performance.now() - t0;
    return { logits: result, vocab: v };
  }
}
