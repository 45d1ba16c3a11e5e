// Model folders written into a temp dir, for the tests that check load-time validation. The
// operator and numeric tests use the real default model (models/winnow-tiny).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel, seededWeights, tempDirSync } from '../../shared/index.js';
import { patchEncoder } from './patch-encoder.js';

export const PRE_112 = {
  do_resize: true,
  size: { height: 112, width: 112 },
  resample: 3,
  do_pad: true,
  pad_mode: 'fit',
  do_center_crop: false,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_std: [0.5, 0.5, 0.5],
};

export const CONFIG_32 = {
  model_type: 'llava',
  text_config: { hidden_size: 32 },
  vision_config: { image_size: 112, patch_size: 8 },
  image_token_index: 5,
  winnow: { video_pooling: { stride: 2, mode: 'avg' } },
};

/** embed_tokens: Gather over a [vocab, D] table. */
export function embedTokensModel(vocab = 16, dim = 32): Uint8Array {
  return buildModel({
    nodes: [{ op: 'Gather', inputs: ['table', 'input_ids'], outputs: ['inputs_embeds'] }],
    inputs: [{ name: 'input_ids', type: 'int64', shape: ['batch', 'seq'] }],
    outputs: [{ name: 'inputs_embeds', type: 'float32', shape: ['batch', 'seq', dim] }],
    initializers: [{ name: 'table', dims: [vocab, dim], data: seededWeights(vocab * dim, 3) }],
  });
}

/** A "decoder" with the wrong output name, to exercise the contract check of a lazily opened component. */
export function badDecoderModel(dim = 32): Uint8Array {
  return buildModel({
    nodes: [
      { op: 'Identity', inputs: ['inputs_embeds'], outputs: ['hidden'] },
      { op: 'Identity', inputs: ['attention_mask'], outputs: ['mask_out'] },
    ],
    inputs: [
      { name: 'inputs_embeds', type: 'float32', shape: ['batch', 'seq', dim] },
      { name: 'attention_mask', type: 'int64', shape: ['batch', 'total'] },
    ],
    outputs: [
      { name: 'hidden', type: 'float32', shape: ['batch', 'seq', dim] },
      { name: 'mask_out', type: 'int64', shape: ['batch', 'total'] },
    ],
  });
}

export interface FolderSpec {
  config?: unknown;
  preprocessor?: unknown;
  /** null: no file. */
  vision?: Uint8Array | null;
  embed?: Uint8Array | null;
  decoder?: Uint8Array | null;
  tokenizer?: boolean;
  suffix?: string;
}

export class TempFolders {
  readonly #tmp = tempDirSync('winnow-encode-');
  #n = 0;

  make(spec: FolderSpec = {}): string {
    const dir = join(this.#tmp.dir, `m${this.#n++}`);
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    const sfx = spec.suffix ?? '';
    if (spec.config !== null) writeFileSync(join(dir, 'config.json'), JSON.stringify(spec.config ?? CONFIG_32));
    if (spec.preprocessor !== null) writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(spec.preprocessor ?? PRE_112));
    const vision = spec.vision === undefined ? patchEncoder({}) : spec.vision;
    if (vision) writeFileSync(join(dir, 'onnx', `vision_encoder${sfx}.onnx`), vision);
    const embed = spec.embed === undefined ? embedTokensModel() : spec.embed;
    if (embed) writeFileSync(join(dir, 'onnx', `embed_tokens${sfx}.onnx`), embed);
    const decoder = spec.decoder === undefined ? badDecoderModel() : spec.decoder;
    if (decoder) writeFileSync(join(dir, 'onnx', `decoder_model_merged${sfx}.onnx`), decoder);
    if (spec.tokenizer !== false) {
      writeFileSync(join(dir, 'tokenizer.json'), '{}');
      writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
    }
    return dir;
  }

  dispose(): void {
    this.#tmp.cleanup();
  }
}
