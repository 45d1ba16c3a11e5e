// A model folder in the transformers.js / onnx-community layout, shared by the encode and LLM
// stages: config files parsed and checked once, ONNX sessions created once per component (the
// vision encoder at load, the others on first use), contracts validated at creation, one
// idempotent close() that waits for running inferences and releases every session.
import { readdirSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { WinnowError, abortError, throwIfAborted, toWinnowError } from '../errors.js';
import { f16BitsToF32, f32ToF16Bits } from '../prune/float16.js';
import { parseModelConfig, parsePreprocessorConfig, type ModelConfig, type PreprocessPlan } from './config.js';

export type ModelDtype = 'fp32' | 'fp16' | 'quantized' | 'q4' | 'q4f16';
export type ModelComponent = 'vision_encoder' | 'embed_tokens' | 'decoder_model_merged';
export type ExecutionProviderOption = 'cpu' | 'cuda' | 'auto';
export type ExecutionProviderName = 'cpu' | 'cuda';

export const MODEL_COMPONENTS: readonly ModelComponent[] = ['vision_encoder', 'embed_tokens', 'decoder_model_merged'];

/** File-name suffix per dtype, as transformers.js names its exports. */
export const DTYPE_SUFFIX: Readonly<Record<ModelDtype, string>> = {
  fp32: '',
  fp16: '_fp16',
  quantized: '_quantized',
  q4: '_q4',
  q4f16: '_q4f16',
};

export interface LoadModelOptions {
  /** One dtype for every component, or per component (missing ones: fp32). Default 'fp32'. */
  dtype?: ModelDtype | Partial<Record<ModelComponent, ModelDtype>>;
  /** Default 'auto': CUDA when onnxruntime can create it, else CPU (see `executionProviderReason`). */
  executionProvider?: ExecutionProviderOption;
  /** onnxruntime intra-op threads; default: onnxruntime's choice (one per core). */
  intraOpThreads?: number;
  /** onnxruntime inter-op threads; default: onnxruntime's choice. */
  interOpThreads?: number;
  /**
   * Components whose files must be present. Default: all three. The tokenizer files are required
   * when embed_tokens or decoder_model_merged is. Only the vision encoder is opened at load.
   */
  components?: readonly ModelComponent[];
  /** Run one inference through the vision encoder at load so the first frame is not slow. Default true. */
  warmUp?: boolean;
  signal?: AbortSignal;
}

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

/** Facts about the vision encoder, established from metadata and the warm-up run. */
export interface VisionEncoderInfo {
  inputType: 'float32' | 'float16';
  imageHeight: number;
  imageWidth: number;
  numTokens: number;
  dim: number;
  gridH: number;
  gridW: number;
  hasClsSimilarity: boolean;
  /** The encoder outputs patch_classes (needed by config.json winnow.temporal_identity). */
  hasPatchClasses: boolean;
}

export interface VisionOutput {
  /** One [numTokens · dim] array per image of the batch, owned by the caller. */
  features: Float32Array[];
  /** One [numTokens] array per image when the encoder outputs cls_similarity. */
  clsSimilarity: Float32Array[] | undefined;
  /** One [numTokens] array of class ids per image when the encoder outputs patch_classes. */
  patchClasses: Int32Array[] | undefined;
}

export interface ModelFiles {
  config: string;
  preprocessorConfig: string;
  generationConfig: string | undefined;
  tokenizer: string | undefined;
  tokenizerConfig: string | undefined;
  components: Readonly<Partial<Record<ModelComponent, string>>>;
}

const REQUIRED_IO: Readonly<Record<ModelComponent, { inputs: readonly string[]; outputs: readonly string[] }>> = {
  vision_encoder: { inputs: ['pixel_values'], outputs: ['image_features'] },
  embed_tokens: { inputs: ['input_ids'], outputs: ['inputs_embeds'] },
  decoder_model_merged: { inputs: ['inputs_embeds', 'attention_mask'], outputs: ['logits'] },
};

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function missingFile(dir: string, file: string, why: string): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `model folder ${dir} has no ${file} (${why})`, {
    details: { dir, file: join(dir, file) },
  });
}

function contractError(component: ModelComponent, file: string, issue: string, details: Record<string, unknown> = {}): WinnowError {
  return new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `${component} (${file}): ${issue}`, { details: { component, file, ...details } });
}

async function readJson(dir: string, name: string, required: boolean): Promise<unknown> {
  const p = join(dir, name);
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw missingFile(dir, name, 'required by every model folder');
    }
    throw new WinnowError('WINNOW_ERR_IO', `cannot read ${p}`, { cause: e, details: { file: p } });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_MODEL_CONFIG', `${p} is not valid JSON`, { cause: e, details: { file: p } });
  }
}

function specsOf(session: ort.InferenceSession, which: 'input' | 'output'): Map<string, TensorSpec> {
  const names = which === 'input' ? session.inputNames : session.outputNames;
  // inputMetadata/outputMetadata appeared in onnxruntime 1.22; older bindings only give names.
  const meta: readonly ort.InferenceSession.ValueMetadata[] | undefined =
    which === 'input' ? session.inputMetadata : session.outputMetadata;
  const out = new Map<string, TensorSpec>();
  for (const name of names) {
    const m = meta?.find((x) => x.name === name);
    if (!m) out.set(name, { name, type: 'float32', shape: [] });
    else if (!m.isTensor) out.set(name, { name, type: 'non-tensor', shape: [] });
    else out.set(name, { name, type: m.type, shape: m.shape });
  }
  return out;
}

function staticDim(spec: TensorSpec, axis: number): number | undefined {
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
  if (component !== 'vision_encoder') return;
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
    throw contractError(component, file, `patch_classes is ${classes.type} [${classes.shape.join(',')}], expected an integer [B,N]`, { shape: classes.shape, type: classes.type });
  }
}

/**
 * Whether onnxruntime-node ships its CUDA provider library here. Without it a CUDA session
 * cannot be created, and trying anyway makes onnxruntime print an error through its global
 * logger, which per-session log levels do not silence. undefined: cannot tell, so try.
 */
function cudaProviderInstalled(): boolean | undefined {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const bin = join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    return readdirSync(bin).some((f) => f.includes('onnxruntime_providers_cuda'));
  } catch {
    return undefined;
  }
}

function dtypeFor(opt: LoadModelOptions['dtype'], component: ModelComponent): ModelDtype {
  if (opt === undefined) return 'fp32';
  if (typeof opt === 'string') return opt;
  return opt[component] ?? 'fp32';
}

/**
 * The grid of a token sequence: input size / patch size when that accounts for every token
 * (non-square inputs), else vision_config.image_size / patch_size, else a square.
 */
export function tokenGrid(
  numTokens: number,
  config: ModelConfig,
  input?: { height: number; width: number },
): { gridH: number; gridW: number } | undefined {
  const { visionImageSize: s, visionPatchSize: p } = config;
  if (p && input && input.height % p === 0 && input.width % p === 0 && (input.height / p) * (input.width / p) === numTokens) {
    return { gridH: input.height / p, gridW: input.width / p };
  }
  if (s && p && (s / p) * (s / p) === numTokens) return { gridH: s / p, gridW: s / p };
  const side = Math.round(Math.sqrt(numTokens));
  if (side * side === numTokens) return { gridH: side, gridW: side };
  return undefined;
}

function toF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

function toF32Slice(data: ort.Tensor['data'], start: number, end: number): Float32Array {
  if (data instanceof Float32Array) return data.slice(start, end);
  if (data instanceof Uint16Array) {
    const out = new Float32Array(end - start);
    for (let i = start; i < end; i++) out[i - start] = f16BitsToF32(data[i]);
    return out;
  }
  throw new WinnowError('WINNOW_ERR_INFERENCE', 'vision encoder returned a tensor that is neither float32 nor float16');
}

interface Resolved {
  dir: string;
  config: ModelConfig;
  preprocess: PreprocessPlan;
  generationConfig: Readonly<Record<string, unknown>> | undefined;
  files: ModelFiles;
  dtypes: Readonly<Record<ModelComponent, ModelDtype>>;
  options: LoadModelOptions;
}

export class ModelFolder {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly preprocess: PreprocessPlan;
  readonly generationConfig: Readonly<Record<string, unknown>> | undefined;
  readonly files: ModelFiles;
  readonly dtypes: Readonly<Record<ModelComponent, ModelDtype>>;
  #options: LoadModelOptions;
  #sessions = new Map<ModelComponent, Promise<ComponentSession>>();
  #provider: ExecutionProviderName | undefined;
  #providerReason = '';
  #vision: { component: ComponentSession; info: VisionEncoderInfo } | undefined;
  #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  /**
   * Reads and checks the folder, opens the vision encoder (validating its contract) and warms
   * it up. Fails with WINNOW_ERR_MODEL_MISSING_FILE / _MODEL_CONFIG / _MODEL_CONTRACT /
   * _EXECUTION_PROVIDER.
   */
  static async load(dir: string, options: LoadModelOptions = {}): Promise<ModelFolder> {
    const { signal } = options;
    throwIfAborted(signal);
    const components = options.components ?? MODEL_COMPONENTS;
    const rawConfig = await readJson(dir, 'config.json', true);
    const rawPre = await readJson(dir, 'preprocessor_config.json', true);
    const rawGen = await readJson(dir, 'generation_config.json', false);
    const config = parseModelConfig(rawConfig, join(dir, 'config.json'));
    const preprocess = parsePreprocessorConfig(rawPre, join(dir, 'preprocessor_config.json'));
    const dtypes = {} as Record<ModelComponent, ModelDtype>;
    const componentFiles: Partial<Record<ModelComponent, string>> = {};
    for (const c of MODEL_COMPONENTS) {
      dtypes[c] = dtypeFor(options.dtype, c);
      const rel = `onnx/${c}${DTYPE_SUFFIX[dtypes[c]]}.onnx`;
      const p = join(dir, rel);
      if (await exists(p)) componentFiles[c] = p;
      else if (components.includes(c)) throw missingFile(dir, rel, `${c} at dtype ${dtypes[c]}`);
    }
    const needsTokenizer = components.includes('embed_tokens') || components.includes('decoder_model_merged');
    const tokenizer = join(dir, 'tokenizer.json');
    const tokenizerConfig = join(dir, 'tokenizer_config.json');
    const hasTok = await exists(tokenizer);
    const hasTokCfg = await exists(tokenizerConfig);
    if (needsTokenizer && !hasTok) throw missingFile(dir, 'tokenizer.json', 'required by the language model');
    if (needsTokenizer && !hasTokCfg) throw missingFile(dir, 'tokenizer_config.json', 'required by the language model');
    throwIfAborted(signal);
    const model = new ModelFolder({
      dir,
      config,
      preprocess,
      generationConfig: rawGen as Record<string, unknown> | undefined,
      files: {
        config: join(dir, 'config.json'),
        preprocessorConfig: join(dir, 'preprocessor_config.json'),
        generationConfig: rawGen === undefined ? undefined : join(dir, 'generation_config.json'),
        tokenizer: hasTok ? tokenizer : undefined,
        tokenizerConfig: hasTokCfg ? tokenizerConfig : undefined,
        components: componentFiles,
      },
      dtypes,
      options,
    });
    try {
      if (components.includes('vision_encoder')) await model.#openVision(options.warmUp ?? true, signal);
      else if (components.length) await model.session(components[0], { signal });
    } catch (e) {
      await model.close();
      throw e;
    }
    return model;
  }

  /** Prefer `ModelFolder.load`; the constructor only stores what load resolved. */
  constructor(resolved: Resolved) {
    this.dir = resolved.dir;
    this.config = resolved.config;
    this.preprocess = resolved.preprocess;
    this.generationConfig = resolved.generationConfig;
    this.files = resolved.files;
    this.dtypes = resolved.dtypes;
    this.#options = resolved.options;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The provider the sessions run on; known once the first session is open (always, after load). */
  get executionProvider(): ExecutionProviderName {
    return this.#provider ?? 'cpu';
  }

  /** Why that provider: e.g. "auto: CUDA unavailable (…), using cpu". */
  get executionProviderReason(): string {
    return this.#providerReason;
  }

  get vision(): VisionEncoderInfo {
    if (!this.#vision) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'this model was loaded without its vision encoder');
    return this.#vision.info;
  }

  /**
   * The created session of one component, opened and validated on first call and shared after.
   * The LLM stage gets embed_tokens / decoder_model_merged through here.
   */
  session(component: ModelComponent, opts: { signal?: AbortSignal } = {}): Promise<ComponentSession> {
    if (this.closed) return Promise.reject(new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} is closed`));
    let p = this.#sessions.get(component);
    if (!p) {
      p = this.#create(component);
      this.#sessions.set(component, p);
      // A failed open must not stay cached: the next call retries (e.g. after fixing a file).
      p.catch(() => {
        if (this.#sessions.get(component) === p) this.#sessions.delete(component);
      });
    }
    const signal = opts.signal;
    if (!signal) return p;
    throwIfAborted(signal);
    // Aborting the wait does not abort the creation: other callers may be waiting for it too.
    return new Promise<ComponentSession>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      p!.then(
        (s) => {
          signal.removeEventListener('abort', onAbort);
          resolve(s);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  async #create(component: ModelComponent): Promise<ComponentSession> {
    const file = this.files.components[component];
    if (!file) {
      const rel = `onnx/${component}${DTYPE_SUFFIX[this.dtypes[component]]}.onnx`;
      throw missingFile(this.dir, rel, `${component} at dtype ${this.dtypes[component]}`);
    }
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      ...(this.#options.intraOpThreads !== undefined ? { intraOpNumThreads: this.#options.intraOpThreads } : {}),
      ...(this.#options.interOpThreads !== undefined ? { interOpNumThreads: this.#options.interOpThreads } : {}),
    };
    const { session, provider } = await this.#createWithProvider(file, base);
    if (this.closed) {
      await session.release();
      throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} closed while opening ${component}`);
    }
    const inputs = specsOf(session, 'input');
    const outputs = specsOf(session, 'output');
    try {
      validateContract(component, file, inputs, outputs);
    } catch (e) {
      await session.release();
      throw e;
    }
    return { component, file, dtype: this.dtypes[component], session, executionProvider: provider, inputs, outputs };
  }

  async #createWithProvider(
    file: string,
    base: ort.InferenceSession.SessionOptions,
  ): Promise<{ session: ort.InferenceSession; provider: ExecutionProviderName }> {
    const wanted = this.#options.executionProvider ?? 'auto';
    // Once decided, every component uses the same provider.
    const provider = this.#provider ?? (wanted === 'cpu' ? 'cpu' : undefined);
    if (provider === 'cpu') {
      if (!this.#provider) {
        this.#provider = 'cpu';
        this.#providerReason = 'cpu (requested)';
      }
      return { session: await this.#createSession(file, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
    }
    if (provider === 'cuda') return { session: await this.#createSession(file, { ...base, executionProviders: ['cuda'] }), provider: 'cuda' };
    const installed = cudaProviderInstalled();
    if (wanted === 'cuda' && installed === false) {
      throw new WinnowError('WINNOW_ERR_EXECUTION_PROVIDER', 'the CUDA execution provider is unavailable: onnxruntime-node has no CUDA provider library installed', {
        details: { requested: 'cuda', file },
      });
    }
    if (wanted === 'auto' && installed === false) {
      this.#provider = 'cpu';
      this.#providerReason = 'cpu (auto: CUDA unavailable: onnxruntime-node has no CUDA provider library installed)';
      return { session: await this.#createSession(file, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
    }
    try {
      // Log level 4 (fatal only): a missing CUDA library is an expected outcome under 'auto'.
      const session = await ort.InferenceSession.create(file, {
        ...base,
        executionProviders: ['cuda'],
        ...(wanted === 'auto' ? { logSeverityLevel: 4 as const } : {}),
      });
      this.#provider = 'cuda';
      this.#providerReason = `cuda (${wanted === 'auto' ? 'auto: CUDA available' : 'requested'})`;
      return { session, provider: 'cuda' };
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      if (wanted === 'cuda') {
        throw new WinnowError('WINNOW_ERR_EXECUTION_PROVIDER', `the CUDA execution provider is unavailable: ${why}`, {
          cause: e,
          details: { requested: 'cuda', file },
        });
      }
      this.#provider = 'cpu';
      this.#providerReason = `cpu (auto: CUDA unavailable: ${why})`;
      return { session: await this.#createSession(file, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
    }
  }

  async #createSession(file: string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
    try {
      return await ort.InferenceSession.create(file, options);
    } catch (e) {
      // A weights file (`*.onnx_data`) the model refers to is missing: name it, as for any missing file.
      const missing = /External data path does not exist: "([^"]+)"/.exec(e instanceof Error ? e.message : '');
      if (missing) {
        throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `${file} keeps its weights in ${missing[1]}, which does not exist`, {
          cause: e,
          details: { file: missing[1], model: file },
        });
      }
      // onnxruntime reports both unreadable and malformed models this way.
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `onnxruntime cannot load ${file}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
        details: { file },
      });
    }
  }

  async #openVision(warmUp: boolean, signal?: AbortSignal): Promise<void> {
    const component = await this.session('vision_encoder', { signal });
    const px = component.inputs.get('pixel_values')!;
    const feats = component.outputs.get('image_features')!;
    const plan = this.preprocess;
    const h = staticDim(px, 2);
    const w = staticDim(px, 3);
    if ((h !== undefined && h !== plan.outHeight) || (w !== undefined && w !== plan.outWidth)) {
      throw contractError(
        'vision_encoder',
        component.file,
        `pixel_values takes ${h ?? '?'}×${w ?? '?'} but preprocessor_config.json produces ${plan.outHeight}×${plan.outWidth}`,
        { shape: px.shape },
      );
    }
    const dimStatic = staticDim(feats, 2);
    if (dimStatic !== undefined && this.config.hiddenSize !== undefined && dimStatic !== this.config.hiddenSize) {
      throw contractError('vision_encoder', component.file, `image_features width ${dimStatic} ≠ text_config.hidden_size ${this.config.hiddenSize}`, {
        shape: feats.shape,
      });
    }
    const info: VisionEncoderInfo = {
      inputType: px.type === 'float16' ? 'float16' : 'float32',
      imageHeight: plan.outHeight,
      imageWidth: plan.outWidth,
      numTokens: staticDim(feats, 1) ?? 0,
      dim: dimStatic ?? this.config.hiddenSize ?? 0,
      gridH: 0,
      gridW: 0,
      hasClsSimilarity: component.outputs.has('cls_similarity'),
      hasPatchClasses: component.outputs.has('patch_classes'),
    };
    if (this.config.winnow.temporalIdentity && !info.hasPatchClasses) {
      throw contractError('vision_encoder', component.file, 'config.json declares winnow.temporal_identity but the encoder has no patch_classes output');
    }
    this.#vision = { component, info };
    if (warmUp || info.numTokens === 0 || info.dim === 0) {
      // The warm-up doubles as the shape probe when the metadata leaves N or D symbolic.
      const out = await this.runVision(new Float32Array(3 * plan.outHeight * plan.outWidth), 1, signal);
      info.numTokens = out.features[0].length / (info.dim || 1);
      if (!info.dim) {
        throw contractError('vision_encoder', component.file, 'cannot tell the token width: image_features has a symbolic last dim and config.json has no text_config.hidden_size');
      }
    }
    const grid = tokenGrid(info.numTokens, this.config, { height: plan.outHeight, width: plan.outWidth });
    if (!grid) {
      throw contractError('vision_encoder', component.file, `${info.numTokens} tokens do not form a grid (vision_config image_size/patch_size missing or inconsistent)`);
    }
    info.gridH = grid.gridH;
    info.gridW = grid.gridW;
  }

  /**
   * Runs the vision encoder on `batch` images laid out [batch, 3, H, W] at the start of
   * `pixels`. Every onnxruntime tensor is disposed before this resolves or rejects; the
   * returned arrays are copies the caller owns.
   */
  async runVision(pixels: Float32Array, batch: number, signal?: AbortSignal): Promise<VisionOutput> {
    throwIfAborted(signal);
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', `model ${this.dir} is closed`);
    const v = this.#vision;
    if (!v) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'this model was loaded without its vision encoder');
    const { imageHeight: H, imageWidth: W, inputType } = v.info;
    const n = batch * 3 * H * W;
    if (batch < 1 || pixels.length < n) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `pixel buffer holds ${pixels.length} floats, ${batch} images need ${n}`);
    }
    const view = pixels.length === n ? pixels : pixels.subarray(0, n);
    const input =
      inputType === 'float16'
        ? new ort.Tensor('float16', toF16(view), [batch, 3, H, W])
        : new ort.Tensor('float32', view, [batch, 3, H, W]);
    const run = v.component.session.run({ pixel_values: input });
    this.#inflight.add(run);
    let results: ort.InferenceSession.OnnxValueMapType | undefined;
    try {
      results = await run;
    } catch (e) {
      throw toWinnowError(e, 'WINNOW_ERR_INFERENCE');
    } finally {
      this.#inflight.delete(run);
      input.dispose();
    }
    try {
      throwIfAborted(signal);
      const feats = results.image_features;
      if (!feats || feats.dims.length !== 3 || feats.dims[0] !== batch) {
        throw contractError('vision_encoder', v.component.file, `image_features came back as [${feats?.dims.join(',') ?? ''}], expected [${batch},N,D]`);
      }
      const per = feats.dims[1] * feats.dims[2];
      if (v.info.dim && feats.dims[2] !== v.info.dim) {
        throw contractError('vision_encoder', v.component.file, `image_features width ${feats.dims[2]}, expected ${v.info.dim}`);
      }
      const features: Float32Array[] = [];
      for (let b = 0; b < batch; b++) features.push(toF32Slice(feats.data, b * per, (b + 1) * per));
      // Per-token outputs ([B,N]), split per image.
      const nTok = feats.dims[1];
      const perToken = <T>(name: string, slice: (data: ort.Tensor['data'], from: number, to: number) => T): T[] | undefined => {
        const t = results![name];
        if (!t) return undefined;
        if (t.dims.length !== 2 || t.dims[0] !== batch || t.dims[1] !== nTok) {
          throw contractError('vision_encoder', v.component.file, `${name} came back as [${t.dims.join(',')}], expected [${batch},${nTok}]`);
        }
        return Array.from({ length: batch }, (_, b) => slice(t.data, b * nTok, (b + 1) * nTok));
      };
      const clsSimilarity = perToken('cls_similarity', toF32Slice);
      const patchClasses = perToken('patch_classes', toI32Slice);
      return { features, clsSimilarity, patchClasses };
    } finally {
      for (const t of Object.values(results)) t.dispose();
    }
  }

  /** Number of vision-encoder runs in progress (0 after close resolves). */
  get inflightRuns(): number {
    return this.#inflight.size;
  }

  /**
   * Waits for running inferences, then releases every session. Idempotent: later calls
   * return the same promise.
   */
  close(): Promise<void> {
    if (!this.#closing) this.#closing = this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
    const opened = await Promise.allSettled([...this.#sessions.values()]);
    this.#sessions.clear();
    this.#vision = undefined;
    await Promise.allSettled(opened.map((r) => (r.status === 'fulfilled' ? r.value.session.release() : undefined)));
  }
}

/** Class ids of data[from..to): int64 outputs arrive as a BigInt64Array; the ids are small. */
function toI32Slice(data: ort.Tensor['data'], from: number, to: number): Int32Array {
  const src = data as ArrayLike<number | bigint>;
  const out = new Int32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = Number(src[i]);
  return out;
}

/** Same as `ModelFolder.load`. */
export function loadModel(dir: string, options: LoadModelOptions = {}): Promise<ModelFolder> {
  return ModelFolder.load(dir, options);
}
