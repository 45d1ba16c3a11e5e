// The I/O contract every stage relies on, checked on each component as soon as its session is
// created: the inputs and outputs a stage feeds and reads must exist with usable types and ranks,
// so that a wrong export fails at load with WINNOW_ERR_MODEL_CONTRACT instead of mid-stream.
// (The decoder's KV-cache layout is checked in depth by src/llm/decoder.ts.)
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { WinnowError } from '../errors.js';
import { componentPath, fileExists, missingFileError, type ExecutionProviderName, type ModelComponent, type ModelDtype, type OnnxSessionOpener } from './onnx-session.js';

export interface TensorSpec {
  name: string;
  type: ort.Tensor.Type | 'non-tensor';
  /** Symbolic dims are strings; an empty array means onnxruntime does not know the shape. */
  shape: ReadonlyArray<number | string>;
}

/** An opened component: the session plus what its contract check learned. */
export interface ComponentSession {
  component: ModelComponent;
  file: string;
  dtype: ModelDtype;
  session: ort.InferenceSession;
  executionProvider: ExecutionProviderName;
  inputs: ReadonlyMap<string, TensorSpec>;
  outputs: ReadonlyMap<string, TensorSpec>;
}

const REQUIRED_IO: Readonly<Record<ModelComponent, { inputs: readonly string[]; outputs: readonly string[] }>> = {
  vision_encoder: { inputs: ['pixel_values'], outputs: ['image_features'] },
  embed_tokens: { inputs: ['input_ids'], outputs: ['inputs_embeds'] },
  decoder_model_merged: { inputs: ['inputs_embeds', 'attention_mask'], outputs: ['logits'] },
};

export function contractError(component: ModelComponent, file: string, issue: string, details: Record<string, unknown> = {}): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `${component} (${file}): ${issue}`, { details: { component, file, ...details } });
}

export function specsOf(session: ort.InferenceSession, which: 'input' | 'output'): Map<string, TensorSpec> {
  const names = which === 'input' ? session.inputNames : session.outputNames;
  // inputMetadata/outputMetadata appeared in onnxruntime 1.22; older bindings only give names.
  const meta: readonly ort.InferenceSession.ValueMetadata[] | undefined = which === 'input' ? session.inputMetadata : session.outputMetadata;
  const out = new Map<string, TensorSpec>();
  for (const name of names) {
    const m = meta?.find((x) => x.name === name);
    if (!m) out.set(name, { name, type: 'float32', shape: [] });
    else if (!m.isTensor) out.set(name, { name, type: 'non-tensor', shape: [] });
    else out.set(name, { name, type: m.type, shape: m.shape });
  }
  return out;
}

/** The size of `axis` when the graph fixes it, else undefined (symbolic or unknown). */
export function staticDim(spec: TensorSpec, axis: number): number | undefined {
  const d = spec.shape[axis];
  return typeof d === 'number' && d > 0 ? d : undefined;
}

/** Checks an opened component against the I/O contract every stage relies on. */
export function validateContract(
  component: ModelComponent,
  file: string,
  inputs: ReadonlyMap<string, TensorSpec>,
  outputs: ReadonlyMap<string, TensorSpec>,
): void {
  const req = REQUIRED_IO[component];
  for (const name of req.inputs) {
    if (!inputs.has(name)) {
      throw contractError(component, file, `has no input "${name}" (inputs: ${[...inputs.keys()].join(', ') || 'none'})`, {
        expected: name,
        inputs: [...inputs.keys()],
      });
    }
  }
  for (const name of req.outputs) {
    if (!outputs.has(name)) {
      throw contractError(component, file, `has no output "${name}" (outputs: ${[...outputs.keys()].join(', ') || 'none'})`, {
        expected: name,
        outputs: [...outputs.keys()],
      });
    }
  }
  if (component === 'vision_encoder') validateVisionIo(file, inputs, outputs);
}

function validateVisionIo(file: string, inputs: ReadonlyMap<string, TensorSpec>, outputs: ReadonlyMap<string, TensorSpec>): void {
  const component = 'vision_encoder';
  // The encode stage feeds exactly one input; any other would be left unset.
  const extra = [...inputs.keys()].filter((n) => n !== 'pixel_values');
  if (extra.length) throw contractError(component, file, `has unexpected inputs ${extra.join(', ')}`, { unexpected: extra });
  const px = inputs.get('pixel_values')!;
  if (px.type !== 'float32' && px.type !== 'float16') {
    throw contractError(component, file, `pixel_values is ${px.type}, expected float32`, { input: 'pixel_values', type: px.type });
  }
  if (px.shape.length && (px.shape.length !== 4 || (staticDim(px, 1) ?? 3) !== 3)) {
    throw contractError(component, file, `pixel_values has shape [${px.shape.join(',')}], expected [B,3,H,W]`, { shape: px.shape });
  }
  const feats = outputs.get('image_features')!;
  if (feats.type !== 'float32' && feats.type !== 'float16') {
    throw contractError(component, file, `image_features is ${feats.type}, expected float32`, { output: 'image_features', type: feats.type });
  }
  if (feats.shape.length && feats.shape.length !== 3) {
    throw contractError(component, file, `image_features has shape [${feats.shape.join(',')}], expected [B,N,D]`, { shape: feats.shape });
  }
  const cls = outputs.get('cls_similarity');
  if (cls && cls.shape.length && cls.shape.length !== 2) {
    throw contractError(component, file, `cls_similarity has shape [${cls.shape.join(',')}], expected [B,N]`, { shape: cls.shape });
  }
  const classes = outputs.get('patch_classes');
  if (classes && ((classes.shape.length && classes.shape.length !== 2) || !['int64', 'int32', 'uint8', 'int8'].includes(classes.type))) {
    throw contractError(component, file, `patch_classes is ${classes.type} [${classes.shape.join(',')}], expected an integer [B,N]`, {
      shape: classes.shape,
      type: classes.type,
    });
  }
}

/**
 * Opens `file` with `open`, reads its I/O specs and checks the contract; the session is released
 * if the check fails.
 */
export async function openComponent(
  component: ModelComponent,
  file: string,
  dtype: ModelDtype,
  open: (file: string) => Promise<{ session: ort.InferenceSession; provider: ExecutionProviderName }>,
): Promise<ComponentSession> {
  const { session, provider } = await open(file);
  const inputs = specsOf(session, 'input');
  const outputs = specsOf(session, 'output');
  try {
    validateContract(component, file, inputs, outputs);
  } catch (e) {
    await session.release();
    throw e;
  }
  return { component, file, dtype, session, executionProvider: provider, inputs, outputs };
}

/**
 * Opens `component` of the model folder `dir` at `dtype` and checks its contract. Fails with
 * WINNOW_ERR_MODEL_MISSING_FILE naming the file when the folder has no such variant.
 */
export async function openFolderComponent(dir: string, component: ModelComponent, dtype: ModelDtype, opener: OnnxSessionOpener): Promise<ComponentSession> {
  const rel = componentPath(component, dtype);
  const file = join(dir, rel);
  if (!(await fileExists(file))) throw missingFileError(dir, rel, `${component} at dtype ${dtype}`);
  return openComponent(component, file, dtype, (f) => opener.open(f));
}
