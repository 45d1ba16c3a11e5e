// Checks an exported winnow-tiny folder with onnxruntime-node against reference_outputs.json
// (written by export.py from PyTorch). Prints one summary line; exits 1 on mismatch.
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const ref = JSON.parse(readFileSync(join(dir, 'reference_outputs.json'), 'utf8'));
const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const S = cfg.vision_config.image_size;
const px = new Float32Array(3 * S * S);
for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) px[(c * S + y) * S + x] = 0.9 * Math.sin(0.07 * x + 0.13 * y + 1.7 * c);
const vis = await ort.InferenceSession.create(join(dir, 'onnx/vision_encoder.onnx'));
const vo = await vis.run({ pixel_values: new ort.Tensor('float32', px, [1, 3, S, S]) });
const D = vo.image_features.dims[2];
let maxDiff = 0;
for (const p of ref.image_features) maxDiff = Math.max(maxDiff, Math.abs(vo.image_features.data[p.token * D + p.dim] - p.value));
for (const p of ref.cls_similarity) maxDiff = Math.max(maxDiff, Math.abs(vo.cls_similarity.data[p.token] - p.value));
// The temporal identity's per-patch classes (an argmax): every one must agree.
let classMismatch = 0;
if (ref.patch_classes) ref.patch_classes.forEach((c, i) => (classMismatch += Number(vo.patch_classes.data[i]) === c ? 0 : 1));
const emb = await ort.InferenceSession.create(join(dir, 'onnx/embed_tokens.onnx'));
const dec = await ort.InferenceSession.create(join(dir, 'onnx/decoder_model_merged.onnx'));
const n = ref.prompt_ids.length;
const eo = await emb.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ref.prompt_ids.map(BigInt)), [1, n]) });
const tc = cfg.text_config;
const feeds = {
  inputs_embeds: eo.inputs_embeds,
  attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
  position_ids: new ort.Tensor('int64', BigInt64Array.from(ref.position_ids.map(BigInt)), [1, n]),
};
for (let i = 0; i < tc.num_hidden_layers; i++) for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, tc.num_key_value_heads, 0, tc.head_dim]);
const out = await dec.run(feeds);
const V = out.logits.dims[2];
let maxLogit = 0;
for (const p of ref.logits) for (let v = 0; v < V; v++) maxLogit = Math.max(maxLogit, Math.abs(out.logits.data[p.position * V + v] - p.values[v]));
const ok = maxDiff < 1e-3 && maxLogit < 1e-3 && classMismatch === 0;
const classes = ref.patch_classes ? `, patch classes ${ref.patch_classes.length - classMismatch}/${ref.patch_classes.length} equal` : '';
console.log(`${ok ? 'match' : 'MISMATCH'}: max |diff| features ${maxDiff.toExponential(2)}, logits ${maxLogit.toExponential(2)}${classes} (empty past, onnxruntime-node ${ort.env.versions?.common ?? ''})`);
process.exit(ok ? 0 : 1);
