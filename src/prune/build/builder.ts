// `winnow codebook build` as a library: images → projected tokens → the reference's token
// experiments → low-information tokens → per-image and global DPC-KNN → a safetensors codebook.
// Work is checkpointed per image in a work dir, so a killed build resumes where it stopped and
// ends with the same codebook an uninterrupted one would.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { lastValueFrom, of } from 'rxjs';
import { WinnowError, throwIfAborted } from '../../errors.js';
import { ModelFolder, encode, offlineDecodeResize } from '../../encode/index.js';
import type * as ort from 'onnxruntime-node';
import { TextTokenizer, languageModelConfig, readDecoderContract } from '../../llm/index.js';
import type { DecoderContract, LanguageModelConfig } from '../../llm/index.js';
import { saveCodebook, sha256File, type Codebook } from '../codebook.js';
import { renderAnalysis } from './analyze.js';
import { measureImage, sequencesPerImage, type ExperimentOptions } from './experiments.js';
import { BatchedForward, buildLayout, type ForwardStats, type PromptLayout } from './forward.js';
import { DEFAULT_MERGE_COSINE, mergeNearDuplicates } from './merge.js';
import { lowInformation, quantiles, selectImageTokens, selectPrototypes, weightedJsd, type GlobalSelection, type SelectionOptions } from './select.js';
import { planSource } from './sources.js';
import { WorkDir, type ImageRecord } from './workdir.js';

/** Every constant of the method, with the reference's values (LLaVA-1.5) as defaults. */
export interface CodebookBuildParameters extends ExperimentOptions, SelectionOptions {
  /** Prompt the experiments run under; default: the model's caption prompt. */
  prompt: string;
  /** Pad token whose input embedding replaces ablated tokens; default: the model's pad_token_id. */
  padTokenId: number;
  /** Text before the visual tokens; default: the model's frame marker at t = 0. */
  frameMarker: string;
}

export const REFERENCE_PARAMETERS = {
  singleRepeat: 1,
  singleTopK: 50,
  jsdTopK: 10,
  window: 3,
  kCtx: 1,
  kGlob: 16,
  tauJsd: 2e-3,
  tauP: 0.15,
  imageClusters: 8,
  clusterSizeThreshold: 8,
  globalClusters: 64,
  minDistinctImages: 64,
  knn: 5,
  seed: 0,
} as const;

/** Batch budget: sequences and tokens per decoder call. Not part of the result, so not in the manifest. */
export const DEFAULT_BATCH = { maxBatchSequences: 64, maxBatchTokens: 8192 } as const;

export interface BuildProgress {
  imagesDone: number;
  /** Total images when known. */
  imagesTotal: number | null;
  /** Images already done by an earlier run of the same build. */
  imagesResumed: number;
  /** Visual tokens analysed per second in this run. */
  tokensPerSecond: number;
  /** Estimated time left, ms (null when the total is unknown). */
  etaMs: number | null;
  currentId: string | null;
}

export interface CodebookBuildOptions extends Partial<CodebookBuildParameters> {
  model: string;
  /** Image directory, image file or video. */
  images: string;
  out: string;
  /** Work dir; default `<out>.work`. */
  work?: string;
  /** Frames per second for a video source. Default 1. */
  fps?: number;
  maxImages?: number;
  /** Folder for per-image heat maps. */
  analyze?: string;
  /** Stored dtype. Default F16. */
  dtype?: 'F16' | 'F32';
  /**
   * Last step, not in the reference: merge prototypes whose cosine similarity to an earlier kept
   * one is ≥ this (greedy, in prototype order; the kept row is a real token). null keeps every
   * member of every kept cluster, as the reference does. Default DEFAULT_MERGE_COSINE (0.99).
   * Applied after the selection, so `selectOnly` can retry it cheaply.
   */
  mergeCosine?: number | null;
  /** Inference defaults written into the codebook. Default threshold, τ = 0.45 (the reference's LLaVA-1.5 value). */
  inferenceTau?: number;
  threads?: number;
  /** Overwrite `out` if it exists. */
  force?: boolean;
  /**
   * Only redo steps 4-6 from what the work dir holds (e.g. to try other selection constants while
   * a long build is stopped); no image is read or analysed.
   */
  selectOnly?: boolean;
  onProgress?: (p: BuildProgress) => void;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Distributions {
  topProb: Record<string, number>;
  jsdWeighted: Record<string, number>;
  jsdCtx: Record<string, number>;
  jsdGlob: Record<string, number>;
  /** Fractions of tokens under each threshold and under both. */
  belowTauP: number;
  belowTauJsd: number;
  lowInfo: number;
}

export interface CodebookBuildResult {
  out: string;
  work: string;
  /** Prototypes written (after merging near-duplicates). */
  prototypes: number;
  /** Members of the kept global clusters, before merging. */
  unmergedPrototypes: number;
  /** The merge threshold applied, null when off. */
  mergeCosine: number | null;
  dim: number;
  images: number;
  imagesResumed: number;
  tokens: number;
  lowInfoTokens: number;
  selectedTokens: number;
  distributions: Distributions;
  clusters: GlobalSelection['clusters'];
  parameters: CodebookBuildParameters;
  modelFingerprint: string;
  timings: { totalMs: number; experimentsMs: number; globalClusteringMs: number };
  forward: ForwardStats;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}, got ${v}`);
}

function checkNum(name: string, v: number): void {
  if (!Number.isFinite(v)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be a finite number, got ${v}`);
}

export function summarize(records: readonly ImageRecord[], p: Pick<CodebookBuildParameters, 'kCtx' | 'kGlob' | 'tauP' | 'tauJsd'>): Distributions {
  const top: number[] = [];
  const w: number[] = [];
  const ctx: number[] = [];
  const glob: number[] = [];
  let bp = 0;
  let bj = 0;
  let both = 0;
  for (const r of records) {
    for (let i = 0; i < r.topProb.length; i++) {
      const wj = weightedJsd(r.jsdCtx[i], r.jsdGlob[i], p);
      top.push(r.topProb[i]);
      w.push(wj);
      ctx.push(r.jsdCtx[i]);
      glob.push(r.jsdGlob[i]);
      if (r.topProb[i] < p.tauP) bp++;
      if (wj < p.tauJsd) bj++;
      if (r.topProb[i] < p.tauP && wj < p.tauJsd) both++;
    }
  }
  const n = Math.max(1, top.length);
  return { topProb: quantiles(top), jsdWeighted: quantiles(w), jsdCtx: quantiles(ctx), jsdGlob: quantiles(glob), belowTauP: bp / n, belowTauJsd: bj / n, lowInfo: both / n };
}

export interface ExperimentModel {
  folder: ModelFolder;
  config: LanguageModelConfig;
  tokenizer: TextTokenizer;
  contract: DecoderContract;
  layout: PromptLayout;
  decoder: ort.InferenceSession;
  embed: ort.InferenceSession;
}

/**
 * Opens a model folder for the experiments: vision encoder, embed_tokens, decoder, tokenizer and
 * the prompt layout. The caller closes `folder` (which owns every session).
 */
export async function loadExperimentModel(
  modelDir: string,
  options: { prompt?: string; frameMarker?: string; padTokenId?: number; threads?: number; signal?: AbortSignal } = {},
): Promise<ExperimentModel> {
  const { signal } = options;
  const folder = await ModelFolder.load(modelDir, { executionProvider: 'cpu', signal, ...(options.threads ? { intraOpThreads: options.threads } : {}) });
  try {
    const config = languageModelConfig(folder.config, folder.generationConfig, folder.files.config);
    const tokenizer = await TextTokenizer.load(modelDir);
    const [embed, decoder] = await Promise.all([folder.session('embed_tokens', { signal }), folder.session('decoder_model_merged', { signal })]);
    const contract = readDecoderContract(embed.session, decoder.session, config);
    const prompt = options.prompt ?? config.captionPrompt;
    if (!prompt) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'the model declares no caption prompt (config.json winnow.caption_prompt); pass --prompt');
    const layout = await buildLayout(embed.session, tokenizer, config, { prompt, frameMarker: options.frameMarker, padTokenId: options.padTokenId });
    return { folder, config, tokenizer, contract, layout, decoder: decoder.session, embed: embed.session };
  } catch (e) {
    await folder.close();
    throw e;
  }
}

/** Runs a whole build (or finishes an interrupted one). */
export async function buildCodebook(options: CodebookBuildOptions): Promise<CodebookBuildResult> {
  const t0 = performance.now();
  const { signal } = options;
  const log = options.onLog ?? (() => undefined);
  const out = resolve(options.out);
  if (existsSync(out) && !options.force) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${out} exists (use --force to overwrite)`, { details: { path: out } });
  const modelDir = resolve(options.model);
  const m = await loadExperimentModel(modelDir, options);
  const { folder, contract, layout, decoder } = m;
  let work: WorkDir | null = null;
  try {
    const prompt = layout.prompt;
    const params: CodebookBuildParameters = {
      ...REFERENCE_PARAMETERS,
      ...DEFAULT_BATCH,
      ...Object.fromEntries(Object.entries(options).filter(([k, v]) => v !== undefined && (k in REFERENCE_PARAMETERS || k in DEFAULT_BATCH))),
      prompt,
      padTokenId: layout.padTokenId,
      frameMarker: layout.frameMarker,
    };
    for (const k of ['singleRepeat', 'singleTopK', 'jsdTopK', 'window', 'imageClusters', 'globalClusters', 'knn', 'maxBatchSequences', 'maxBatchTokens'] as const) checkInt(k, params[k], 1);
    for (const k of ['clusterSizeThreshold', 'minDistinctImages', 'seed'] as const) checkInt(k, params[k], 0);
    for (const k of ['kCtx', 'kGlob', 'tauJsd', 'tauP'] as const) checkNum(k, params[k]);
    const inferenceTau = options.inferenceTau ?? 0.45;
    checkNum('inferenceTau', inferenceTau);
    const mergeCosine = options.mergeCosine === undefined ? DEFAULT_MERGE_COSINE : options.mergeCosine;
    if (mergeCosine !== null && !(mergeCosine > 0 && mergeCosine <= 1)) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `mergeCosine must be in (0, 1] or null (off), got ${mergeCosine}`);
    }

    const vision = folder.vision;
    const dim = vision.dim;
    if (dim !== contract.hiddenSize) throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `vision tokens are ${dim}-wide, the decoder takes ${contract.hiddenSize}`);
    const encoderPath = folder.files.components.vision_encoder as string;
    const fingerprint = await sha256File(encoderPath, signal);
    const name = folder.config.raw.name;
    const modelName = typeof name === 'string' ? name : basename(modelDir);

    const size = offlineDecodeResize(folder)?.size;
    const workPath = resolve(options.work ?? `${out}.work`);
    const { maxBatchSequences: _s, maxBatchTokens: _t, ...resultParams } = params;
    // Only what the LLM experiments depend on: the selection constants may change between runs
    // of the same work dir (they are applied at the end, from the stored measures and tokens).
    const key = {
      experiment: {
        prompt: params.prompt,
        padTokenId: params.padTokenId,
        frameMarker: params.frameMarker,
        singleRepeat: params.singleRepeat,
        singleTopK: params.singleTopK,
        jsdTopK: params.jsdTopK,
        window: params.window,
      },
      modelFingerprint: fingerprint,
      source: resolve(options.images),
      fps: options.fps ?? 1,
      maxImages: options.maxImages ?? null,
    };
    work = WorkDir.open(workPath, dim, key);
    const wd = work;
    const resumed = wd.done.length;
    if (resumed > 0) log(`resuming: ${resumed} images already done in ${workPath}`);
    const plan = await planSource(options.images, {
      fps: options.fps,
      maxImages: options.maxImages,
      size,
      signal,
      skip: (id) => wd.has(id) && !(options.analyze && !existsSync(join(options.analyze, analysisName(id)))),
    });
    const fwd = new BatchedForward(decoder, contract, layout);
    if (options.analyze) await mkdir(options.analyze, { recursive: true });

    let index = 0;
    let doneThisRun = 0;
    let tokensThisRun = 0;
    let expMs = 0;
    const tRun = performance.now();
    const report = (currentId: string | null): void => {
      const elapsed = (performance.now() - tRun) / 1000;
      const tps = elapsed > 0 ? tokensThisRun / elapsed : 0;
      const total = plan.total;
      const left = total === null ? null : Math.max(0, total - (resumed + doneThisRun));
      const perImage = doneThisRun > 0 ? (performance.now() - tRun) / doneThisRun : null;
      options.onProgress?.({
        imagesDone: resumed + doneThisRun,
        imagesTotal: total,
        imagesResumed: resumed,
        tokensPerSecond: tps,
        etaMs: left === null || perImage === null ? null : left * perImage,
        currentId,
      });
    };
    report(null);
    if (options.selectOnly && resumed === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `--select-only: the work dir ${workPath} holds no finished image`);
    for await (const img of options.selectOnly ? noImages() : plan.images()) {
      throwIfAborted(signal);
      const i = index++;
      const have = wd.get(img.id);
      if (have) {
        if (img.frame && options.analyze) {
          const sel = imageSelection(have, wd.readImageRows(have), dim, params);
          await writeFile(join(options.analyze, analysisName(img.id)), await renderAnalysis(img.frame, have, sel, params));
        }
        continue;
      }
      if (!img.frame) throw new WinnowError('WINNOW_ERR_INTERNAL', `no pixels for ${img.id}`);
      report(img.id);
      const t1 = performance.now();
      const enc = await lastValueFrom(of(img.frame).pipe(encode(folder, { maxWaitMs: 0, signal })));
      const measures = await measureImage(fwd, enc.tokens, enc.gridH, enc.gridW, params, signal);
      const ms = performance.now() - t1;
      expMs += ms;
      const rec = wd.append(
        { i, id: img.id, gridH: enc.gridH, gridW: enc.gridW, topProb: Array.from(measures.topProb), jsdCtx: Array.from(measures.jsdCtx), jsdGlob: Array.from(measures.jsdGlob), rowCount: enc.numTokens, ms: Math.round(ms) },
        enc.tokens.subarray(0, enc.numTokens * dim),
      );
      if (options.analyze) {
        const sel = imageSelection(rec, enc.tokens, dim, params);
        await writeFile(join(options.analyze, analysisName(img.id)), await renderAnalysis(img.frame, rec, sel, params));
      }
      doneThisRun++;
      tokensThisRun += enc.numTokens;
      report(null);
    }

    // Step 6 over everything the work dir holds (this run's and earlier runs' images alike).
    const records = wd.done;
    if (records.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `no image found in ${options.images}`);
    const t2 = performance.now();
    // Steps 4-5 per image, from the stored measures and tokens, with this run's constants.
    const all = wd.readRows();
    const picked: number[] = [];
    const imageOfRow: string[] = [];
    let lowInfoTokens = 0;
    for (const r of records) {
      const sel = imageSelection(r, all.subarray(r.rowOffset * dim, (r.rowOffset + r.rowCount) * dim), dim, params);
      lowInfoTokens += sel.lowInfo.length;
      for (const t of sel.selected) {
        picked.push(r.rowOffset + t);
        imageOfRow.push(r.id);
      }
    }
    const rows = new Float32Array(picked.length * dim);
    picked.forEach((src, k) => rows.set(all.subarray(src * dim, (src + 1) * dim), k * dim));
    // The global DPC-KNN is quadratic in the token count (tens of minutes for ~50k tokens on 2 cores): say so before it starts.
    log(`global selection: ${picked.length} tokens kept by the per-image clustering (${lowInfoTokens} low-information) from ${records.length} images; DPC-KNN cost grows with the square of the token count`);
    const g = selectPrototypes(rows, picked.length, dim, imageOfRow, params);
    log(`global selection: ${g.rows.length} prototypes in ${((performance.now() - t2) / 1000).toFixed(1)} s`);
    let protoRows = g.rows;
    if (mergeCosine !== null && protoRows.length > 0) {
      const members = new Float32Array(protoRows.length * dim);
      protoRows.forEach((r, k) => members.set(rows.subarray(r * dim, (r + 1) * dim), k * dim));
      const merged = mergeNearDuplicates(members, protoRows.length, dim, mergeCosine, signal);
      protoRows = merged.keep.map((k) => g.rows[k]);
      log(`merged near-duplicate prototypes (cosine ≥ ${mergeCosine}): ${g.rows.length} → ${protoRows.length}`);
    }
    const globalMs = performance.now() - t2;
    const distributions = summarize(records, params);
    const tokens = records.reduce((s, r) => s + r.topProb.length, 0);
    const result: CodebookBuildResult = {
      out,
      work: workPath,
      prototypes: protoRows.length,
      unmergedPrototypes: g.rows.length,
      mergeCosine,
      dim,
      images: records.length,
      imagesResumed: resumed,
      tokens,
      lowInfoTokens,
      selectedTokens: picked.length,
      distributions,
      clusters: g.clusters,
      parameters: params,
      modelFingerprint: fingerprint,
      timings: { totalMs: performance.now() - t0, experimentsMs: expMs, globalClusteringMs: globalMs },
      forward: { ...fwd.stats },
    };
    if (g.rows.length === 0) {
      throw new WinnowError(
        'WINNOW_ERR_NO_PROTOTYPES',
        `no prototypes: ${lowInfoTokens} of ${tokens} tokens were low-information, ${picked.length} survived the per-image rule, and no global cluster spans more than ${params.minDistinctImages} images`,
        { details: { result } },
      );
    }
    const protos = new Float32Array(protoRows.length * dim);
    protoRows.forEach((r, k) => protos.set(rows.subarray(r * dim, (r + 1) * dim), k * dim));
    const codebook: Codebook = {
      prototypes: protos,
      count: protoRows.length,
      dim,
      dtype: options.dtype ?? 'F16',
      model: { name: modelName, llmWidth: dim, visionEncoderSha256: fingerprint },
      defaults: { strategy: 'threshold', tau: inferenceTau },
      build: {
        source: `winnow codebook build from ${basename(resolve(options.images))}`,
        imageCount: records.length,
        parameters: {
          ...resultParams,
          mergeCosine,
          unmergedPrototypes: g.rows.length,
          fps: key.fps,
          maxImages: key.maxImages,
          tokens,
          lowInfoTokens,
          selectedTokens: picked.length,
          sequencesPerImage: sequencesPerImage(records[0].gridH, records[0].gridW, params.window),
        },
        sampleIds: protoRows.map((r) => imageOfRow[r]),
      },
      extraMetadata: {},
    };
    await saveCodebook(out, codebook, { dtype: options.dtype ?? 'F16', signal });
    return result;
  } finally {
    work?.close();
    await folder.close();
  }
}

/** Steps 4-5 for one stored image: its low-information tokens and those the per-image clustering keeps. */
export function imageSelection(rec: ImageRecord, tokens: Float32Array, dim: number, p: SelectionOptions): { lowInfo: number[]; selected: number[] } {
  const lowInfo = lowInformation(rec.topProb, rec.jsdCtx, rec.jsdGlob, p);
  const { selected } = selectImageTokens(tokens, rec.rowCount, dim, lowInfo, rec.i, p);
  return { lowInfo, selected };
}

async function* noImages(): AsyncGenerator<{ id: string; frame: null }, void, void> {
  // Nothing to read in select-only mode.
}

/** File name of an image's analysis picture. */
export function analysisName(id: string): string {
  return `${id.replace(/[^A-Za-z0-9._@-]+/g, '_')}.analysis.png`;
}
