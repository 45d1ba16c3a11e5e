// Measures an exported model folder with onnxruntime-node on this CPU against the default-model
// targets: vision encoder ms/frame at batch 8, prefill tokens/s, decode tokens/s (one token per step
// with the KV cache). Prints one JSON line (medians of repeated runs, min/max beside them).
//   node tools/default-model/speed.mjs models/winnow-tiny [--threads 2]
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const ti = process.argv.indexOf('--threads');
const threads = ti > 0 ? Number(process.argv[ti + 1]) : 2;
const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const tc = cfg.text_config;
const opts = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
}
async function timeRuns(n, fn) {
  for (let i = 0; i < 3; i++) await fn();
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return stats(out);
}

const S = cfg.vision_config.image_size;
const vis = await ort.InferenceSession.create(join(dir, 'onnx/vision_encoder.onnx'), opts);
const B = 8;
const px = new Float32Array(B * 3 * S * S);
for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.37);
const pixels = new ort.Tensor('float32', px, [B, 3, S, S]);
const v = await timeRuns(20, () => vis.run({ pixel_values: pixels }));

const dec = await ort.InferenceSession.create(join(dir, 'onnx/decoder_model_merged.onnx'), opts);
const D = tc.hidden_size;
const emptyPast = () => {
  const f = {};
  for (let i = 0; i < tc.num_hidden_layers; i++) for (const kv of ['key', 'value']) f[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, tc.num_key_value_heads, 0, tc.head_dim]);
  return f;
};
function feeds(n, past, pastLen) {
  const e = new Float32Array(n * D);
  for (let i = 0; i < e.length; i++) e[i] = 0.02 * Math.sin(i * 0.11);
  return {
    inputs_embeds: new ort.Tensor('float32', e, [1, n, D]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(pastLen + n).fill(1n), [1, pastLen + n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(pastLen + i)), [1, n]),
    ...past,
  };
}
const prefillTokens = 1024;
const pf = feeds(prefillTokens, emptyPast(), 0);
const p = await timeRuns(10, () => dec.run(pf));

// Decode: a 256-token context (prefilled untimed), then one token per step, each step feeding the
// previous step's presents; only the steps are timed.
const ctxTokens = 256;
const steps = 64;
const decodeMs = [];
for (let r = 0; r < 6; r++) {
  let out = await dec.run(feeds(ctxTokens, emptyPast(), 0));
  const t0 = process.hrtime.bigint();
  for (let s = 0; s < steps; s++) {
    const past = {};
    for (let i = 0; i < tc.num_hidden_layers; i++) for (const kv of ['key', 'value']) past[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
    out = await dec.run(feeds(1, past, ctxTokens + s));
  }
  if (r > 0) decodeMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
const d = stats(decodeMs);
console.log(
  JSON.stringify({
    threads,
    visionMsPerFrameBatch8: { median: v.median / B, min: v.min / B, max: v.max / B },
    prefillTokensPerS: { median: (prefillTokens / p.median) * 1000, min: (prefillTokens / p.max) * 1000, max: (prefillTokens / p.min) * 1000, tokens: prefillTokens },
    decodeTokensPerS: { median: (steps / d.median) * 1000, min: (steps / d.max) * 1000, max: (steps / d.min) * 1000, context: ctxTokens, steps },
  }),
);
