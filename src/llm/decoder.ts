import * as ort from 'onnxruntime-node';
import { WinnowError } from '../errors.js';
import type { LanguageModelConfig } from './config.js';

export type KvDtype = 'float32' | 'float16';

/** What the decoder graph expects, read from the sessions' metadata (config.json only fills gaps). */
export interface DecoderContract {
  hiddenSize: number;
  vocabSize: number | null;
  numLayers: number;
  kvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  hasPositionIds: boolean;
  hasNumLogitsToKeep: boolean;
  hasUseCacheBranch: boolean;
  /** `past_key_values.{i}.key`, `past_key_values.{i}.value`, … in layer order. */
  pastNames: string[];
  /** The matching `present.{i}.key|value` outputs, same order as pastNames. */
  presentNames: string[];
}

type KvArray = Float32Array | Uint16Array;

/**
 * One set of KV buffers (every layer's key and value) with room for `capacityTokens`. A state of
 * T tokens occupies the first kvHeads·T·headDim elements of each buffer, laid out exactly as the
 * [1, kvHeads, T, headDim] tensor onnxruntime reads and writes, so decoder runs write their
 * present outputs straight into a set and the next run reads them back without a copy in JS.
 */
export class KvBufferSet {
  buffers: KvArray[];
  capacityTokens = 0;
  constructor(
    private readonly contract: DecoderContract,
    readonly id: number,
  ) {
    this.buffers = contract.pastNames.map(() => (contract.kvDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0)));
  }

  /** Makes room for `tokens` (geometric growth, so an endless stream reallocates rarely). Drops contents. */
  reserve(tokens: number, maxTokens: number): void {
    if (tokens <= this.capacityTokens) return;
    const cap = Math.min(Math.max(tokens, Math.ceil(this.capacityTokens * 1.5), 256), Math.max(tokens, maxTokens));
    const per = this.contract.kvHeads * this.contract.headDim;
    this.buffers = this.buffers.map(() => (this.contract.kvDtype === 'float16' ? new Uint16Array(cap * per) : new Float32Array(cap * per)));
    this.capacityTokens = cap;
  }

  get reservedBytes(): number {
    return this.buffers.reduce((s, b) => s + b.byteLength, 0);
  }

  release(): void {
    this.buffers = this.buffers.map((b) => b.subarray(0, 0));
    this.capacityTokens = 0;
  }
}

/**
 * One KV cache state: `length` tokens held in a buffer set (null = the empty past). ORT never
 * mutates inputs, so a state can be fed again and again: forking = reusing it, rolling back =
 * writing later states into other sets and forgetting them.
 */
export class KvCache {
  constructor(
    readonly set: KvBufferSet | null,
    /** Tokens in the cache (the past length the next run sees). */
    readonly length: number,
    private readonly bytesPerToken: number,
  ) {}

  get bytes(): number {
    return this.length * this.bytesPerToken;
  }
}

function meta(session: ort.InferenceSession, names: readonly string[], kind: 'input' | 'output'): Map<string, ort.InferenceSession.ValueMetadata> {
  const list = (kind === 'input' ? session.inputMetadata : session.outputMetadata) ?? [];
  const m = new Map<string, ort.InferenceSession.ValueMetadata>();
  for (const v of list) m.set(v.name, v);
  void names;
  return m;
}

function tensorMeta(v: ort.InferenceSession.ValueMetadata | undefined): { type: string; shape: ReadonlyArray<number | string> } | null {
  if (!v || !v.isTensor) return null;
  return { type: v.type, shape: v.shape };
}

/** Validates the embed/decoder pair against the contract of issue 5 and reads its dimensions. */
export function readDecoderContract(
  embed: ort.InferenceSession,
  decoder: ort.InferenceSession,
  config: LanguageModelConfig,
): DecoderContract {
  const fail = (msg: string): never => {
    throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', msg, {
      details: { embedInputs: embed.inputNames, decoderInputs: decoder.inputNames, decoderOutputs: decoder.outputNames },
    });
  };
  if (!embed.inputNames.includes('input_ids')) fail('embed_tokens has no input `input_ids`');
  if (!embed.outputNames.includes('inputs_embeds')) fail('embed_tokens has no output `inputs_embeds`');
  for (const n of ['inputs_embeds', 'attention_mask']) if (!decoder.inputNames.includes(n)) fail(`decoder_model_merged has no input \`${n}\``);
  if (!decoder.outputNames.includes('logits')) fail('decoder_model_merged has no output `logits`');

  const pastNames: string[] = [];
  const presentNames: string[] = [];
  for (let i = 0; ; i++) {
    const k = `past_key_values.${i}.key`;
    const v = `past_key_values.${i}.value`;
    if (!decoder.inputNames.includes(k)) break;
    if (!decoder.inputNames.includes(v)) fail(`decoder_model_merged has ${k} but no ${v}`);
    const pk = `present.${i}.key`;
    const pv = `present.${i}.value`;
    if (!decoder.outputNames.includes(pk) || !decoder.outputNames.includes(pv)) fail(`decoder_model_merged has no outputs ${pk} / ${pv}`);
    pastNames.push(k, v);
    presentNames.push(pk, pv);
  }
  if (pastNames.length === 0) fail('decoder_model_merged has no `past_key_values.{i}.key|value` inputs');
  const numLayers = pastNames.length / 2;
  if (config.numLayers !== null && config.numLayers !== numLayers) {
    fail(`config.json says ${config.numLayers} layers, the decoder graph has ${numLayers}`);
  }

  const inMeta = meta(decoder, decoder.inputNames, 'input');
  const past0 = tensorMeta(inMeta.get(pastNames[0]));
  let kvDtype: KvDtype = 'float32';
  if (past0) {
    if (past0.type === 'float16') kvDtype = 'float16';
    else if (past0.type !== 'float32') fail(`past_key_values dtype ${past0.type} is not supported (float32 or float16)`);
  }
  const dimOf = (shape: ReadonlyArray<number | string> | undefined, i: number): number | null =>
    shape && typeof shape[i] === 'number' && (shape[i] as number) > 0 ? (shape[i] as number) : null;
  const kvHeads = dimOf(past0?.shape, 1) ?? config.numKeyValueHeads;
  const headDim = dimOf(past0?.shape, 3) ?? config.headDim;
  if (kvHeads === null || headDim === null) fail('cannot tell kv heads / head dim from the graph or config.json');
  const embedsMeta = tensorMeta(inMeta.get('inputs_embeds'));
  const hiddenSize = dimOf(embedsMeta?.shape, 2) ?? config.hiddenSize;
  if (hiddenSize === null) fail('cannot tell the hidden size from the graph or config.json');
  const logitsMeta = tensorMeta(meta(decoder, decoder.outputNames, 'output').get('logits'));
  const vocabSize = dimOf(logitsMeta?.shape, 2) ?? config.vocabSize;
  return {
    hiddenSize: hiddenSize as number,
    vocabSize,
    numLayers,
    kvHeads: kvHeads as number,
    headDim: headDim as number,
    kvDtype,
    hasPositionIds: decoder.inputNames.includes('position_ids'),
    hasNumLogitsToKeep: decoder.inputNames.includes('num_logits_to_keep'),
    hasUseCacheBranch: decoder.inputNames.includes('use_cache_branch'),
    pastNames,
    presentNames,
  };
}

export interface ForwardResult {
  /** Logits of the last position only (a view of a reused buffer: copy it to keep it). */
  lastLogits: Float32Array;
  /** All positions' logits [S × V] when requested with `allLogits`, else null. */
  allLogits: Float32Array | null;
  present: KvCache;
}

/**
 * Runs embed_tokens and decoder_model_merged. Holds the scratch of the hot path (attention mask
 * of ones, last-row logits, the empty past) so decoding steps do not allocate it.
 */
export class DecoderRuntime {
  private maskOnes: BigInt64Array = new BigInt64Array(0);
  private lastLogitsBuf: Float32Array = new Float32Array(0);
  private readonly logitsToKeep = new ort.Tensor('int64', BigInt64Array.of(1n), []);
  private readonly logitsToKeepAll = new ort.Tensor('int64', BigInt64Array.of(0n), []);
  private readonly cacheBranchTrue = new ort.Tensor('bool', Uint8Array.of(1), [1]);
  private readonly cacheBranchFalse = new ort.Tensor('bool', Uint8Array.of(0), [1]);
  private readonly emptyPast: ort.Tensor[];
  private readonly emptyCache: KvCache;
  private readonly logitsFetch: Record<string, ort.Tensor | null> = { logits: null };
  private nextSetId = 0;

  constructor(
    readonly embedSession: ort.InferenceSession,
    readonly decoderSession: ort.InferenceSession,
    readonly contract: DecoderContract,
  ) {
    const { kvHeads, headDim, kvDtype } = contract;
    this.emptyPast = contract.pastNames.map((): ort.Tensor =>
      kvDtype === 'float16'
        ? new ort.Tensor('float16', new Uint16Array(0), [1, kvHeads, 0, headDim])
        : new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]),
    );
    this.emptyCache = new KvCache(null, 0, this.kvBytesPerToken);
  }

  /** The 0-length past every sequence starts from. */
  empty(): KvCache {
    return this.emptyCache;
  }

  isEmpty(cache: KvCache): boolean {
    return cache.length === 0;
  }

  createBufferSet(): KvBufferSet {
    return new KvBufferSet(this.contract, this.nextSetId++);
  }

  /** Bytes the KV cache takes per token (all layers, keys + values). */
  get kvBytesPerToken(): number {
    const c = this.contract;
    return c.numLayers * 2 * c.kvHeads * c.headDim * (c.kvDtype === 'float16' ? 2 : 4);
  }

  /** ids → embeddings [S × D] (a fresh array the caller owns). */
  async embed(ids: BigInt64Array): Promise<Float32Array> {
    const input = new ort.Tensor('int64', ids, [1, ids.length]);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.embedSession.run({ input_ids: input });
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', `embed_tokens failed: ${(e as Error).message}`, { cause: e });
    }
    const t = out.inputs_embeds as ort.Tensor;
    for (const [k, v] of Object.entries(out)) if (k !== 'inputs_embeds') (v as ort.Tensor).dispose();
    if (t.type !== 'float32') {
      t.dispose();
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `embed_tokens returned ${t.type}, expected float32`);
    }
    return t.data as Float32Array;
  }

  private ensureMask(total: number): BigInt64Array {
    if (this.maskOnes.length < total) {
      this.maskOnes = new BigInt64Array(Math.max(total, this.maskOnes.length * 2, 1024)).fill(1n);
    }
    return this.maskOnes.subarray(0, total);
  }

  private view(set: KvBufferSet, i: number, tokens: number): ort.Tensor {
    const c = this.contract;
    const n = c.kvHeads * tokens * c.headDim;
    const dims = [1, c.kvHeads, tokens, c.headDim];
    const b = set.buffers[i];
    return b instanceof Uint16Array ? new ort.Tensor('float16', b.subarray(0, n), dims) : new ort.Tensor('float32', b.subarray(0, n), dims);
  }

  private feeds(embeds: Float32Array, positions: BigInt64Array, past: KvCache, allLogits: boolean): Record<string, ort.Tensor> {
    const c = this.contract;
    const s = positions.length;
    if (embeds.length !== s * c.hiddenSize) {
      throw new WinnowError('WINNOW_ERR_INTERNAL', `embeds hold ${embeds.length} values for ${s} tokens × ${c.hiddenSize}`);
    }
    const total = past.length + s;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [1, s, c.hiddenSize]),
      attention_mask: new ort.Tensor('int64', this.ensureMask(total), [1, total]),
    };
    if (c.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [1, s]);
    // 0 means "all positions" in the HF convention.
    if (c.hasNumLogitsToKeep) feeds.num_logits_to_keep = allLogits ? this.logitsToKeepAll : this.logitsToKeep;
    if (c.hasUseCacheBranch) feeds.use_cache_branch = past.length > 0 ? this.cacheBranchTrue : this.cacheBranchFalse;
    for (let i = 0; i < c.pastNames.length; i++) {
      feeds[c.pastNames[i]] = past.set === null ? this.emptyPast[i] : this.view(past.set, i, past.length);
    }
    return feeds;
  }

  private async run(
    feeds: Record<string, ort.Tensor>,
    fetches: Record<string, ort.Tensor | null>,
    past: KvCache,
    allLogits: boolean,
  ): Promise<{ lastLogits: Float32Array; allLogits: Float32Array | null }> {
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.decoderSession.run(feeds, fetches);
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_INFERENCE', `decoder failed: ${(e as Error).message}`, {
        cause: e,
        details: { pastLength: past.length, tokens: feeds.inputs_embeds.dims[1] },
      });
    }
    // onnxruntime-node returns every fetched output in a fresh ArrayBuffer, preallocated ones
    // included (it writes those too). Drop the copies of the presents at once.
    for (const [name, t] of Object.entries(result)) if (name !== 'logits') (t as ort.Tensor).dispose();
    const logits = result.logits as ort.Tensor;
    const data = logits.data as Float32Array;
    const v = logits.dims[logits.dims.length - 1];
    if (this.lastLogitsBuf.length !== v) this.lastLogitsBuf = new Float32Array(v);
    this.lastLogitsBuf.set(data.subarray(data.length - v));
    const keepAll = allLogits ? data : null;
    if (!allLogits) logits.dispose();
    return { lastLogits: this.lastLogitsBuf, allLogits: keepAll };
  }

  /**
   * One decoder run over S new tokens on top of `past`, writing the present state into `out`
   * (which must not be past's set). `maxTokens` caps the growth of `out`.
   */
  async forward(
    embeds: Float32Array,
    positions: BigInt64Array,
    past: KvCache,
    out: KvBufferSet,
    maxTokens: number,
    allLogits = false,
  ): Promise<ForwardResult> {
    const c = this.contract;
    if (past.set === out) throw new WinnowError('WINNOW_ERR_INTERNAL', 'a decoder run cannot write into the state it reads');
    const total = past.length + positions.length;
    const feeds = this.feeds(embeds, positions, past, allLogits);
    out.reserve(total, maxTokens);
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let i = 0; i < c.presentNames.length; i++) fetches[c.presentNames[i]] = this.view(out, i, total);
    const r = await this.run(feeds, fetches, past, allLogits);
    return { ...r, present: new KvCache(out, total, this.kvBytesPerToken) };
  }

  /**
   * The same run without fetching present.*: only the logits come back. The graph still
   * computes the presents, but onnxruntime-node no longer copies them out (a fresh, zeroed
   * ArrayBuffer the size of the whole cache per output), which on a long context is most of
   * the cost of a short run. For the first answer token, whose cache is not needed yet.
   */
  async logitsOnly(embeds: Float32Array, positions: BigInt64Array, past: KvCache, allLogits = false): Promise<Omit<ForwardResult, 'present'>> {
    return this.run(this.feeds(embeds, positions, past, allLogits), this.logitsFetch, past, allLogits);
  }

  async release(): Promise<void> {
    // Nothing native is held here: the sessions belong to the model, buffers to the contexts.
  }
}
