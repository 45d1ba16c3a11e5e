// `winnow eval` as a library call: calibrate the sweeps, run every config on every scene (each
// scene encoded once), aggregate. Long videos are long.ts's.
import { fork } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { throwIfAborted, WinnowError } from '../errors.js';
import type { QuestionFamily } from '../synth/index.js';
import { checkClaims } from './claims.js';
import { calibrate, planConfigs } from './configs.js';
import { Evaluator, selectCheckpoints, type EncodedScene, type EvaluatorLoadOptions } from './evaluator.js';
import type { WorkerMessage, WorkerRequest } from './worker.js';
import { headlineFamilies, selectRows, summarize } from './report.js';
import { RESERVED_SEEDS, loadEvalSet, readTruth } from './set.js';
import { EVAL_STRATEGIES, type EvalPart, type EvalReport, type EvalStrategy, type PartReport, type SceneResult } from './types.js';

// Every claim's budget has its own row (5 % for videos, 15 % for frames; 15 % is also the bundled
// codebook's default ratio): a claim is checked at its own number, not only at the budgets around it.
export const DEFAULT_BUDGETS: readonly number[] = [0.05, 0.1, 0.15, 0.2, 0.5];
export const DEFAULT_FAMILIES: readonly QuestionFamily[] = ['F1', 'F2', 'F3', 'F4', 'V1', 'V2', 'V3'];

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
  saveAnswers?: boolean;
  ffmpegPath?: string;
  /**
   * Processes evaluating scenes side by side (this one included), each with its own model copy.
   * Default 1. Timings are then measured while the others run.
   */
  workers?: number;
}

/** Keeps the loader flags (tsx in development) and drops the rest (e.g. --test). */
function loaderArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (['--import', '--require', '-r', '--loader', '--experimental-loader'].includes(a) && i + 1 < argv.length) out.push(a, argv[++i]);
    else if (/^--(import|require|loader|experimental-loader)=/.test(a)) out.push(a);
  }
  return out;
}

function runWorker(req: WorkerRequest, onScene: (index: number, r: SceneResult) => void, signal?: AbortSignal): Promise<void> {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  const path = fileURLToPath(new URL(`./worker.${ext}`, import.meta.url));
  const child = fork(path, [], { execArgv: loaderArgv(process.execArgv), env: { ...process.env, WINNOW_EVAL_WORKER: '1' }, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const onAbort = (): void => void child.kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  return new Promise<void>((res, rej) => {
    let finished = false;
    let received = 0;
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'scene') {
        received++;
        onScene(m.index, m.result);
      }
      else if (m.type === 'done') finished = true;
      else if (m.type === 'error') rej(new WinnowError(m.code as never, `eval worker: ${m.message}`));
    });
    child.on('error', (e) => rej(new WinnowError('WINNOW_ERR_INTERNAL', `eval worker failed to start: ${e.message}`, { cause: e })));
    child.on('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (finished || (code === 0 && received === req.scenes.length)) res();
      else rej(signal?.aborted ? new WinnowError('WINNOW_ERR_ABORTED', 'aborted') : new WinnowError('WINNOW_ERR_INTERNAL', `eval worker exited with ${code} before finishing`));
    });
    child.send(req);
  });
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
  const workers = options.workers ?? 1;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'workers must be a positive integer');
  const calN = options.calibrationScenes ?? { stills: 16, videos: 4 };
  const notes: string[] = [];
  if (workers > 1) notes.push(`${workers} worker processes evaluated scenes side by side: timings are per process while the others ran.`);

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

    for (const [part, scenes] of [['stills', stills], ['videos', videos]] as const) {
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
      const slots: (SceneResult | undefined)[] = new Array(scenes.length);
      const progress = (): void => {
        done++;
        if (performance.now() - lastLog > 10_000 || done === scenes.length) {
          lastLog = performance.now();
          const el = performance.now() - tp;
          log(`${part}: ${done}/${scenes.length} scenes, ${fmtS(el)} elapsed, ~${fmtS((el / done) * (scenes.length - done))} left`);
        }
      };
      // Scene i goes to worker i mod N; worker 0 is this process (its model is loaded already).
      const children: Promise<void>[] = [];
      // Any failure stops the other workers.
      const partAc = new AbortController();
      const onOuter = (): void => partAc.abort(signal?.reason);
      signal?.addEventListener('abort', onOuter, { once: true });
      // Workers skip the codebook/encoder check: this process made it (and reported any warning) once.
      for (let w = 1; w < workers && w < scenes.length; w++) {
        const mine = scenes.map((scene, index) => ({ index, scene })).filter((x) => x.index % workers === w);
        children.push(
          runWorker(
            { load: { model: options.model, codebook: cb?.path, codebookCheck: 'off', fps: ev.fps, threads: options.threads, randomSeed: ev.randomSeed }, configs, scenes: mine, families: [...families], checkpoints },
            (index, result) => {
              slots[index] = result;
              progress();
            },
            partAc.signal,
          ).catch((e: unknown) => {
            partAc.abort(e);
            throw e;
          }),
        );
      }
      const own = (async () => {
        for (let index = 0; index < scenes.length; index += workers) {
          throwIfAborted(partAc.signal);
          const scene = scenes[index];
          let enc = cached.get(scene.path);
          cached.delete(scene.path);
          if (!enc) {
            enc = await ev.encodeScene(scene, partAc.signal);
            encodeMs += enc.encodeMs;
          }
          const truth = await readTruth(scene);
          const cps = selectCheckpoints(truth.qa, families, enc.isStill ? 1 : checkpoints);
          const configsOut = [];
          for (const c of configs) configsOut.push(await ev.runConfig(enc, cps, c, partAc.signal));
          slots[index] = { scene, encodeMs: enc.encodeMs, configs: configsOut };
          progress();
        }
      })();
      const settled = await Promise.allSettled([own.catch((e: unknown) => { partAc.abort(e); throw e; }), ...children]);
      signal?.removeEventListener('abort', onOuter);
      // The first real failure, not the aborts it caused in the other workers.
      const rejected = settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      const failed = rejected.find((x) => (x.reason as { code?: string })?.code !== 'WINNOW_ERR_ABORTED') ?? rejected[0];
      if (failed) throw failed.reason;
      const partResults = slots.filter((x): x is SceneResult => x !== undefined);
      if (partResults.length !== scenes.length) throw new WinnowError('WINNOW_ERR_INTERNAL', `${scenes.length - partResults.length} ${part} scenes got no result`);
      for (let i = 0; i < partResults.length; i++) if (i % workers !== 0) encodeMs += partResults[i].encodeMs;
      results.push(...partResults);
      const summaries = summarize(part, configs, partResults);
      const rows = selectRows(summaries, strategies, budgets, defaultTau);
      parts.push({ part: part as EvalPart, headlineFamilies: headlineFamilies(part), scenes: scenes.length, configs: summaries, rows, skipped });
    }

    const report: EvalReport = {
      tool: 'winnow eval',
      version: 1,
      createdAt: new Date().toISOString(),
      model: { dir: ev.modelDir, name: typeof ev.runtime.folder.config.raw.name === 'string' ? ev.runtime.folder.config.raw.name : basename(ev.modelDir) },
      codebook: cb
        ? { path: cb.path ?? '', prototypes: cb.count, defaultStrategy: cb.defaults?.strategy ?? null, defaultTau: defaultTau ?? null }
        : null,
      set: { dir: set.dir, seed, stills: stills.length, videos: videos.length, videoDurationsS },
      options: {
        fps: ev.fps,
        budgets,
        strategies,
        families: [...families],
        checkpoints,
        randomSeed: ev.randomSeed,
        threads: options.threads ?? null,
        workers,
        calibrationScenes: calN,
      },
      timing: { wallS: (performance.now() - t0) / 1000, encodeS: encodeMs / 1000 },
      parts,
      notes,
      claims: checkClaims(parts),
      ...(options.saveAnswers ? { scenes: results } : {}),
    };
    return report;
  } finally {
    await ev.close();
  }
}
