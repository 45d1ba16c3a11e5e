// Long-video evaluation: a 10- or 60-minute rendered video at 1 fps streamed through the pipeline
// under a context budget, once without pruning (which must evict old frames to fit) and once with
// threshold+temporal pruning, side by side: each decoded and encoded frame is pruned by both
// pruners and appended to both contexts, so the video is decoded once and memory stays bounded
// (frames are acknowledged to ffmpeg only after both contexts took them).
import { Subject, concatMap, lastValueFrom } from 'rxjs';
import type { VideoContext } from '../llm/index.js';
import { appendPruned } from '../runtime/index.js';
import type { VideoTruth } from '../synth/index.js';
import { selectCheckpoints, type Evaluator } from './evaluator.js';
import { VIDEO_FAMILIES, familyScores, pooled } from './report.js';
import { readTruth, writeLongVideo } from './set.js';
import type { AnswerRecord, EvalConfig, LongVideoReport, LongVideoRun } from './types.js';

export interface LongVideoOptions {
  minutes: number;
  /** Folder for the rendered video (reused when already there). */
  dir: string;
  seed: number;
  /** KV budget of each context, tokens. */
  maxContextTokens: number;
  /** Moments (evenly spread, the last included) at which V1–V3 are asked. */
  checkpoints: number;
  /** The pruned run's setting. */
  pruned: EvalConfig;
  ffmpegPath?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

interface Lane {
  strategy: LongVideoRun['strategy'];
  config: EvalConfig;
  ctx: VideoContext;
  kept: number;
  total: number;
  prefillMs: number;
  kvMax: number;
  answers: AnswerRecord[];
}

export async function runLongVideo(ev: Evaluator, o: LongVideoOptions): Promise<LongVideoReport> {
  const log = o.log ?? (() => undefined);
  const t0 = performance.now();
  const { path, truthPath } = await writeLongVideo(o.dir, o.seed, o.minutes, { ffmpegPath: o.ffmpegPath, signal: o.signal });
  log(`long video: ${o.minutes} min rendered (${((performance.now() - t0) / 1000).toFixed(0)} s); evaluating none vs ${o.pruned.id}`);
  const truth = (await readTruth({ part: 'videos', path, truthPath, name: 'long' })) as VideoTruth;
  const checkpoints = selectCheckpoints(truth.qa, new Set(VIDEO_FAMILIES), o.checkpoints);
  const noneConfig: EvalConfig = { id: 'none', strategy: 'none' };
  const lanes: Lane[] = [
    { strategy: 'none', config: noneConfig },
    { strategy: o.pruned.strategy, config: o.pruned },
  ].map((l) => ({
    strategy: l.strategy as Lane['strategy'],
    config: l.config,
    ctx: ev.runtime.lm.createContext({ maxContextTokens: o.maxContextTokens }),
    kept: 0,
    total: 0,
    prefillMs: 0,
    kvMax: 0,
    answers: [],
  }));
  const pruners = lanes.map((l) => {
    const p = ev.prunerFor({ ...l.config, id: `long:${l.config.id}` });
    p.resetSource();
    return p;
  });
  const ack$ = new Subject<void>();
  const frameTimes: number[] = [];
  let ci = 0;
  let frames = 0;
  let lastLog = performance.now();
  const expected = Math.floor(o.minutes * 60 * ev.fps);
  try {
    // A checkpoint's questions are asked once a frame of a later second arrives (or at the end).
    const askDue = async (nextS: number): Promise<void> => {
      while (ci < checkpoints.length && checkpoints[ci].tMs / 1000 < nextS) {
        for (const lane of lanes) {
          lane.kvMax = Math.max(lane.kvMax, lane.ctx.stats.kvBytes);
          for (const qa of checkpoints[ci].qa) lane.answers.push(await ev.ask(lane.ctx, qa, o.signal));
        }
        ci++;
      }
    };
    await lastValueFrom(
      ev.runtime.encodeSource(path, { fps: ev.fps, isStill: false, ack$, signal: o.signal }).pipe(
        concatMap(async (ef) => {
          const s = Math.floor(ef.frame.ptsMs / 1000);
          await askDue(s);
          for (let i = 0; i < lanes.length; i++) {
            const pf = await pruners[i].prune(ef, o.signal);
            lanes[i].kept += pf.stats.kept;
            lanes[i].total += pf.stats.total;
            lanes[i].prefillMs += (await appendPruned(lanes[i].ctx, pf, o.signal)).prefillMs;
          }
          frameTimes.push(ef.frame.ptsMs);
          frames++;
          if (performance.now() - lastLog > 15_000) {
            lastLog = performance.now();
            log(`long video ${o.minutes} min: ${frames}/${expected} frames, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
          }
          ack$.next();
        }),
      ),
      { defaultValue: undefined },
    );
    await askDue(Infinity);
    const runs: LongVideoRun[] = lanes.map((l) => {
      const families = familyScores(l.answers);
      const st = l.ctx.stats;
      const ttfts = l.answers.map((a) => a.ttftMs);
      return {
        strategy: l.strategy,
        config: l.config,
        families,
        headline: pooled(families, VIDEO_FAMILIES),
        keptFraction: l.total ? l.kept / l.total : 0,
        meanKeptPerFrame: frames ? l.kept / frames : 0,
        frames,
        evictedFrames: st.evictedFrames,
        framesInContext: st.frames,
        oldestInContextMs: st.frames > 0 ? (frameTimes[frames - st.frames] ?? null) : null,
        kvBytesEnd: st.kvBytes,
        kvBytesMax: Math.max(l.kvMax, st.kvBytes),
        kvReservedBytes: st.kvReservedBytes,
        prefillMsPerFrame: frames ? l.prefillMs / frames : 0,
        meanTtftMs: ttfts.length ? ttfts.reduce((a, b) => a + b, 0) / ttfts.length : NaN,
        answers: l.answers,
      };
    });
    return {
      minutes: o.minutes,
      path,
      seed: o.seed,
      fps: ev.fps,
      maxContextTokens: o.maxContextTokens,
      checkpointsS: checkpoints.map((c) => c.tMs / 1000),
      wallS: (performance.now() - t0) / 1000,
      runs,
    };
  } finally {
    for (const l of lanes) await l.ctx.close();
  }
}
