// Compares the decoder_model_merged of two model folders with onnxruntime-node: same inputs (random
// embeddings, frame-shared positions, a random past of several lengths), max |diff| of logits and
// present.*. A variant whose KV dtype is float16 is fed the same past rounded to float16.
//   node tools/default-model/analysis/compare_decoders.mjs REF_DIR NEW_DIR [--dtype fp16] [--tol 1e-4]
// Prints one line per case and exits 1 when a difference exceeds the tolerance.
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';

const [refDir, newDir] = process.argv.slice(2, 4);
const opt = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const suffix = opt('--dtype', 'fp32') === 'fp16' ? '_fp16' : '';
const tol = Number(opt('--tol', '1e-4'));
if (!refDir || !newDir) {
  console.error('usage: compare_decoders.mjs REF_DIR NEW_DIR [--dtype fp16] [--tol 1e-4]');
  process.exit(2);
}

// float32 -> float16 bits (round to nearest even) and back, for a float16 KV cache.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}
function fromHalf(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff - 0.5;
};

const open = (dir, s) => ort.InferenceSession.create(join(dir, 'onnx', `decoder_model_merged${s}.onnx`), { intraOpNumThreads: 1 });
const ref = await open(refDir, '');
const cand = await open(newDir, suffix);
const kvMeta = cand.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
const half = kvMeta?.type === 'float16';
const layers = ref.inputNames.filter((n) => n.startsWith('past_key_values.')).length / 2;
const [, kvHeads, , headDim] = ref.inputMetadata.find((m) => m.name === 'past_key_values.0.key').shape;
const D = ref.inputMetadata.find((m) => m.name === 'inputs_embeds').shape[2];

let worst = 0;
for (const [past, s] of [[0, 9], [1, 1], [37, 5], [300, 12], [2000, 7]]) {
  const emb = Float32Array.from({ length: s * D }, () => rand() * 2);
  // Frame-shared positions: runs of equal ids, like visual tokens of one frame.
  const pos = BigInt64Array.from({ length: s }, (_, i) => BigInt(past + Math.floor(i / 3)));
  const pasts = Array.from({ length: 2 * layers }, () => Float32Array.from({ length: kvHeads * past * headDim }, () => rand() * 3));
  const feeds = (h) => {
    const f = {
      inputs_embeds: new ort.Tensor('float32', emb, [1, s, D]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(past + s).fill(1n), [1, past + s]),
      position_ids: new ort.Tensor('int64', pos, [1, s]),
    };
    for (let l = 0; l < layers; l++) {
      for (const [j, kv] of [[0, 'key'], [1, 'value']]) {
        const p = pasts[2 * l + j];
        f[`past_key_values.${l}.${kv}`] = h
          ? new ort.Tensor('float16', Uint16Array.from(p, toHalf), [1, kvHeads, past, headDim])
          : new ort.Tensor('float32', half ? Float32Array.from(p, (x) => fromHalf(toHalf(x))) : p, [1, kvHeads, past, headDim]);
      }
    }
    return f;
  };
  const a = await ref.run(feeds(false));
  const b = await cand.run(feeds(half));
  let dLogits = 0;
  let dPresent = 0;
  for (const name of ref.outputNames) {
    const x = a[name].data;
    const y = b[name].data;
    if (x.length !== y.length) throw new Error(`${name}: ${x.length} vs ${y.length} values`);
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - (y instanceof Uint16Array ? fromHalf(y[i]) : y[i])));
    if (name === 'logits') dLogits = m;
    else dPresent = Math.max(dPresent, m);
  }
  worst = Math.max(worst, dLogits, half ? 0 : dPresent);
  console.log(`past ${past}, new ${s}: max |diff| logits ${dLogits.toExponential(2)}, present ${dPresent.toExponential(2)}${half ? ' (float16 KV: present rounded)' : ''}`);
}
console.log(`${worst <= tol ? 'match' : 'MISMATCH'}: worst ${worst.toExponential(2)} (tolerance ${tol})`);
process.exit(worst <= tol ? 0 : 1);
