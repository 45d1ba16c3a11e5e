// A tiny language-model folder built in memory for tests that need a model with properties the
// default model lacks (sequential positions, a float16 KV cache, no num_logits_to_keep): one
// attention layer with learned absolute position embeddings, so logits depend on every input,
// position and past entry. Written with the shared ONNX writer.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildModel, type AttrValue, type Node } from '../shared/index.js';

// ONNX element types, as Cast's `to` attribute names them.
const FLOAT = 1;
const BOOL = 9;
const FLOAT16 = 10;

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

  const embed = buildModel({
    nodes: [{ op: 'Gather', inputs: ['E', 'input_ids'], outputs: ['inputs_embeds'], attrs: { axis: 0 } }],
    inputs: [{ name: 'input_ids', type: 'int64', shape: ['batch', 'seq'] }],
    outputs: [{ name: 'inputs_embeds', type: 'float32', shape: ['batch', 'seq', D] }],
    initializers: [{ name: 'E', dims: [V, D], data: weights(r, V * D, 1) }],
  });
  await writeFile(join(dir, 'onnx', 'embed_tokens.onnx'), embed);

  const kvType = kv === 'float16' ? 'float16' : 'float32';
  const nodes: Node[] = [];
  const n = (op: string, inputs: string[], outputs: string[], attrs?: Record<string, AttrValue>): void => void nodes.push({ op, inputs, outputs, attrs });
  n('Gather', ['PE', 'position_ids'], ['pe'], { axis: 0 });
  n('Add', ['inputs_embeds', 'pe'], ['x']);
  for (const w of ['q', 'k', 'v']) {
    n('MatMul', ['x', `W${w}`], [`${w}0`]);
    n('Reshape', [`${w}0`, 'shape4'], [`${w}4`]);
    n('Transpose', [`${w}4`], [`${w}T`], { perm: [0, 2, 1, 3] });
  }
  if (kv === 'float16') {
    n('Cast', ['past_key_values.0.key'], ['pk32'], { to: FLOAT });
    n('Cast', ['past_key_values.0.value'], ['pv32'], { to: FLOAT });
    n('Concat', ['pk32', 'kT'], ['K'], { axis: 2 });
    n('Concat', ['pv32', 'vT'], ['Vv'], { axis: 2 });
    n('Cast', ['K'], ['present.0.key'], { to: FLOAT16 });
    n('Cast', ['Vv'], ['present.0.value'], { to: FLOAT16 });
    // Attend over the rounded cache, exactly as a later step will see it.
    n('Cast', ['present.0.key'], ['Kr'], { to: FLOAT });
    n('Cast', ['present.0.value'], ['Vr'], { to: FLOAT });
  } else {
    n('Concat', ['past_key_values.0.key', 'kT'], ['present.0.key'], { axis: 2 });
    n('Concat', ['past_key_values.0.value', 'vT'], ['present.0.value'], { axis: 2 });
    n('Identity', ['present.0.key'], ['Kr']);
    n('Identity', ['present.0.value'], ['Vr']);
  }
  n('Transpose', ['Kr'], ['KT'], { perm: [0, 1, 3, 2] });
  n('MatMul', ['qT', 'KT'], ['sc']);
  n('Mul', ['sc', 'scale'], ['sc2']);
  n('Shape', ['attention_mask'], ['shT']);
  n('Gather', ['shT', 'one'], ['T'], { axis: 0 });
  n('Shape', ['position_ids'], ['shS']);
  n('Gather', ['shS', 'one'], ['S'], { axis: 0 });
  n('Sub', ['T', 'S'], ['P']);
  n('Range', ['zero', 'T', 'one'], ['rT']);
  n('Range', ['zero', 'S', 'one'], ['rS0']);
  n('Add', ['rS0', 'P'], ['rS']);
  n('Unsqueeze', ['rS', 'axis1'], ['rS2']);
  n('LessOrEqual', ['rT', 'rS2'], ['causal']);
  n('Cast', ['attention_mask'], ['am'], { to: BOOL });
  n('And', ['causal', 'am'], ['m']);
  n('Where', ['m', 'sc2', 'neg'], ['sc3']);
  n('Softmax', ['sc3'], ['p'], { axis: -1 });
  n('MatMul', ['p', 'Vr'], ['o']);
  n('Transpose', ['o'], ['oT'], { perm: [0, 2, 1, 3] });
  n('Reshape', ['oT', 'shape3'], ['o3']);
  n('MatMul', ['o3', 'Wo'], ['a']);
  n('Add', ['x', 'a'], ['h']);
  n('MatMul', ['h', 'Wlm'], ['logits']);
  // Drawn in this order from the one seeded stream: the weights depend on it.
  const PE = weights(r, maxPos * D, 1);
  const proj = ['Wq', 'Wk', 'Wv', 'Wo'].map((name) => ({ name, dims: [D, D], data: weights(r, D * D, 1 / Math.sqrt(D)) }));
  const Wlm = weights(r, D * V, 2 / Math.sqrt(D));
  const int64 = (name: string, dims: number[], values: number[]) => ({ name, dims, data: BigInt64Array.from(values, (v) => BigInt(v)) });
  const decoder = buildModel({
    nodes,
    initializers: [
      { name: 'PE', dims: [maxPos, D], data: PE },
      ...proj,
      { name: 'Wlm', dims: [D, V], data: Wlm },
      { name: 'scale', dims: [], data: Float32Array.of(1 / Math.sqrt(hd)) },
      { name: 'neg', dims: [], data: Float32Array.of(-1e9) },
      int64('shape4', [4], [1, -1, H, hd]),
      int64('shape3', [3], [1, -1, D]),
      int64('one', [], [1]),
      int64('zero', [], [0]),
      int64('axis1', [1], [1]),
    ],
    inputs: [
      { name: 'inputs_embeds', type: 'float32', shape: ['batch', 'seq', D] },
      { name: 'attention_mask', type: 'int64', shape: ['batch', 'total'] },
      { name: 'position_ids', type: 'int64', shape: ['batch', 'seq'] },
      { name: 'past_key_values.0.key', type: kvType, shape: ['batch', H, 'past', hd] },
      { name: 'past_key_values.0.value', type: kvType, shape: ['batch', H, 'past', hd] },
    ],
    outputs: [
      { name: 'logits', type: 'float32', shape: ['batch', 'seq', V] },
      { name: 'present.0.key', type: kvType, shape: ['batch', H, 'total', hd] },
      { name: 'present.0.value', type: kvType, shape: ['batch', H, 'total', hd] },
    ],
  });
  await writeFile(join(dir, 'onnx', 'decoder_model_merged.onnx'), decoder);

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
