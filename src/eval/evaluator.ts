// The evaluator: the `winnow ask` pipeline (the shared runtime: same model folder, same ffmpeg
// fit-and-pad decode, same encode operator, same pruners and VideoContext) run over many scenes and
// pruning settings. Each scene is decoded and encoded ONCE; its EncodedFrames are kept in memory
// while every config prunes them, prefills them into a fresh video context and answers the
// scene's questions (all questions of one moment share that context's video prefix).
import { Subject, ignoreElements, lastValueFrom, tap } from 'rxjs';
import type { EncodedFrame } from '../encode/index.js';
import { WinnowError, throwIfAborted } from '../errors.js';
import { probe } from '../ingest/index.js';
import type { VideoContext } from '../llm/index.js';
import type { Codebook, EncoderCheckPolicy, Pruner } from '../prune/index.js';
import { WinnowRuntime, appendPruned, type PrunerSettings } from '../runtime/index.js';
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

function prunerSettings(c: EvalConfig, randomSeed: number): PrunerSettings {
  switch (c.strategy) {
    case 'none':
      return { strategy: 'none' };
    case 'threshold':
      return { strategy: 'threshold', tau: c.tau };
    case 'temporal':
      return { strategy: 'none', temporal: c.temporalTau as number };
    case 'threshold+temporal':
      return { strategy: 'threshold', tau: c.tau, temporal: c.temporalTau as number };
    case 'random':
      return { strategy: 'random', ratio: c.ratio, seed: randomSeed };
    default:
      return { strategy: c.strategy, ratio: c.ratio };
  }
}

/** How an answer is judged when exact match is not the rule (V4 times within a tolerance). */
export interface AnswerScoring {
  /** Tokens allowed beyond the expected answer's length (another spelling of the same time may be longer). */
  slackTokens?: number;
  match?: (answer: string, expected: string) => boolean;
}

export class Evaluator {
  private readonly pruners = new Map<string, Pruner>();
  private closed = false;

  private constructor(
    readonly runtime: WinnowRuntime,
    readonly fps: number,
    readonly randomSeed: number,
  ) {}

  static async load(opts: EvaluatorLoadOptions = {}): Promise<Evaluator> {
    const log = opts.log ?? (() => undefined);
    const runtime = await WinnowRuntime.load({
      ...(opts.model ? { model: opts.model } : {}),
      ...(opts.codebook ? { codebook: opts.codebook } : {}),
      codebookCheck: opts.codebookCheck,
      onWarning: (e) => log(`warning: ${e.message}`),
      log,
      threads: opts.threads,
      signal: opts.signal,
    });
    if (!runtime.codebook) log('note: without a codebook the codebook strategies are skipped');
    return new Evaluator(runtime, opts.fps ?? 1, opts.randomSeed ?? 0);
  }

  /** The codebook every config scores against, when one is loaded (codebook strategies are skipped without). */
  get codebook(): Codebook | null {
    return this.runtime.codebook ?? null;
  }

  get modelDir(): string {
    return this.runtime.folder.dir;
  }

  /**
   * The pruner of one config, made once and reused for every scene (temporal state is reset per
   * scene). All share the runtime's prototype index; with a codebook loaded, every strategy scores
   * against it as `winnow ask` does (scores rank the minKeep fill).
   */
  prunerFor(config: EvalConfig): Pruner {
    let p = this.pruners.get(config.id);
    if (!p) {
      p = this.runtime.createPruner(prunerSettings(config, this.randomSeed));
      this.pruners.set(config.id, p);
    }
    return p;
  }

  /** Decodes and encodes a scene exactly as `winnow ask` does (the runtime's offline decode and encode). */
  async encodeScene(scene: SceneRef, signal?: AbortSignal): Promise<EncodedScene> {
    this.assertOpen();
    const t0 = performance.now();
    const info = await probe(scene.path, { signal }).catch(() => null);
    const isStill = info?.isStill ?? false;
    const ack$ = new Subject<void>();
    const frames: EncodedFrame[] = [];
    await lastValueFrom(
      this.runtime.encodeSource(scene.path, { fps: this.fps, isStill, ack$, signal }).pipe(
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
    return this.runtime.lm.tokenizer.encode(text).length;
  }

  /**
   * Prunes the scene's frames with `config`, prefills them one by one into a fresh context and,
   * after the last frame of each checkpoint's second, asks that checkpoint's questions.
   */
  async runConfig(enc: EncodedScene, checkpoints: readonly Checkpoint[], config: EvalConfig, signal?: AbortSignal): Promise<SceneConfigResult> {
    this.assertOpen();
    const pruner = this.prunerFor(config);
    pruner.resetSource();
    const ctx = this.runtime.lm.createContext();
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
        out.prefillMs += (await appendPruned(ctx, pf, signal)).prefillMs;
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
  async ask(ctx: VideoContext, qa: QaPair, signal?: AbortSignal, scoring: AnswerScoring = {}): Promise<AnswerRecord> {
    const cap = this.runtime.lm.config.generation.maxNewTokens ?? 64;
    const maxNewTokens = Math.min(cap, this.answerTokens(qa.answer) + 1 + (scoring.slackTokens ?? 0));
    const r = await ctx.ask(qa.question, { signal, maxNewTokens });
    const answer = r.text.trim();
    const truncated = r.stopReason === 'max-new-tokens' && maxNewTokens < cap;
    return {
      family: qa.id,
      question: qa.question,
      expected: qa.answer,
      answer,
      truncated,
      correct: !truncated && (scoring.match ? scoring.match(answer, qa.answer) : answer === qa.answer),
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
    await Promise.all([...this.pruners.values()].map((p) => p.close().catch(() => undefined)));
    this.pruners.clear();
    await this.runtime.close();
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
