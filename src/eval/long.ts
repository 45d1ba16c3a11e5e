// `winnow eval --long`: watch-profile videos (a static camera, rare events, minutes to hours) at
// 1 fps under a KV budget, each streamed once through the shared runtime into two contexts side by
// side — the codebook's default pruning and none — so the video is decoded and encoded once. At
// each checkpoint the ground truth's questions are asked while the contexts hold exactly the frames
// up to it; then streaming goes on (no re-run from the start per checkpoint).
import { resourceUsage } from 'node:process';
import { basename, join } from 'node:path';
import { Subject, concatMap, lastValueFrom } from 'rxjs';
import { WinnowError } from '../errors.js';
import type { VideoContext } from '../llm/index.js';
import type { Pruner } from '../prune/index.js';
import { appendPruned } from '../runtime/index.js';
import { WATCH_CHECKPOINT_FRACTIONS, hmsWithinTolerance, type QaPair } from '../synth/index.js';
import { Evaluator, type AnswerScoring, type EvaluatorLoadOptions } from './evaluator.js';
import { familyScores } from './report.js';
import { DEFAULT_EVAL_SEED, RESERVED_SEEDS, writeWatchVideo } from './set.js';
import type { AnswerRecord, EvalConfig, LongCheckpoint, LongEvalReport, LongRun, LongVideoResult } from './types.js';

export const DEFAULT_LONG_LENGTHS_MIN: readonly number[] = [10, 60, 480];
export const DEFAULT_LONG_VIDEOS = 2;
/** The evaluation sets' seed: watch videos of it are not the busy set's videos (another generator). */
export const DEFAULT_LONG_SEED = DEFAULT_EVAL_SEED;

export interface LongEvalOptions extends EvaluatorLoadOptions {
  /** Video lengths, minutes (the watch profile allows 10 … 480). Default 10, 60, 480. */
  lengthsMin?: readonly number[];
  /** Videos per length. Default 2. */
  videosPerLength?: number;
  seed?: number;
  /** Where the videos are rendered (reused when already there). */
  dir: string;
  /** KV budget of each context. Default 4096 tokens. */
  maxContextTokens?: number;
  /** Question times as fractions of the length. Default WATCH_CHECKPOINT_FRACTIONS (early … end). */
  checkpointFractions?: readonly number[];
  ffmpegPath?: string;
}

/** V4 asks for a time: right within ±2 s however it is spelled, with room for a longer spelling. */
const V4_SCORING: AnswerScoring = { slackTokens: 4, match: (answer, expected) => hmsWithinTolerance(answer, expected) };

const peakRssBytes = (): number => resourceUsage().maxRSS * 1024;

interface Lane {
  label: LongRun['label'];
  config: EvalConfig;
  pruner: Pruner;
  ctx: VideoContext;
  kept: number;
  total: number;
  frames: number;
  workMs: number;
  sinceCheckpoint: { frames: number; workMs: number };
  checkpoints: LongCheckpoint[];
}

async function askCheckpoint(ev: Evaluator, lane: Lane, tMs: number, qa: readonly QaPair[], signal?: AbortSignal): Promise<void> {
  const st = lane.ctx.stats;
  const answers: AnswerRecord[] = [];
  for (const q of qa) answers.push(await ev.ask(lane.ctx, q, signal, q.id === 'V4' ? V4_SCORING : {}));
  const ttfts = answers.map((a) => a.ttftMs);
  lane.checkpoints.push({
    tMs,
    contextTokens: st.tokens,
    visualTokens: st.visualTokens,
    markerTokens: st.tokens - st.visualTokens,
    markerShare: st.tokens ? (st.tokens - st.visualTokens) / st.tokens : 0,
    framesInContext: st.frames,
    evictedFrames: st.evictedFrames,
    kvBytes: st.kvBytes,
    msPerFrame: lane.sinceCheckpoint.frames ? lane.sinceCheckpoint.workMs / lane.sinceCheckpoint.frames : 0,
    meanTtftMs: ttfts.length ? ttfts.reduce((a, b) => a + b, 0) / ttfts.length : NaN,
    rssBytes: process.memoryUsage().rss,
    families: familyScores(answers),
    answers,
  });
  lane.sinceCheckpoint = { frames: 0, workMs: 0 };
}

/** One watch video through both runs. */
async function runWatchVideo(ev: Evaluator, o: LongEvalOptions & { lengthMin: number; index: number; seed: number; maxContextTokens: number; fractions: readonly number[] }): Promise<LongVideoResult> {
  const { signal } = o;
  const durationMs = o.lengthMin * 60_000;
  const t0 = performance.now();
  const { path, truth } = await writeWatchVideo(o.dir, o.seed, o.index, durationMs, o.fractions.map((f) => f * durationMs), { ffmpegPath: o.ffmpegPath, signal });
  const checkpoints = truth.checkpointsMs.map((tMs) => ({ tMs, qa: truth.qa.filter((q) => q.tMs === tMs) }));
  const cb = ev.codebook;
  const defaultConfig: EvalConfig = { id: 'default', strategy: ev.runtime.defaultStrategy as EvalConfig['strategy'], ...(cb?.defaults?.tau !== undefined ? { tau: cb.defaults.tau } : {}) };
  const lanes: Lane[] = [
    { label: 'default' as const, config: defaultConfig, pruner: ev.runtime.createPruner({}) },
    { label: 'none' as const, config: { id: 'none', strategy: 'none' } as EvalConfig, pruner: ev.runtime.createPruner({ strategy: 'none' }) },
  ].map((l) => ({ ...l, ctx: ev.runtime.lm.createContext({ maxContextTokens: o.maxContextTokens }), kept: 0, total: 0, frames: 0, workMs: 0, sinceCheckpoint: { frames: 0, workMs: 0 }, checkpoints: [] }));
  const t1 = performance.now();
  const ack$ = new Subject<void>();
  let ci = 0;
  let frames = 0;
  let lastLog = performance.now();
  // A checkpoint's questions are asked once a frame of a later second arrives (or at the end).
  const askDue = async (nextS: number): Promise<void> => {
    while (ci < checkpoints.length && checkpoints[ci].tMs / 1000 < nextS) {
      for (const lane of lanes) await askCheckpoint(ev, lane, checkpoints[ci].tMs, checkpoints[ci].qa, signal);
      ci++;
    }
  };
  try {
    await lastValueFrom(
      ev.runtime.encodeSource(path, { fps: ev.fps, isStill: false, ack$, signal }).pipe(
        concatMap(async (ef) => {
          await askDue(Math.floor(ef.frame.ptsMs / 1000));
          for (const lane of lanes) {
            const tw = performance.now();
            const pf = await lane.pruner.prune(ef, signal);
            await appendPruned(lane.ctx, pf, signal);
            const ms = performance.now() - tw;
            lane.kept += pf.stats.kept;
            lane.total += pf.stats.total;
            lane.frames++;
            lane.workMs += ms;
            lane.sinceCheckpoint.frames++;
            lane.sinceCheckpoint.workMs += ms;
          }
          frames++;
          if (performance.now() - lastLog > 15_000) {
            lastLog = performance.now();
            o.log?.(`long ${o.lengthMin} min #${o.index}: ${frames} frames, ${((performance.now() - t1) / 1000).toFixed(0)} s`);
          }
          ack$.next();
        }),
      ),
      { defaultValue: undefined },
    );
    await askDue(Infinity);
  } finally {
    for (const l of lanes) {
      await l.ctx.close();
      await l.pruner.close().catch(() => undefined);
    }
  }
  const streamS = (performance.now() - t1) / 1000;
  return {
    lengthMin: o.lengthMin,
    index: o.index,
    path,
    frames,
    wallS: (performance.now() - t0) / 1000,
    realtimeFactor: streamS > 0 ? frames / ev.fps / streamS : 0,
    peakRssBytes: peakRssBytes(),
    runs: lanes.map((l) => ({
      label: l.label,
      config: l.config,
      frames: l.frames,
      keptFraction: l.total ? l.kept / l.total : 0,
      meanKeptPerFrame: l.frames ? l.kept / l.frames : 0,
      msPerFrame: l.frames ? l.workMs / l.frames : 0,
      checkpoints: l.checkpoints,
    })),
  };
}

/** The long-video evaluation as a library call (loads the model, renders what is missing). */
export async function runLongEval(options: LongEvalOptions): Promise<LongEvalReport> {
  const t0 = performance.now();
  const lengthsMin = [...(options.lengthsMin ?? DEFAULT_LONG_LENGTHS_MIN)];
  for (const m of lengthsMin) {
    if (!(Number.isInteger(m) && m >= 10 && m <= 480)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `a watch video lasts 10 … 480 whole minutes, not ${m}`, { details: { lengthMin: m } });
  }
  const videosPerLength = options.videosPerLength ?? DEFAULT_LONG_VIDEOS;
  if (!(Number.isInteger(videosPerLength) && videosPerLength >= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'videos per length must be a positive integer');
  const fractions = [...(options.checkpointFractions ?? WATCH_CHECKPOINT_FRACTIONS)];
  const seed = options.seed ?? DEFAULT_LONG_SEED;
  const maxContextTokens = options.maxContextTokens ?? 4096;
  const ev = await Evaluator.load(options);
  try {
    const videos: LongVideoResult[] = [];
    for (const lengthMin of lengthsMin) {
      for (let index = 0; index < videosPerLength; index++) {
        const r = await runWatchVideo(ev, { ...options, dir: join(options.dir, `${lengthMin}min`), lengthMin, index, seed, maxContextTokens, fractions });
        options.log?.(`long ${lengthMin} min #${index}: ${r.frames} frames in ${r.wallS.toFixed(0)} s (${r.realtimeFactor.toFixed(0)}× real time)`);
        videos.push(r);
      }
    }
    const cb = ev.codebook;
    const name = ev.runtime.folder.config.raw.name;
    return {
      tool: 'winnow eval --long',
      version: 1,
      createdAt: new Date().toISOString(),
      model: { dir: ev.modelDir, name: typeof name === 'string' ? name : basename(ev.modelDir) },
      codebook: cb ? { path: cb.path ?? '', defaultStrategy: cb.defaults?.strategy ?? null, defaultTau: cb.defaults?.tau ?? null } : null,
      options: { lengthsMin, videosPerLength, seed, fps: ev.fps, maxContextTokens, checkpointFractions: fractions },
      wallS: (performance.now() - t0) / 1000,
      videos,
      notes: [
        ...(cb ? [] : ['no codebook: the default run prunes nothing (strategy none), as `winnow ask` would.']),
        ...(RESERVED_SEEDS.has(seed) ? [`WARNING: seed ${seed} was used for ${RESERVED_SEEDS.get(seed)}: these results are not held out.`] : []),
      ],
    };
  } finally {
    await ev.close();
  }
}
