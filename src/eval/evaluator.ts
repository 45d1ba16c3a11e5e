// The evaluator: the `winnow ask` pipeline (same model folder, same ffmpeg fit-and-pad decode, same
// encode operator, same Pruner and VideoContext) run over many scenes and pruning settings. Each
// scene is decoded and encoded ONCE; its EncodedFrames are kept in memory while every config
// prunes them, prefills them into a fresh video context and answers the scene's questions (all
// questions of one moment share that context's video prefix).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Subject, ignoreElements, lastValueFrom, tap } from 'rxjs';
import { AskPipeline, DEFAULT_CODEBOOK, packageRoot } from '../cli/commands/ask.js';
import { encode, type EncodedFrame } from '../encode/index.js';
import { WinnowError, throwIfAborted } from '../errors.js';
import { openVideo, probe } from '../ingest/index.js';
import type { VideoContext } from '../llm/index.js';
import { Pruner, checkCodebookEncoder, createPrototypeIndex, loadCodebook, type EncoderCheckPolicy, type Codebook, type PrototypeIndex, type PrunerOptions } from '../prune/index.js';
import type { QaPair } from '../synth/index.js';
import type { AnswerRecord, EvalConfig, SceneConfigResult, SceneRef } from './types.js';

export interface EvaluatorLoadOptions {
  /** Model folder. Default: the bundled models/winnow-tiny. */
  model?: string;
  /** Codebook (.safetensors / .pt). Default: the bundled model's, when installed and no --model is given. */
  codebook?: string;
  /** A codebook built for another vision encoder: 'error' (default), 'warn' (logged) or 'off'. */
  codebookCheck?: EncoderCheckPolicy;
  /** Frames per second sampled from videos. Default 1. */
  fps?: number;
  /** onnxruntime intra-op threads per session. Default: onnxruntime's choice. */
  threads?: number;
  /** Seed of the `random` strategy. Default 0 (as `winnow ask`). */
  randomSeed?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface EncodedScene {
  scene: SceneRef;
  isStill: boolean;
  frames: EncodedFrame[];
  encodeMs: number;
}

/** Questions grouped by the second they refer to, in time order. */
export interface Checkpoint {
  tMs: number;
  qa: QaPair[];
}

function prunerOptions(c: EvalConfig, randomSeed: number): PrunerOptions {
  switch (c.strategy) {
    case 'none':
      return { strategy: 'none' };
    case 'threshold':
      return { strategy: 'threshold', tau: c.tau };
    case 'temporal':
      return { strategy: 'none', temporal: { tau: c.temporalTau as number } };
    case 'threshold+temporal':
      return { strategy: 'threshold', tau: c.tau, temporal: { tau: c.temporalTau as number } };
    case 'random':
      return { strategy: 'random', ratio: c.ratio, seed: randomSeed };
    default:
      return { strategy: c.strategy, ratio: c.ratio };
  }
}

export class Evaluator {
  private readonly pruners = new Map<string, Pruner>();
  private closed = false;

  private constructor(
    readonly pipeline: AskPipeline,
    readonly codebook: Codebook | null,
    private readonly index: PrototypeIndex | null,
    readonly modelDir: string,
    readonly fps: number,
    readonly randomSeed: number,
  ) {}

  static async load(opts: EvaluatorLoadOptions = {}): Promise<Evaluator> {
    const log = opts.log ?? (() => undefined);
    const root = packageRoot();
    const fps = opts.fps ?? 1;
    // Same resolution rule as `winnow ask`: the bundled codebook goes with the bundled model.
    let codebookPath = opts.codebook ? resolve(opts.codebook) : undefined;
    if (!codebookPath && !opts.model && existsSync(join(root, DEFAULT_CODEBOOK))) codebookPath = join(root, DEFAULT_CODEBOOK);
    const pipeline = await AskPipeline.load({ fps, model: opts.model, strategy: 'none', threads: opts.threads }, { log, signal: opts.signal });
    let codebook: Codebook | null = null;
    let index: PrototypeIndex | null = null;
    try {
      if (codebookPath) {
        codebook = await loadCodebook(codebookPath, { signal: opts.signal });
        const encoderFile = pipeline.folder.files.components.vision_encoder;
        if (encoderFile) await checkCodebookEncoder(codebook, encoderFile, { policy: opts.codebookCheck, onWarning: (e) => log(`warning: ${e.message}`), signal: opts.signal });
        index = await createPrototypeIndex(codebook.prototypes, codebook.count, codebook.dim, { signal: opts.signal });
      } else {
        log('note: no codebook (pass --codebook); codebook strategies are skipped');
      }
    } catch (e) {
      await pipeline.close();
      throw e;
    }
    return new Evaluator(pipeline, codebook, index, opts.model ? resolve(opts.model) : join(root, 'models', 'winnow-tiny'), fps, opts.randomSeed ?? 0);
  }

  /**
   * The pruner of one config, made once and reused for every scene (temporal state is reset per
   * scene). All share one prototype index; with a codebook loaded, every strategy scores against it
   * as `winnow ask` does (scores rank the minKeep fill).
   */
  prunerFor(config: EvalConfig): Pruner {
    let p = this.pruners.get(config.id);
    if (!p) {
      p = new Pruner(this.codebook ?? undefined, this.index ?? undefined, prunerOptions(config, this.randomSeed));
      this.pruners.set(config.id, p);
    }
    return p;
  }

  /** Decodes and encodes a scene exactly as `winnow ask` does (ffmpeg fit-and-pad to the model size, video pooling for videos). */
  async encodeScene(scene: SceneRef, signal?: AbortSignal): Promise<EncodedScene> {
    this.assertOpen();
    const t0 = performance.now();
    const folder = this.pipeline.folder;
    const info = await probe(scene.path, { signal }).catch(() => null);
    const isStill = info?.isStill ?? false;
    const pre = folder.preprocess;
    const size = pre.pad === 'fit' && pre.resize?.kind === 'exact' ? { width: pre.resize.width, height: pre.resize.height } : undefined;
    const ack$ = new Subject<void>();
    const frames: EncodedFrame[] = [];
    await lastValueFrom(
      openVideo(scene.path, { fps: this.fps, ...(size ? { size, resize: 'pad' as const } : {}), ack$, maxInFlightFrames: 8, signal }).pipe(
        encode(folder, { video: !isStill, signal }),
        // Keep the frame first, acknowledge after the emission returns: a synchronous ack of the
        // last frame completes the source re-entrantly, before the value reaches later operators.
        tap((f) => {
          frames.push(f);
          queueMicrotask(() => ack$.next());
        }),
        ignoreElements(),
      ),
      { defaultValue: undefined },
    );
    if (frames.length === 0) throw new WinnowError('WINNOW_ERR_NOT_A_VIDEO', `no frame could be read from ${scene.path}`);
    return { scene, isStill, frames, encodeMs: performance.now() - t0 };
  }

  /** Tokens of an answer as the model would generate it. */
  answerTokens(text: string): number {
    return this.pipeline.lm.tokenizer.encode(text).length;
  }

  /**
   * Prunes the scene's frames with `config`, prefills them one by one into a fresh context and,
   * after the last frame of each checkpoint's second, asks that checkpoint's questions.
   */
  async runConfig(enc: EncodedScene, checkpoints: readonly Checkpoint[], config: EvalConfig, signal?: AbortSignal): Promise<SceneConfigResult> {
    this.assertOpen();
    const pruner = this.prunerFor(config);
    pruner.resetSource();
    const ctx = this.pipeline.lm.createContext(this.pipeline.opts.maxContextTokens ? { maxContextTokens: this.pipeline.opts.maxContextTokens } : {});
    const out: SceneConfigResult = { configId: config.id, frames: 0, keptTokens: 0, totalTokens: 0, prefillMs: 0, pruneMs: 0, answers: [] };
    try {
      let ci = 0;
      const { frames } = enc;
      for (let f = 0; f < frames.length; f++) {
        throwIfAborted(signal);
        const pf = await pruner.prune(frames[f], signal);
        out.keptTokens += pf.stats.kept;
        out.totalTokens += pf.stats.total;
        out.pruneMs += pf.stats.scoreMs;
        const r = await ctx.appendFrame(pf, { signal });
        out.prefillMs += r.prefillMs;
        out.frames++;
        const nextS = f + 1 < frames.length ? Math.floor(frames[f + 1].frame.ptsMs / 1000) : Infinity;
        while (ci < checkpoints.length && checkpoints[ci].tMs / 1000 < nextS) {
          for (const qa of checkpoints[ci].qa) out.answers.push(await this.ask(ctx, qa, signal));
          ci++;
        }
      }
      return out;
    } finally {
      await ctx.close();
    }
  }

  /** One question against the context's current video state (rolled back afterwards by the context). */
  async ask(ctx: VideoContext, qa: QaPair, signal?: AbortSignal): Promise<AnswerRecord> {
    const cap = this.pipeline.lm.config.generation.maxNewTokens ?? 64;
    const maxNewTokens = Math.min(cap, this.answerTokens(qa.answer) + 1);
    const r = await ctx.ask(qa.question, { signal, maxNewTokens });
    const answer = r.text.trim();
    const truncated = r.stopReason === 'max-new-tokens' && maxNewTokens < cap;
    return {
      family: qa.id,
      question: qa.question,
      expected: qa.answer,
      answer,
      truncated,
      correct: !truncated && answer === qa.answer,
      tMs: qa.tMs,
      ttftMs: r.ttftMs,
      decodeTokens: Math.max(0, r.generatedTokens - 1),
      decodeMs: Math.max(0, r.totalMs - r.ttftMs),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the evaluator is closed');
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The per-config pruners share the index; it is closed once, here.
    this.pruners.clear();
    await this.index?.close();
    await this.pipeline.close();
  }
}

/**
 * Groups a scene's questions by time and keeps those of the wanted families at `count` moments
 * spread evenly over the scene, always including the last (a still has one moment).
 */
export function selectCheckpoints(qa: readonly QaPair[], families: ReadonlySet<string>, count: number): Checkpoint[] {
  const byT = new Map<number, QaPair[]>();
  for (const q of qa) {
    if (!families.has(q.id)) continue;
    const list = byT.get(q.tMs) ?? [];
    list.push(q);
    byT.set(q.tMs, list);
  }
  const times = [...byT.keys()].sort((a, b) => a - b);
  if (times.length === 0) return [];
  const n = Math.max(1, Math.min(count, times.length));
  const picked = new Set<number>();
  // k-th of n evenly spaced moments, the last one being the final moment.
  for (let k = 1; k <= n; k++) picked.add(times[Math.round((k * times.length) / n) - 1]);
  return [...picked].sort((a, b) => a - b).map((tMs) => ({ tMs, qa: byT.get(tMs) as QaPair[] }));
}
