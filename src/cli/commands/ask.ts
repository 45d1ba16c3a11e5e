// `winnow ask SOURCE QUESTION...`: decode, encode, prune and prefill every sampled frame into one
// video context, then answer each question from it (the last frame is "now").
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { codebookCheckOption, type EncoderCheckPolicy } from './options.js';
import { WinnowError, isWinnowError } from '../../errors.js';
import type { VideoSource } from '../../ingest/types.js';
import type { SourcePolicy } from '../../ingest/confine.js';

import { packageRoot } from '../../package-root.js';
export { packageRoot };

export const DEFAULT_MODEL_DIR = 'models/winnow-tiny';
export const DEFAULT_CODEBOOK = 'codebooks/winnow-tiny.safetensors';

export interface AskCommandOptions {
  fps: number;
  /** Stop after this many frames (live sources run until then, or until `io.stop`). */
  maxFrames?: number;
  /** ffmpeg input format (`-f`), e.g. for stdin or a non-v4l2 device. */
  inputFormat?: string;
  strategy?: string;
  tau?: number;
  ratio?: number;
  temporal?: number;
  model?: string;
  codebook?: string;
  /** When the codebook was built for another vision encoder: 'error' (default), 'warn' or 'off'. */
  codebookCheck?: EncoderCheckPolicy;
  json?: boolean;
  maxNewTokens?: number;
  maxContextTokens?: number;
  threads?: number;
  executionProvider?: 'cpu' | 'cuda' | 'auto';
  progress?: boolean;
  /**
   * Library callers that pass on a source someone else named: the same confinement as `winnow serve`
   * (roots, URL schemes, playlists; see ingest's SourcePolicy). Default none: the caller is trusted.
   */
  sourcePolicy?: SourcePolicy;
  /** Largest decoded picture, pixels (ffmpeg `max_pixels`). Default: openVideo's (8192²). */
  maxInputPixels?: number;
}

export interface AskAnswer {
  question: string;
  answer: string;
  /** Visual tokens fed to the LLM (after pruning) for the frames in context. */
  keptTokens: number;
  /** Visual tokens the encoder produced (after video pooling, before pruning) for the same frames. */
  totalTokens: number;
  /** Frames decoded and processed. */
  frames: number;
  /** From the question to its first answer token. */
  ttftMs: number;
  /** LLM time spent prefilling the video (all frames). */
  prefillMs: number;
  /** LLM time spent prefilling the question. */
  questionPrefillMs: number;
  /** Frames evicted from the context to stay within its budget. */
  evictedFrames: number;
}

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

function unitInterval(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < -1 || n > 1) throw new InvalidArgumentError(`${name} must be a number in [-1, 1]`);
    return n;
  };
}

export interface AskIo {
  log: (line: string) => void;
  /** Stop reading the source and answer from the frames seen so far (e.g. Ctrl-C on a live stream). */
  stop?: AbortSignal;
  /** Called after each frame is in the context (count so far, that frame's kept / total tokens). */
  onFrame?: (frames: number, kept: number, total: number) => void;
  onAnswer?: (a: AskAnswer) => void;
  onText?: (delta: string) => void;
  signal?: AbortSignal;
  progress?: boolean;
}

type ModelFolderT = import('../../encode/model-folder.js').ModelFolder;
type LanguageModelT = import('../../llm/model.js').LanguageModel;
type PrunerT = import('../../prune/pruner.js').Pruner;

/**
 * The `winnow ask` pipeline with its model, language model and pruner loaded once, so that many
 * sources can be asked about (evaluations, tools) without reloading. Each `run` gets a fresh
 * video context and fresh temporal-pruning state.
 */
export class AskPipeline {
  private closed = false;

  private constructor(
    readonly folder: ModelFolderT,
    readonly lm: LanguageModelT,
    readonly pruner: PrunerT,
    readonly opts: AskCommandOptions,
  ) {}

  static async load(opts: AskCommandOptions, io: Pick<AskIo, 'log' | 'signal'>): Promise<AskPipeline> {
    const { signal } = io;
    const root = packageRoot();
    const modelDir = opts.model ? resolve(opts.model) : join(root, DEFAULT_MODEL_DIR);
    let codebook = opts.codebook ? resolve(opts.codebook) : undefined;
    let strategy = opts.strategy;
    const { Pruner } = await import('../../prune/pruner.js');
    const { CODEBOOK_STRATEGIES } = await import('../../prune/types.js');
    if (!codebook && !opts.model) {
      const def = join(root, DEFAULT_CODEBOOK);
      if (existsSync(def)) codebook = def;
      else if (strategy === undefined || CODEBOOK_STRATEGIES.has(strategy as never)) {
        if (strategy !== undefined) {
          throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `strategy ${strategy} needs a codebook and ${DEFAULT_CODEBOOK} is not installed; pass --codebook`);
        }
        io.log(`note: ${DEFAULT_CODEBOOK} is not installed; running without pruning (strategy none)`);
        strategy = 'none';
      }
    }
    if (!codebook && strategy === undefined) strategy = 'none';
    const { ModelFolder } = await import('../../encode/model-folder.js');
    const { LanguageModel } = await import('../../llm/model.js');
    const folder = await ModelFolder.load(modelDir, { signal, executionProvider: opts.executionProvider ?? 'auto', ...(opts.threads ? { intraOpThreads: opts.threads } : {}) });
    // Say where the model runs when it is not the plain CPU default (a GPU, or an explicit request).
    if (folder.executionProvider !== 'cpu' || opts.executionProvider === 'cpu' || opts.executionProvider === 'cuda') io.log(`model on ${folder.executionProviderReason}`);
    let lm: LanguageModelT | undefined;
    try {
      lm = await LanguageModel.fromModelFolder(folder, { signal });
      const pruner = await Pruner.load({
        codebook,
        strategy: strategy as never,
        tau: opts.tau,
        ratio: opts.ratio,
        temporal: opts.temporal !== undefined ? { tau: opts.temporal } : undefined,
        visionEncoderPath: folder.files.components.vision_encoder,
        encoderCheck: opts.codebookCheck,
        onWarning: (e) => io.log(`warning: ${e.message}`),
        signal,
      });
      return new AskPipeline(folder, lm, pruner, opts);
    } catch (e) {
      await lm?.close();
      await folder.close();
      throw e;
    }
  }

  /** Decodes, encodes, prunes and appends every sampled frame of `source`, then answers `questions`. */
  async run(named: VideoSource, questions: readonly string[], io: AskIo): Promise<AskAnswer[]> {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the ask pipeline is closed');
    const { signal } = io;
    const { opts, folder, pruner } = this;
    const { encode } = await import('../../encode/encode.js');
    const { prune } = await import('../../prune/pruner.js');
    const ingest = await import('../../ingest/index.js');
    // Under a policy the probe and the decode both get the confined source, never the given string.
    const policy = opts.sourcePolicy;
    const source: VideoSource =
      policy && typeof named === 'string' ? await policy.confine(ingest.isUrlString(named) ? { url: named } : { path: named }, signal) : named;
    const rx = await import('rxjs');
    pruner.resetSource();
    const ctx = this.lm.createContext(opts.maxContextTokens ? { maxContextTokens: opts.maxContextTokens } : {});
    try {
      // In-context accounting per frame, so that evicted frames leave the totals.
      const window: { kept: number; total: number }[] = [];
      ctx.on('evicted', (e) => {
        window.splice(0, e.frames);
        io.log(`note: context full, evicted ${e.frames} oldest frames (${e.tokens} tokens); oldest kept t=${Math.floor((e.oldestPtsMs ?? 0) / 1000)}s`);
      });
      // Probing would consume a stream and block on a device: only files and URLs are probed.
      const probe = typeof source === 'string' || ingest.isConfinedSource(source) ? await ingest.probe(source, { signal, inputFormat: opts.inputFormat }).catch(() => null) : null;
      const isStill = probe?.isStill ?? false;
      const pre = folder.preprocess;
      // Let ffmpeg do the model's fit-and-pad resize (the same filter the training data went through).
      const size = pre.pad === 'fit' && pre.resize?.kind === 'exact' ? { width: pre.resize.width, height: pre.resize.height } : undefined;
      const expectedFrames = probe?.durationMs ? Math.max(1, Math.floor((probe.durationMs / 1000) * opts.fps)) : isStill ? 1 : 0;
      const bar = io.progress ? await makeBar(expectedFrames) : null;
      let frames = 0;
      let prefillMs = 0;
      let keptSoFar = 0;
      let totalSoFar = 0;
      const ack$ = new rx.Subject<void>();
      const stop$ = io.stop ? (io.stop.aborted ? rx.of(true) : rx.fromEvent(io.stop, 'abort')) : rx.NEVER;
      const frames$ = ingest
        .openVideo(source, {
          fps: opts.fps,
          ...(size ? { size, resize: 'pad' as const } : {}),
          ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
          ...(opts.inputFormat ? { inputFormat: opts.inputFormat } : {}),
          ...(policy ? { policy } : {}),
          ...(opts.maxInputPixels ? { maxInputPixels: opts.maxInputPixels } : {}),
          ack$,
          maxInFlightFrames: 8,
          signal,
        })
        .pipe(
          // Stopping ends the source (ffmpeg is killed by the teardown); frames already decoded still count.
          rx.takeUntil(stop$),
          encode(folder, { video: !isStill, signal }),
          prune(pruner, { signal }),
          rx.concatMap(async (pf) => {
            const r = await ctx.appendFrame(pf, { signal });
            prefillMs += r.prefillMs;
            frames++;
            window.push({ kept: pf.kept.length, total: pf.gridH * pf.gridW });
            keptSoFar += pf.kept.length;
            totalSoFar += pf.gridH * pf.gridW;
            bar?.update(frames, { kept: keptSoFar, total: totalSoFar });
            io.onFrame?.(frames, pf.kept.length, pf.gridH * pf.gridW);
            ack$.next();
            return frames;
          }),
          // Frames still in the encoder when the stop comes are not added either.
          rx.takeUntil(stop$),
        );
      try {
        await rx.lastValueFrom(frames$, { defaultValue: 0 });
      } finally {
        bar?.stop();
      }
      if (frames === 0) throw new WinnowError('WINNOW_ERR_NOT_A_VIDEO', `no frame could be read from ${source}`);
      let keptTokens = 0;
      let totalTokens = 0;
      for (const w of window) {
        keptTokens += w.kept;
        totalTokens += w.total;
      }
      const answers: AskAnswer[] = [];
      for (const question of questions) {
        const r = await ctx.ask(question, { signal, maxNewTokens: opts.maxNewTokens, onText: io.onText });
        const a: AskAnswer = {
          question,
          answer: r.text.trim(),
          keptTokens,
          totalTokens,
          frames,
          ttftMs: Math.round(r.ttftMs * 10) / 10,
          prefillMs: Math.round(prefillMs * 10) / 10,
          questionPrefillMs: Math.round(r.prefillMs * 10) / 10,
          evictedFrames: ctx.stats.evictedFrames,
        };
        answers.push(a);
        io.onAnswer?.(a);
      }
      return answers;
    } finally {
      await ctx.close();
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pruner.close().catch(() => undefined);
    await this.lm.close().catch(() => undefined);
    await this.folder.close();
  }
}

/**
 * Runs the whole pipeline for one source and answers `questions`: the library form of
 * `winnow ask`; `io.log` gets human-readable notes.
 */
export async function runAsk(source: VideoSource, questions: readonly string[], opts: AskCommandOptions, io: AskIo): Promise<AskAnswer[]> {
  const pipeline = await AskPipeline.load(opts, io);
  try {
    return await pipeline.run(source, questions, io);
  } finally {
    await pipeline.close();
  }
}

async function makeBar(total: number): Promise<{ update: (n: number, p: { kept: number; total: number }) => void; stop: () => void }> {
  const { default: cliProgress } = await import('cli-progress');
  const known = total > 0;
  const bar = new cliProgress.SingleBar(
    {
      format: known
        ? 'frames {bar} {value}/{total} | kept {kept}/{tokens} tokens | {eta_formatted}'
        : 'frames {value} | kept {kept}/{tokens} tokens',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(known ? total : 0, 0, { kept: 0, tokens: 0 });
  return {
    update: (n, p) => {
      if (known && n > bar.getTotal()) bar.setTotal(n);
      bar.update(n, { kept: p.kept, tokens: p.total });
    },
    stop: () => bar.stop(),
  };
}

/** `-` is stdin; `/dev/videoN` is a capture device; everything else is a path or URL (as `winnow frames`). */
function toSource(arg: string, inputFormat: string | undefined): VideoSource {
  if (arg === '-') return process.stdin;
  if (/^\/dev\/video\d+$/.test(arg)) return inputFormat ? { device: arg, format: inputFormat } : { device: arg };
  return arg;
}

export function registerAsk(program: Command): void {
  program
    .command('ask')
    .description('answer questions about a video, image, stream or device (the last frame is "now")')
    .argument('<source>', 'video file, image, http(s)/rtsp/rtmp/srt URL, /dev/videoN, or - for stdin')
    .argument('<questions...>', 'one or more questions, each answered from the same video context')
    .option('--fps <n>', 'frames per second to sample', positiveNumber('--fps'), 1)
    .option('--max-frames <n>', 'stop reading after this many frames (live sources: else until Ctrl-C)', positiveInt('--max-frames'))
    .option('--input-format <fmt>', 'ffmpeg input format (stdin, or a device that is not v4l2)')
    .addOption(new Option('--strategy <s>', 'pruning strategy (default: the codebook\'s)').choices(['threshold', 'ratio', 'double-softmax', 'random', 'pool', 'cls', 'none']))
    .addOption(new Option('--tau <t>', 'similarity threshold for --strategy threshold').argParser(unitInterval('--tau')).conflicts('ratio'))
    .addOption(new Option('--ratio <r>', 'kept fraction for ratio-based strategies').argParser(unitInterval('--ratio')))
    .option('--temporal <tau>', 'also drop tokens at least this similar to the last kept token at the same place', unitInterval('--temporal'))
    .option('--model <dir>', 'model folder (default: the bundled models/winnow-tiny)')
    .option('--codebook <file>', 'codebook .safetensors or .pt (default: the bundled model\'s)')
    .addOption(codebookCheckOption())
    .option('--max-new-tokens <n>', 'longest answer in tokens (default: the model\'s generation_config)', positiveInt('--max-new-tokens'))
    .option('--max-context-tokens <n>', 'KV-cache budget; the oldest frames are evicted beyond it', positiveInt('--max-context-tokens'))
    .option('--threads <n>', 'onnxruntime threads per session', positiveInt('--threads'))
    .addOption(new Option('--execution-provider <ep>', 'where the model runs: cuda fails if onnxruntime cannot create it; auto (default) falls back to cpu').choices(['cpu', 'cuda', 'auto']))
    .option('--json', 'one JSON line per question')
    .option('--no-progress', 'no progress bar even on a terminal')
    .action(async (source: string, questions: string[], opts: AskCommandOptions) => {
      const ac = new AbortController();
      const stop = new AbortController();
      // First Ctrl-C: stop watching and answer from what was seen; second: abort.
      const onSigint = (): void => {
        if (!stop.signal.aborted) {
          stop.abort();
          process.stderr.write('\nstopping the source; answering from the frames seen so far (Ctrl-C again to abort)\n');
        } else ac.abort(new Error('SIGINT'));
      };
      process.on('SIGINT', onSigint);
      try {
        await runAsk(toSource(source, opts.inputFormat), questions, opts, {
          signal: ac.signal,
          stop: stop.signal,
          progress: opts.progress !== false && process.stderr.isTTY === true,
          log: (line) => process.stderr.write(`${line}\n`),
          onAnswer: (a) => process.stdout.write(opts.json ? `${JSON.stringify(a)}\n` : `${a.answer}\n`),
        });
      } catch (e) {
        const err = isWinnowError(e) ? e : new WinnowError('WINNOW_ERR_INTERNAL', (e as Error)?.message ?? String(e), { cause: e });
        process.stderr.write(`winnow ask: ${err.message} (${err.code})\n`);
        process.exitCode = err.code === 'WINNOW_ERR_INVALID_ARGUMENT' ? 2 : 1;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
