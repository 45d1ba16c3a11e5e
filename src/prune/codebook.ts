// Codebooks: P redundancy prototypes of width D, plus what they belong to and how to use them.
// Our on-disk format is safetensors (tensor `prototypes`, metadata values JSON-encoded); the
// paper's released PyTorch `.pt` files load directly too.
import { readFile, writeFile } from 'node:fs/promises';
import { createReadStream, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { WinnowError, throwIfAborted } from '../errors.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import { readTorchTensor } from './torch-pt.js';
import { ENCODER_CHECK_POLICIES, STRATEGY_NAMES, type EncoderCheckPolicy, type StrategyName } from './types.js';

export const CODEBOOK_FORMAT_VERSION = 'winnow-codebook/1';

export interface CodebookModelInfo {
  name: string;
  /** Width of the LLM embedding space the prototypes live in. */
  llmWidth: number;
  /** SHA-256 of the vision encoder file the codebook was built with, when known. */
  visionEncoderSha256?: string;
}

export interface CodebookDefaults {
  strategy: StrategyName;
  tau?: number;
  ratio?: number;
}

export interface CodebookBuildInfo {
  /** Where the prototypes came from, e.g. "RedundancyCodebook release" or a dataset name. */
  source: string;
  imageCount?: number;
  parameters?: Record<string, unknown>;
  /** One sample (image) id per prototype. */
  sampleIds?: string[];
}

export interface Codebook {
  /** count × dim, row-major, as stored (not normalised). */
  prototypes: Float32Array;
  count: number;
  dim: number;
  /** Storage dtype of the file it came from. */
  dtype: 'F16' | 'F32' | 'BF16';
  model?: CodebookModelInfo;
  defaults?: CodebookDefaults;
  build?: CodebookBuildInfo;
  /** Any other metadata keys found in the file, verbatim. */
  extraMetadata: Record<string, string>;
  /** The file it was loaded from. */
  path?: string;
}

const modelSchema = z.object({ name: z.string(), llmWidth: z.number().int().positive(), visionEncoderSha256: z.string().optional() });
const defaultsSchema = z.object({
  strategy: z.enum(STRATEGY_NAMES as [StrategyName, ...StrategyName[]]),
  tau: z.number().optional(),
  ratio: z.number().min(0).max(1).optional(),
});
const buildSchema = z.object({
  source: z.string(),
  imageCount: z.number().int().nonnegative().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  sampleIds: z.array(z.string()).optional(),
});

/**
 * The paper's released codebooks, recognised by shape on import so their documented defaults
 * (docs/pruning.md) come along without flags.
 */
const RELEASED: Array<{ count: number; dim: number; model: CodebookModelInfo; defaults: CodebookDefaults; imageCount: number }> = [
  { count: 454, dim: 4096, model: { name: 'llava-v1.5-7b', llmWidth: 4096 }, defaults: { strategy: 'threshold', tau: 0.45 }, imageCount: 500 },
  { count: 45, dim: 3584, model: { name: 'llava-onevision-qwen2-7b-ov', llmWidth: 3584 }, defaults: { strategy: 'double-softmax', ratio: 0.5 }, imageCount: 1200 },
];

function parseJsonMeta<T>(metadata: Record<string, string>, key: string, schema: z.ZodType<T>, path?: string): T | undefined {
  const raw = metadata[key];
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `codebook metadata "${key}" is not JSON`, { cause: e, details: { path } });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `codebook metadata "${key}" is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
      details: { path },
    });
  }
  return parsed.data;
}

export function decodeSafetensorsCodebook(bytes: Uint8Array, path?: string): Codebook {
  const file = readSafetensors(bytes, { source: path });
  const t = file.tensors.get('prototypes');
  if (!t) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'safetensors file has no "prototypes" tensor', { details: { path } });
  if (t.shape.length !== 2 || t.shape[0] < 1 || t.shape[1] < 1) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `"prototypes" must be [P, D] with P, D ≥ 1, got [${t.shape.join(', ')}]`, { details: { path } });
  }
  const [count, dim] = t.shape as [number, number];
  const { model: _m, defaults: _d, build: _b, format: _f, ...extraMetadata } = file.metadata;
  const cb: Codebook = {
    prototypes: t.data,
    count,
    dim,
    dtype: t.dtype,
    model: parseJsonMeta(file.metadata, 'model', modelSchema, path),
    defaults: parseJsonMeta(file.metadata, 'defaults', defaultsSchema, path),
    build: parseJsonMeta(file.metadata, 'build', buildSchema, path),
    extraMetadata,
    path,
  };
  validateCodebook(cb);
  return cb;
}

export interface TorchImportOptions {
  path?: string;
  /** One id per prototype (the `.samples.json` beside a released codebook). */
  sampleIds?: string[];
}

export function decodeTorchCodebook(bytes: Uint8Array, options: TorchImportOptions = {}): Codebook {
  const t = readTorchTensor(bytes, { source: options.path });
  if (t.shape.length !== 2 || t.shape[0] < 1 || t.shape[1] < 1) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `the tensor must be [P, D], got [${t.shape.join(', ')}]`, { details: { path: options.path } });
  }
  const [count, dim] = t.shape as [number, number];
  const known = RELEASED.find((r) => r.count === count && r.dim === dim);
  const cb: Codebook = {
    prototypes: t.data,
    count,
    dim,
    dtype: t.dtype === 'float16' ? 'F16' : t.dtype === 'bfloat16' ? 'BF16' : 'F32',
    model: known ? { ...known.model } : undefined,
    defaults: known ? { ...known.defaults } : undefined,
    build: {
      source: known ? 'RedundancyCodebook release (PyTorch .pt)' : 'PyTorch .pt import',
      ...(known ? { imageCount: known.imageCount } : {}),
      ...(options.sampleIds ? { sampleIds: options.sampleIds } : {}),
    },
    extraMetadata: {},
    path: options.path,
  };
  validateCodebook(cb);
  return cb;
}

export function validateCodebook(cb: Codebook): void {
  if (cb.prototypes.length !== cb.count * cb.dim) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', 'prototype data does not match P × D', { details: { path: cb.path } });
  if (cb.model && cb.model.llmWidth !== cb.dim) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_MISMATCH', `metadata says width ${cb.model.llmWidth}, prototypes have ${cb.dim}`, { details: { path: cb.path } });
  }
  if (cb.build?.sampleIds && cb.build.sampleIds.length !== cb.count) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `${cb.build.sampleIds.length} sample ids for ${cb.count} prototypes`, { details: { path: cb.path } });
  }
  for (let i = 0; i < cb.prototypes.length; i++) {
    if (!Number.isFinite(cb.prototypes[i])) throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `prototype ${Math.floor(i / cb.dim)} has a non-finite value`, { details: { path: cb.path } });
  }
}

export function encodeCodebook(cb: Codebook, dtype: 'F16' | 'F32' = cb.dtype === 'F32' ? 'F32' : 'F16'): Uint8Array {
  validateCodebook(cb);
  const metadata: Record<string, string> = { ...cb.extraMetadata, format: CODEBOOK_FORMAT_VERSION };
  if (cb.model) metadata.model = JSON.stringify(cb.model);
  if (cb.defaults) metadata.defaults = JSON.stringify(cb.defaults);
  if (cb.build) metadata.build = JSON.stringify(cb.build);
  return writeSafetensors({ prototypes: { dtype, shape: [cb.count, cb.dim], data: cb.prototypes } }, metadata);
}

export async function saveCodebook(path: string, cb: Codebook, options: { dtype?: 'F16' | 'F32'; signal?: AbortSignal } = {}): Promise<void> {
  throwIfAborted(options.signal);
  try {
    await writeFile(path, encodeCodebook(cb, options.dtype), { signal: options.signal });
  } catch (e) {
    if (e instanceof WinnowError) throw e;
    throw new WinnowError('WINNOW_ERR_IO', `could not write ${path}`, { cause: e, details: { path } });
  }
}

/** `<name>.pt` → `<name>.samples.json`, as the released codebooks ship. */
export function samplesPathFor(ptPath: string): string {
  return ptPath.replace(/\.(pt|pth)$/i, '') + '.samples.json';
}

async function readSampleIds(path: string, count: number, signal?: AbortSignal): Promise<string[] | undefined> {
  if (!existsSync(path)) return undefined;
  const value: unknown = JSON.parse(await readFile(path, { encoding: 'utf8', signal }));
  if (!Array.isArray(value) || value.length !== count) {
    throw new WinnowError('WINNOW_ERR_CODEBOOK_FORMAT', `${path} must be a JSON array with one id per prototype (${count})`, { details: { path } });
  }
  return value.map((v) => String(v));
}

export interface LoadCodebookOptions {
  signal?: AbortSignal;
  /** For `.pt` files: read sample ids from `<name>.samples.json` when it exists. Default true. */
  readSamples?: boolean;
}

/** Loads a codebook from `.safetensors` or a PyTorch `.pt` (detected by content, not extension). */
export async function loadCodebook(path: string, options: LoadCodebookOptions = {}): Promise<Codebook> {
  throwIfAborted(options.signal);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path, { signal: options.signal });
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_IO', `could not read codebook ${path}`, { cause: e, details: { path } });
  }
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    const cb = decodeTorchCodebook(bytes, { path });
    if (options.readSamples !== false) {
      const ids = await readSampleIds(samplesPathFor(path), cb.count, options.signal);
      if (ids) cb.build = { ...(cb.build ?? { source: 'PyTorch .pt import' }), sampleIds: ids };
    }
    return cb;
  }
  return decodeSafetensorsCodebook(bytes, path);
}

export interface CodebookNormStats {
  min: number;
  mean: number;
  max: number;
}

export function codebookNormStats(cb: Codebook): CodebookNormStats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let p = 0; p < cb.count; p++) {
    let ss = 0;
    for (let k = 0; k < cb.dim; k++) ss += cb.prototypes[p * cb.dim + k] ** 2;
    const n = Math.sqrt(ss);
    min = Math.min(min, n);
    max = Math.max(max, n);
    sum += n;
  }
  return { min, mean: sum / cb.count, max };
}

/** SHA-256 (hex) of a file, streamed: a real export's vision encoder is hundreds of MB. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) {
      throwIfAborted(signal);
      h.update(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof WinnowError) throw e;
    throw new WinnowError('WINNOW_ERR_IO', `could not read ${path}`, { cause: e, details: { path } });
  }
  return h.digest('hex');
}

export type { EncoderCheckPolicy };

export interface CodebookEncoderCheck {
  /** 'unrecorded': the codebook does not name its encoder (e.g. an imported `.pt`), nothing to compare. */
  status: 'match' | 'mismatch' | 'unrecorded' | 'skipped';
  expectedSha256?: string;
  actualSha256?: string;
}

export interface CheckCodebookEncoderOptions {
  /** Default 'error'. */
  policy?: EncoderCheckPolicy;
  /** Receives the mismatch under policy 'warn'. */
  onWarning?: (error: WinnowError) => void;
  signal?: AbortSignal;
}

/**
 * Checks that `codebook` was built from the encoder at `encoderPath`. Why: prototypes live in one
 * encoder's feature space. Against another encoder of the same width, scoring still runs and
 * returns plausible numbers, so pruning goes silently wrong. The width check alone does not catch
 * a retrained encoder.
 */
export async function checkCodebookEncoder(codebook: Codebook, encoderPath: string, options: CheckCodebookEncoderOptions = {}): Promise<CodebookEncoderCheck> {
  const policy = options.policy ?? 'error';
  if (!ENCODER_CHECK_POLICIES.includes(policy)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `encoder check policy must be one of ${ENCODER_CHECK_POLICIES.join(', ')}, got ${String(policy)}`);
  const expected = codebook.model?.visionEncoderSha256?.toLowerCase();
  if (policy === 'off') return { status: 'skipped' };
  if (!expected) return { status: 'unrecorded' };
  const actual = await sha256File(encoderPath, options.signal);
  if (actual === expected) return { status: 'match', expectedSha256: expected, actualSha256: actual };
  const error = new WinnowError(
    'WINNOW_ERR_CODEBOOK_MISMATCH',
    `codebook ${codebook.path ?? ''} was built for vision encoder sha256 ${expected.slice(0, 12)}…, but ${encoderPath} is ${actual.slice(0, 12)}…; rebuild the codebook for this model (winnow codebook build), or accept the mismatch explicitly`,
    { details: { codebook: codebook.path, encoder: encoderPath, expectedSha256: expected, actualSha256: actual } },
  );
  if (policy === 'error') throw error;
  options.onWarning?.(error);
  return { status: 'mismatch', expectedSha256: expected, actualSha256: actual };
}
