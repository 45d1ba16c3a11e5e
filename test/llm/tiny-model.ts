// A tiny language-model folder built in memory for tests that need a model with properties the
// default model lacks (sequential positions, a float16 KV cache, no num_logits_to_keep): one
// attention layer with learned absolute position embeddings, so logits depend on every input,
// position and past entry. Only the protobuf fields ONNX needs are written.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

class Pb {
  private parts: Uint8Array[] = [];
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      out.push(b);
    } while (x !== 0n);
    this.parts.push(Uint8Array.from(out));
  }
  int(field: number, v: number | bigint): this {
    this.varint(field << 3);
    this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.varint((field << 3) | 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.varint((field << 3) | 2);
    this.varint(b.byteLength);
    this.parts.push(b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, w: Pb): this {
    return this.bytes(field, w.finish());
  }
  finish(): Uint8Array {
    const n = this.parts.reduce((s, p) => s + p.byteLength, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
}

const FLOAT = 1;
const INT64 = 7;
const BOOL = 9;
const FLOAT16 = 10;

function valueInfo(name: string, elem: number, dims: Array<number | string>): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, elem).msg(2, shape)));
}

type Attr = { name: string; i?: number; f?: number; ints?: number[] };
function node(op: string, inputs: string[], outputs: string[], attrs: Attr[] = []): Pb {
  const w = new Pb();
  for (const i of inputs) w.str(1, i);
  for (const o of outputs) w.str(2, o);
  w.str(3, `${op}_${outputs[0]}`).str(4, op);
  for (const a of attrs) {
    const aw = new Pb().str(1, a.name);
    if (a.i !== undefined) aw.int(3, a.i).int(20, 2);
    else if (a.f !== undefined) aw.float(2, a.f).int(20, 1);
    else if (a.ints) {
      for (const v of a.ints) aw.int(8, BigInt.asUintN(64, BigInt(v)));
      aw.int(20, 7);
    }
    w.msg(5, aw);
  }
  return w;
}

function floatInit(name: string, dims: number[], data: Float32Array): Pb {
  const w = new Pb();
  for (const d of dims) w.int(1, d);
  return w.int(2, FLOAT).str(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function int64Init(name: string, dims: number[], values: number[]): Pb {
  const w = new Pb();
  for (const d of dims) w.int(1, d);
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return w.int(2, INT64).str(8, name).bytes(9, new Uint8Array(data.buffer));
}

function model(graph: Pb): Uint8Array {
  return new Pb().int(1, 8).str(2, 'winnow-test').msg(7, graph).msg(8, new Pb().str(1, '').int(2, 17)).finish();
}

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

function weights(r: () => number, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => r() * 2 * scale);
}

export interface TinyModelOptions {
  /** Declares winnow.visual_position_scheme: 'frame-shared' when true. Default false. */
  frameShared?: boolean;
  /** KV cache dtype of the graph. Default float32. */
  kvDtype?: 'float32' | 'float16';
  hidden?: number;
  heads?: number;
  maxPositions?: number;
  seed?: number;
}

export const TINY_WORDS = [
  't', '=', 's', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'what', 'color', 'is', 'the', 'circle', 'square',
  'triangle', '?', 'red', 'green', 'blue', 'yes', 'no', 'user', ':', 'answer', 'how', 'many', 'are', 'there', 'é', '漢',
];

/** Writes a model folder (config, tokenizer, embed_tokens, decoder_model_merged) into `dir`. */
export async function writeTinyModel(dir: string, options: TinyModelOptions = {}): Promise<void> {
  const D = options.hidden ?? 32;
  const H = options.heads ?? 2;
  const hd = D / H;
  const maxPos = options.maxPositions ?? 1024;
  const kv = options.kvDtype ?? 'float32';
  const specials = ['<unk>', '<s>', '</s>', '<image>'];
  const vocabList = [...specials, ...TINY_WORDS];
  const V = vocabList.length;
  const r = rand(options.seed ?? 1);
  await mkdir(join(dir, 'onnx'), { recursive: true });

  const E = weights(r, V * D, 1);
  const embed = new Pb()
    .msg(1, node('Gather', ['E', 'input_ids'], ['inputs_embeds'], [{ name: 'axis', i: 0 }]))
    .str(2, 'embed')
    .msg(5, floatInit('E', [V, D], E))
    .msg(11, valueInfo('input_ids', INT64, ['batch', 'seq']))
    .msg(12, valueInfo('inputs_embeds', FLOAT, ['batch', 'seq', D]));
  await writeFile(join(dir, 'onnx', 'embed_tokens.onnx'), model(embed));

  const kvElem = kv === 'float16' ? FLOAT16 : FLOAT;
  const g = new Pb();
  const n = (op: string, i: string[], o: string[], a: Attr[] = []): void => void g.msg(1, node(op, i, o, a));
  n('Gather', ['PE', 'position_ids'], ['pe'], [{ name: 'axis', i: 0 }]);
  n('Add', ['inputs_embeds', 'pe'], ['x']);
  for (const w of ['q', 'k', 'v']) {
    n('MatMul', ['x', `W${w}`], [`${w}0`]);
    n('Reshape', [`${w}0`, 'shape4'], [`${w}4`]);
    n('Transpose', [`${w}4`], [`${w}T`], [{ name: 'perm', ints: [0, 2, 1, 3] }]);
  }
  if (kv === 'float16') {
    n('Cast', ['past_key_values.0.key'], ['pk32'], [{ name: 'to', i: FLOAT }]);
    n('Cast', ['past_key_values.0.value'], ['pv32'], [{ name: 'to', i: FLOAT }]);
    n('Concat', ['pk32', 'kT'], ['K'], [{ name: 'axis', i: 2 }]);
    n('Concat', ['pv32', 'vT'], ['Vv'], [{ name: 'axis', i: 2 }]);
    n('Cast', ['K'], ['present.0.key'], [{ name: 'to', i: FLOAT16 }]);
    n('Cast', ['Vv'], ['present.0.value'], [{ name: 'to', i: FLOAT16 }]);
    // Attend over the rounded cache, exactly as a later step will see it.
    n('Cast', ['present.0.key'], ['Kr'], [{ name: 'to', i: FLOAT }]);
    n('Cast', ['present.0.value'], ['Vr'], [{ name: 'to', i: FLOAT }]);
  } else {
    n('Concat', ['past_key_values.0.key', 'kT'], ['present.0.key'], [{ name: 'axis', i: 2 }]);
    n('Concat', ['past_key_values.0.value', 'vT'], ['present.0.value'], [{ name: 'axis', i: 2 }]);
    n('Identity', ['present.0.key'], ['Kr']);
    n('Identity', ['present.0.value'], ['Vr']);
  }
  n('Transpose', ['Kr'], ['KT'], [{ name: 'perm', ints: [0, 1, 3, 2] }]);
  n('MatMul', ['qT', 'KT'], ['sc']);
  n('Mul', ['sc', 'scale'], ['sc2']);
  n('Shape', ['attention_mask'], ['shT']);
  n('Gather', ['shT', 'one'], ['T'], [{ name: 'axis', i: 0 }]);
  n('Shape', ['position_ids'], ['shS']);
  n('Gather', ['shS', 'one'], ['S'], [{ name: 'axis', i: 0 }]);
  n('Sub', ['T', 'S'], ['P']);
  n('Range', ['zero', 'T', 'one'], ['rT']);
  n('Range', ['zero', 'S', 'one'], ['rS0']);
  n('Add', ['rS0', 'P'], ['rS']);
  n('Unsqueeze', ['rS', 'axis1'], ['rS2']);
  n('LessOrEqual', ['rT', 'rS2'], ['causal']);
  n('Cast', ['attention_mask'], ['am'], [{ name: 'to', i: BOOL }]);
  n('And', ['causal', 'am'], ['m']);
  n('Where', ['m', 'sc2', 'neg'], ['sc3']);
  n('Softmax', ['sc3'], ['p'], [{ name: 'axis', i: -1 }]);
  n('MatMul', ['p', 'Vr'], ['o']);
  n('Transpose', ['o'], ['oT'], [{ name: 'perm', ints: [0, 2, 1, 3] }]);
  n('Reshape', ['oT', 'shape3'], ['o3']);
  n('MatMul', ['o3', 'Wo'], ['a']);
  n('Add', ['x', 'a'], ['h']);
  n('MatMul', ['h', 'Wlm'], ['logits']);
  g.str(2, 'decoder');
  g.msg(5, floatInit('PE', [maxPos, D], weights(r, maxPos * D, 1)));
  for (const w of ['Wq', 'Wk', 'Wv', 'Wo']) g.msg(5, floatInit(w, [D, D], weights(r, D * D, 1 / Math.sqrt(D))));
  g.msg(5, floatInit('Wlm', [D, V], weights(r, D * V, 2 / Math.sqrt(D))));
  g.msg(5, floatInit('scale', [], Float32Array.of(1 / Math.sqrt(hd))));
  g.msg(5, floatInit('neg', [], Float32Array.of(-1e9)));
  g.msg(5, int64Init('shape4', [4], [1, -1, H, hd]));
  g.msg(5, int64Init('shape3', [3], [1, -1, D]));
  g.msg(5, int64Init('one', [], [1]));
  g.msg(5, int64Init('zero', [], [0]));
  g.msg(5, int64Init('axis1', [1], [1]));
  g.msg(11, valueInfo('inputs_embeds', FLOAT, ['batch', 'seq', D]));
  g.msg(11, valueInfo('attention_mask', INT64, ['batch', 'total']));
  g.msg(11, valueInfo('position_ids', INT64, ['batch', 'seq']));
  g.msg(11, valueInfo('past_key_values.0.key', kvElem, ['batch', H, 'past', hd]));
  g.msg(11, valueInfo('past_key_values.0.value', kvElem, ['batch', H, 'past', hd]));
  g.msg(12, valueInfo('logits', FLOAT, ['batch', 'seq', V]));
  g.msg(12, valueInfo('present.0.key', kvElem, ['batch', H, 'total', hd]));
  g.msg(12, valueInfo('present.0.value', kvElem, ['batch', H, 'total', hd]));
  await writeFile(join(dir, 'onnx', 'decoder_model_merged.onnx'), model(g));

  const vocab = Object.fromEntries(vocabList.map((w, i) => [w, i]));
  await writeFile(
    join(dir, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      added_tokens: specials.map((c, id) => ({ id, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: true }] },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
    }),
  );
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      chat_template: "{{ bos_token }}{% for m in messages %}user : {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} answer :{% endif %}",
    }),
  );
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'winnow-test',
      image_token_index: 3,
      bos_token_id: 1,
      eos_token_id: 2,
      hidden_size: D,
      num_attention_heads: H,
      num_key_value_heads: H,
      num_hidden_layers: 1,
      vocab_size: V,
      max_position_embeddings: maxPos,
      ...(options.frameShared ? { winnow: { visual_position_scheme: 'frame-shared', frame_marker: 't={s}s' } } : {}),
    }),
  );
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: 16 }));
}
