// `winnow eval` as a library call: calibrate the sweeps, run every config on every scene (each
// scene encoded once), aggregate, and optionally run the long-video evaluation.
import { basename, join } from 'node:path';
import { throwIfAborted, WinnowError } from '../errors.js';
import type { QuestionFamily } from '../synth/index.js';
import { checkClaims } from './claims.js';
import { calibrate, planConfigs } from './configs.js';
import { Evaluator, selectCheckpoints, type EncodedScene, type EvaluatorLoadOptions } from './evaluator.js';
import { runLongVideo } from './long.js';
import { headlineFamilies, selectRows, summarize } from './report.js';
import { RESERVED_SEEDS, loadEvalSet, readTruth } from './set.js';
import { EVAL_STRATEGIES, type EvalConfig, type EvalPart, type EvalReport, type EvalStrategy, type LongVideoReport, type PartReport, type SceneResult } from './types.js';

export const DEFAULT_BUDGETS: readonly number[] = [0.05, 0.1, 0.2, 0.5];
export const DEFAULT_FAMILIES: readonly QuestionFamily[] = ['F1', 'F2', 'F3', 'F4', 'V1', 'V2', 'V3'];

export interface LongEvalOptions {
  /** Video lengths in minutes, e.g. [10] or [10, 60]. */
  minutes: number[];
  /** Where long videos are rendered (kept for reuse). Default: `<set>/long`. */
  dir?: string;
  /** Default: the set's seed. */
  seed?: number;
  /** KV budget per context. Default 4096 tokens. */
  maxContextTokens?: number;
  /** Moments at which V1–V3 are asked. Default 10. */
  checkpoints?: number;
  /** threshold+temporal setting; default: the videos part's row nearest 5 % kept, else the codebook τ with τt 0.98. */
  tau?: number;
  temporalTau?: number;
}

export interface EvalOptions extends EvaluatorLoadOptions {
  setDir: string;
  strategies?: readonly EvalStrategy[];
  budgets?: readonly number[];
  /** Question families asked. Default F1–F4 and V1–V3 (C1 captions are opt-in). */
  families?: readonly QuestionFamily[];
  /** Moments per video at which its questions are asked (evenly spread, the last included). Default 3. */
  checkpoints?: number;
  /** Scenes per part whose similarities place the τ sweeps. Default 16 stills, 4 videos. */
  calibrationScenes?: { stills: number; videos: number };
  tauSweep?: readonly number[];
  temporalSweep?: readonly number[];
  /** Use at most this many scenes of each part (the first ones). */
  maxStills?: number;
  maxVideos?: number;
  /** Skip the short-scene parts (long-video evaluation only). */
  skipParts?: boolean;
  long?: LongEvalOptions;
  saveAnswers?: boolean;
  ffmpegPath?: string;
}

function fmtS(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export async function runEval(options: EvalOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const log = options.log ?? (() => undefined);
  const { signal } = options;
  const strategies = [...(options.strategies ?? EVAL_STRATEGIES)];
  for (const s of strategies) if (!EVAL_STRATEGIES.includes(s)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown strategy ${s} (known: ${EVAL_STRATEGIES.join(', ')})`);
  const budgets = [...(options.budgets ?? DEFAULT_BUDGETS)];
  for (const b of budgets) if (!(b > 0 && b <= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `budget ${b} is not in (0, 1]`);
  const families = new Set(options.families ?? DEFAULT_FAMILIES);
  const checkpoints = options.checkpoints ?? 3;
  const calN = options.calibrationScenes ?? { stills: 16, videos: 4 };
  const notes: string[] = [];

  const set = await loadEvalSet(options.setDir);
  const stills = set.scenes.filter((s) => s.part === 'stills').slice(0, options.maxStills ?? Infinity);
  const videos = set.scenes.filter((s) => s.part === 'videos').slice(0, options.maxVideos ?? Infinity);
  const firstTruth = await readTruth(set.scenes[0]);
  const seed = set.manifest?.seed ?? firstTruth.seed ?? null;
  if (seed !== null && RESERVED_SEEDS.has(seed)) {
    const why = `evaluation set seed ${seed} was used for ${RESERVED_SEEDS.get(seed)}: these results are not held out`;
    log(`warning: ${why}`);
    notes.push(`WARNING: ${why}.`);
  }
  const videoDurationsS: number[] = [];
  for (const v of videos) videoDurationsS.push(Math.round(((await readTruth(v)) as { scene: { durationMs?: number } }).scene.durationMs ?? 0) / 1000);

  const ev = await Evaluator.load(options);
  try {
    const cb = ev.codebook;
    const defaultTau = cb?.defaults?.tau;
    if (cb && defaultTau === undefined) notes.push('the codebook has no default τ.');
    const results: SceneResult[] = [];
    const parts: PartReport[] = [];
    let encodeMs = 0;
    const scorer = cb ? ev.prunerFor({ id: '__calibration-scores', strategy: 'none' }) : null;

    for (const [part, scenes] of [['stills', options.skipParts ? [] : stills], ['videos', options.skipParts ? [] : videos]] as const) {
      if (scenes.length === 0) continue;
      // Calibration: encode the first scenes once; they stay cached for the main loop.
      const cached = new Map<string, EncodedScene>();
      const calScenes = scenes.slice(0, part === 'stills' ? calN.stills : calN.videos);
      for (const s of calScenes) {
        const enc = await ev.encodeScene(s, signal);
        encodeMs += enc.encodeMs;
        cached.set(s.path, enc);
      }
      const cal = await calibrate(scorer, [...cached.values()], part === 'videos');
      const { configs, skipped } = planConfigs(part, { budgets, strategies, hasCodebook: cb !== null, defaultTau, tauSweep: options.tauSweep, temporalSweep: options.temporalSweep }, cal);
      log(`${part}: ${scenes.length} scenes × ${configs.length} settings (${[...new Set(configs.map((c) => c.strategy))].join(', ')})`);
      const tp = performance.now();
      let lastLog = tp;
      let done = 0;
      const partResults: SceneResult[] = [];
      for (const scene of scenes) {
        throwIfAborted(signal);
        let enc = cached.get(scene.path);
        cached.delete(scene.path);
        if (!enc) {
          enc = await ev.encodeScene(scene, signal);
          encodeMs += enc.encodeMs;
        }
        const truth = await readTruth(scene);
        const cps = selectCheckpoints(truth.qa, families, enc.isStill ? 1 : checkpoints);
        const configsOut = [];
        for (const c of configs) configsOut.push(await ev.runConfig(enc, cps, c, signal));
        const r: SceneResult = { scene, encodeMs: enc.encodeMs, configs: configsOut };
        partResults.push(r);
        done++;
        if (performance.now() - lastLog > 10_000 || done === scenes.length) {
          lastLog = performance.now();
          const el = performance.now() - tp;
          log(`${part}: ${done}/${scenes.length} scenes, ${fmtS(el)} elapsed, ~${fmtS((el / done) * (scenes.length - done))} left`);
        }
      }
      results.push(...partResults);
      const summaries = summarize(part, configs, partResults);
      const rows = selectRows(summaries, strategies, budgets, defaultTau);
      parts.push({ part: part as EvalPart, headlineFamilies: headlineFamilies(part), scenes: scenes.length, configs: summaries, rows, skipped });
    }

    const long: LongVideoReport[] = [];
    if (options.long && options.long.minutes.length) {
      const lo = options.long;
      let pruned: EvalConfig;
      const near5 = parts.find((p) => p.part === 'videos')?.rows.find((r) => r.strategy === 'threshold+temporal' && r.budget === 0.05);
      if (lo.tau !== undefined || lo.temporalTau !== undefined || !near5) {
        const tau = lo.tau ?? defaultTau;
        if (tau === undefined) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'the long-video evaluation needs a codebook τ (pass --long-tau or a codebook with a default τ)');
        const tt = lo.temporalTau ?? 0.98;
        pruned = { id: `threshold+temporal:tau=${tau},tt=${tt}`, strategy: 'threshold+temporal', tau, temporalTau: tt };
      } else {
        pruned = near5.summary.config;
      }
      for (const minutes of lo.minutes) {
        long.push(
          await runLongVideo(ev, {
            minutes,
            dir: lo.dir ?? join(set.dir, 'long'),
            seed: lo.seed ?? seed ?? 4000,
            maxContextTokens: lo.maxContextTokens ?? 4096,
            checkpoints: lo.checkpoints ?? 10,
            pruned,
            ffmpegPath: options.ffmpegPath,
            log,
            signal,
          }),
        );
      }
    }

    const report: EvalReport = {
      tool: 'winnow eval',
      version: 1,
      createdAt: new Date().toISOString(),
      model: { dir: ev.modelDir, name: typeof ev.pipeline.folder.config.raw.name === 'string' ? ev.pipeline.folder.config.raw.name : basename(ev.modelDir) },
      codebook: cb
        ? { path: cb.path ?? '', prototypes: cb.count, defaultStrategy: cb.defaults?.strategy ?? null, defaultTau: defaultTau ?? null }
        : null,
      set: { dir: set.dir, seed, stills: options.skipParts ? 0 : stills.length, videos: options.skipParts ? 0 : videos.length, videoDurationsS: options.skipParts ? [] : videoDurationsS },
      options: {
        fps: ev.fps,
        budgets,
        strategies,
        families: [...families],
        checkpoints,
        randomSeed: ev.randomSeed,
        threads: options.threads ?? null,
        calibrationScenes: calN,
      },
      timing: { wallS: (performance.now() - t0) / 1000, encodeS: encodeMs / 1000 },
      parts,
      long,
      notes,
      claims: checkClaims(parts),
      ...(options.saveAnswers ? { scenes: results } : {}),
    };
    return report;
  } finally {
    await ev.close();
  }
}
