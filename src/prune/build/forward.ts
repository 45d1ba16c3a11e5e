// Batched first-token runs of the decoder for the codebook experiments: many short sequences
// (one per token, window or leave-one-out variant) per decoder call, each from an empty past.
// src/llm's DecoderRuntime is batch-1 by design (it serves one video context), so this sits on
// the same sessions with its own preallocated [B, S, D] scratch.
import * as ort from 'onnxruntime-node';
import { WinnowError, throwIfAborted } from '../../errors.js';
import { VideoPromptLayout, type DecoderContract, type LanguageModelConfig, type TextTokenizer } from '../../llm/index.js';

/**
 * One image as the LM runtime lays out a one-frame video at t = 0 (src/llm/layout.ts), embedded
 * once: `prefixIds` (bos, frame marker), then the visual tokens, then `suffixIds` (the
 * chat-templated prompt with the generation prompt). Positions follow the runtime's rule for the
 * model's scheme.
 */
export interface PromptLayout {
  /** The LM runtime's layout these ids come from; its position rule places the visual tokens. */
  lm: VideoPromptLayout;
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
  const lm = new VideoPromptLayout(tokenizer, config);
  const marker = options.frameMarker ?? lm.frameMarker(0);
  const prefixIds = [...lm.prefixIds, ...lm.frame(0, 0, marker).markerIds];
  const suffixIds = lm.questionIds(options.prompt);
  if (suffixIds.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'the prompt tokenizes to nothing');
  const [prefixEmbeds, suffixEmbeds, padEmbed] = await Promise.all([embedIds(embed, prefixIds), embedIds(embed, suffixIds), embedIds(embed, [pad])]);
  return { lm, prefixIds, suffixIds, scheme: lm.scheme, prefixEmbeds, suffixEmbeds, padEmbed, padTokenId: pad, prompt: options.prompt, frameMarker: marker };
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

/** The KV cache of one full sequence (batch 1), per past input: [kvHeads, length, headDim]. */
export interface PrefixCache {
  length: number;
  layers: Float32Array[];
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

  /** Tokens before the visual ones. */
  get prefixLength(): number {
    return this.layout.prefixIds.length;
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
    const r = await this.forward(table, (k) => first + k, batch, 0, null, false, signal);
    return { logits: r.logits, vocab: r.vocab };
  }

  /**
   * Runs one sequence and keeps its KV cache, so that sequences sharing its beginning can start
   * from it (`runFrom`). Only float32 caches are kept (else null: callers fall back to `run`).
   */
  async runKeepingCache(table: SequenceTable, q: number, signal?: AbortSignal): Promise<{ logits: Float32Array; vocab: number; cache: PrefixCache | null }> {
    const keep = this.contract.kvDtype === 'float32';
    const r = await this.forward(table, () => q, 1, 0, null, keep, signal);
    return { logits: r.logits, vocab: r.vocab, cache: r.cache };
  }

  /**
   * First-token logits of the sequences `seqs` of `table`, which must all have the cached
   * sequence's length and agree with it on their first `start` tokens: only tokens from `start`
   * on are fed, on top of the cache's first `start` tokens (replicated per row).
   */
  async runFrom(table: SequenceTable, seqs: Int32Array, cache: PrefixCache, start: number, signal?: AbortSignal): Promise<{ logits: Float32Array; vocab: number }> {
    if (start < 0 || start >= cache.length) throw new WinnowError('WINNOW_ERR_INTERNAL', `start ${start} outside the cached ${cache.length} tokens`);
    const r = await this.forward(table, (k) => seqs[k], seqs.length, start, cache, false, signal);
    return { logits: r.logits, vocab: r.vocab };
  }

  private async forward(
    table: SequenceTable,
    seqAt: (k: number) => number,
    b: number,
    start: number,
    cache: PrefixCache | null,
    keepCache: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ logits: Float32Array; vocab: number; cache: PrefixCache | null }> {
    throwIfAborted(signal);
    const t0 = performance.now();
    const d = this.dim;
    const { lm, prefixIds, suffixIds, prefixEmbeds, suffixEmbeds, padEmbed } = this.layout;
    const { tokens, index, stride, counts } = table;
    const countOf = (q: number): number => (counts ? counts[q] : stride);
    let full = 0;
    for (let r = 0; r < b; r++) full = Math.max(full, this.length(countOf(seqAt(r))));
    if (cache && full !== cache.length) throw new WinnowError('WINNOW_ERR_INTERNAL', 'sequences fed from a cache must have its length');
    const s = full - start; // tokens fed per row
    const need = b * s;
    if (this.embeds.length < need * d) this.embeds = new Float32Array(need * d);
    if (this.mask.length < b * full) this.mask = new BigInt64Array(b * full);
    if (this.positions.length < need) this.positions = new BigInt64Array(need);
    const embeds = this.embeds.subarray(0, need * d);
    const mask = this.mask.subarray(0, b * full);
    const positions = this.positions.subarray(0, need);
    for (let r = 0; r < b; r++) {
      const q = seqAt(r);
      const count = countOf(q);
      const len = this.length(count);
      // Left padding up to the longest row (never with a cache: all rows have its length).
      const padN = full - len;
      mask.fill(0n, r * full, r * full + padN);
      mask.fill(1n, r * full + padN, (r + 1) * full);
      let t = padN; // logical token index within the row's `full` slots
      const base = r * s - start; // output slot of logical token t is base + t (fed iff t ≥ start)
      if (padN > 0) {
        embeds.fill(0, (r * s) * d, (r * s + padN) * d);
        positions.fill(0n, r * s, r * s + padN);
      }
      let pos = 0;
      for (let i = 0; i < prefixIds.length; i++, t++, pos++) {
        if (t < start) continue;
        const o = (base + t) * d;
        for (let k = 0; k < d; k++) embeds[o + k] = prefixEmbeds[i * d + k];
        positions[base + t] = BigInt(pos);
      }
      for (let v = 0; v < count; v++, t++) {
        if (t < start) continue;
        const src = index[q * stride + v];
        const o = (base + t) * d;
        // Plain copies: subarray() would allocate a view per token.
        if (src < 0) for (let k = 0; k < d; k++) embeds[o + k] = padEmbed[k];
        else {
          const a = src * d;
          for (let k = 0; k < d; k++) embeds[o + k] = tokens[a + k];
        }
        positions[base + t] = BigInt(lm.visualPosition(pos, v));
      }
      pos += lm.visualPositionCount(count);
      for (let i = 0; i < suffixIds.length; i++, t++, pos++) {
        if (t < start) continue;
        const o = (base + t) * d;
        for (let k = 0; k < d; k++) embeds[o + k] = suffixEmbeds[i * d + k];
        positions[base + t] = BigInt(pos);
      }
    }
    const c = this.contract;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [b, s, d]),
      attention_mask: new ort.Tensor('int64', mask, [b, full]),
    };
    if (c.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [b, s]);
    if (c.hasNumLogitsToKeep) feeds.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(1n), []);
    if (c.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(cache ? 1 : 0), [1]);
    if (cache) {
      const per = c.kvHeads * start * c.headDim;
      for (let i = 0; i < c.pastNames.length; i++) {
        const src = cache.layers[i];
        const rep = new Float32Array(b * per);
        // Rows of the cache are [kvHeads, length, headDim]: take each head's first `start` tokens.
        for (let h = 0; h < c.kvHeads; h++) {
          const from = src.subarray(h * cache.length * c.headDim, (h * cache.length + start) * c.headDim);
          for (let r = 0; r < b; r++) rep.set(from, r * per + h * start * c.headDim);
        }
        feeds[c.pastNames[i]] = new ort.Tensor('float32', rep, [b, c.kvHeads, start, c.headDim]);
      }
    } else {
      const past = this.pastFor(b);
      for (let i = 0; i < c.pastNames.length; i++) feeds[c.pastNames[i]] = past[i];
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.decoder.run(feeds, keepCache ? ['logits', ...c.presentNames] : ['logits']);
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
    let kept: PrefixCache | null = null;
    if (keepCache) {
      kept = { length: full, layers: c.presentNames.map((n) => (out[n] as ort.Tensor).data as Float32Array) };
    }
    this.stats.calls++;
    this.stats.sequences += b;
    this.stats.tokens += b * s;
    this.stats.ms += performance.now() - t0;
    return { logits: result, vocab: v, cache: kept };
  }
}
