// `winnow ask SOURCE QUESTION...`: decode, encode, prune and prefill every sampled frame into one
// video context, then answer each question from it (the last frame is "now").
import { Command, Option } from 'commander';
import { codebookCheckOption, numberInArg, positiveIntArg, positiveNumberArg, similarityArg, type EncoderCheckPolicy, reportCommandError } from './options.js';
import { WinnowError } from '../../errors.js';
import type { VideoSource } from '../../ingest/types.js';
import type { SourcePolicy } from '../../ingest/confine.js';
import { STRATEGY_NAMES, type StrategyName } from '../../prune/types.js';
import type { Pruner } from '../../prune/index.js';
import type { WinnowRuntime } from '../../runtime/index.js';


export interface AskCommandOptions {
  fps: number;
  /** Stop after this many frames (live sources run until then, or until `io.stop`). */
  maxFrames?: number;
  /** ffmpeg input format (`-f`), e.g. for stdin or a non-v4l2 device. */
  inputFormat?: string;
  /** Default: the codebook's; without a codebook, none. */
  strategy?: StrategyName;
  tau?: number;
  ratio?: number;
  temporal?: number;
  /** Model folder. Default: the bundled one (see the runtime's resolveModel). */
  model?: string;
  /** Default: the bundled codebook with the bundled model; with `model` and no codebook, none. */
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

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * `winnow ask` on the shared runtime, loaded once so that many sources can be asked about
 * (evaluations, tools) without reloading. Each `run` gets a fresh video context and fresh
 * temporal-pruning state.
 */
export class AskPipeline {
  private closed = false;

  private constructor(
    readonly runtime: WinnowRuntime,
    readonly pruner: Pruner,
    readonly opts: AskCommandOptions,
  ) {}

  static async load(opts: AskCommandOptions, io: Pick<AskIo, 'log' | 'signal'>): Promise<AskPipeline> {
    const { WinnowRuntime } = await import('../../runtime/index.js');
    const runtime = await WinnowRuntime.load({
      ...(opts.model ? { model: opts.model } : {}),
      ...(opts.codebook ? { codebook: opts.codebook } : {}),
      codebookCheck: opts.codebookCheck,
      onWarning: (e) => io.log(`warning: ${e.message}`),
      log: io.log,
      threads: opts.threads,
      executionProvider: opts.executionProvider ?? 'auto',
      signal: io.signal,
    });
    // Say where the model runs when it is not the plain CPU default (a GPU, or an explicit request).
    if (runtime.folder.executionProvider !== 'cpu' || opts.executionProvider === 'cpu' || opts.executionProvider === 'cuda') io.log(`model on ${runtime.executionProviderReason}`);
    try {
      const pruner = runtime.createPruner({ strategy: opts.strategy, tau: opts.tau, ratio: opts.ratio, temporal: opts.temporal });
      return new AskPipeline(runtime, pruner, opts);
    } catch (e) {
      await runtime.close();
      throw e;
    }
  }

  /** Decodes, encodes, prunes and appends every sampled frame of `source`, then answers `questions`. */
  async run(named: VideoSource, questions: readonly string[], io: AskIo): Promise<AskAnswer[]> {
    if (this.closed) throw new WinnowError('WINNOW_ERR_SESSION_CLOSED', 'the ask pipeline is closed');
    const { signal } = io;
    const { opts, runtime } = this;
    const ingest = await import('../../ingest/index.js');
    // Under a policy the probe and the decode both get the confined source, never the given string.
    const policy = opts.sourcePolicy;
    const source: VideoSource =
      policy && typeof named === 'string' ? await policy.confine(ingest.isUrlString(named) ? { url: named } : { path: named }, signal) : named;
    const ctx = runtime.lm.createContext(opts.maxContextTokens ? { maxContextTokens: opts.maxContextTokens } : {});
    try {
      ctx.on('evicted', (e) => {
        io.log(`note: context full, evicted ${e.frames} oldest frames (${e.tokens} tokens); oldest kept t=${Math.floor((e.oldestPtsMs ?? 0) / 1000)}s`);
      });
      // Probing would consume a stream and block on a device: only files and URLs are probed.
      const probe = typeof source === 'string' || ingest.isConfinedSource(source) ? await ingest.probe(source, { signal, inputFormat: opts.inputFormat }).catch(() => null) : null;
      const isStill = probe?.isStill ?? false;
      const expectedFrames = probe?.durationMs ? Math.max(1, Math.floor((probe.durationMs / 1000) * opts.fps)) : isStill ? 1 : 0;
      const bar = io.progress ? await makeBar(expectedFrames) : null;
      // Progress shows every token seen; the answers report the frames still in context (ctx.stats).
      let keptSoFar = 0;
      let totalSoFar = 0;
      let prefill: { frames: number; prefillMs: number };
      try {
        prefill = await runtime.prefill(source, ctx, this.pruner, {
          fps: opts.fps,
          isStill,
          ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
          ...(opts.inputFormat ? { inputFormat: opts.inputFormat } : {}),
          ...(policy ? { policy } : {}),
          ...(opts.maxInputPixels ? { maxInputPixels: opts.maxInputPixels } : {}),
          ...(io.stop ? { stop: io.stop } : {}),
          signal,
          onFrame: (pf, frames) => {
            keptSoFar += pf.stats.kept;
            totalSoFar += pf.stats.total;
            bar?.update(frames, { kept: keptSoFar, total: totalSoFar });
            io.onFrame?.(frames, pf.stats.kept, pf.stats.total);
          },
        });
      } finally {
        bar?.stop();
      }
      if (prefill.frames === 0) throw new WinnowError('WINNOW_ERR_NOT_A_VIDEO', `no frame could be read from ${typeof named === 'string' ? named : 'the source'}`);
      const { visualTokens: keptTokens, visualTokensTotal: totalTokens } = ctx.stats;
      const answers: AskAnswer[] = [];
      for (const question of questions) {
        const r = await ctx.ask(question, { signal, maxNewTokens: opts.maxNewTokens, onText: io.onText });
        const a: AskAnswer = {
          question,
          answer: r.text.trim(),
          keptTokens,
          totalTokens,
          frames: prefill.frames,
          ttftMs: round1(r.ttftMs),
          prefillMs: round1(prefill.prefillMs),
          questionPrefillMs: round1(r.prefillMs),
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
    await this.runtime.close();
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
    .option('--fps <n>', 'frames per second to sample', positiveNumberArg('--fps'), 1)
    .option('--max-frames <n>', 'stop reading after this many frames (live sources: else until Ctrl-C)', positiveIntArg('--max-frames'))
    .option('--input-format <fmt>', 'ffmpeg input format (stdin, or a device that is not v4l2)')
    .addOption(new Option('--strategy <s>', 'pruning strategy (default: the codebook\'s)').choices(STRATEGY_NAMES))
    .addOption(new Option('--tau <t>', 'similarity threshold for --strategy threshold').argParser(similarityArg('--tau')).conflicts('ratio'))
    .addOption(new Option('--ratio <r>', 'kept fraction for ratio-based strategies').argParser(numberInArg('--ratio', 0, 1)))
    .option('--temporal <tau>', 'also drop tokens at least this similar to the last kept token at the same place', similarityArg('--temporal'))
    .option('--model <dir>', 'model folder (default: the bundled models/winnow-tiny)')
    .option('--codebook <file>', 'codebook .safetensors or .pt (default: the bundled model\'s)')
    .addOption(codebookCheckOption())
    .option('--max-new-tokens <n>', 'longest answer in tokens (default: the model\'s generation_config)', positiveIntArg('--max-new-tokens'))
    .option('--max-context-tokens <n>', 'KV-cache budget; the oldest frames are evicted beyond it', positiveIntArg('--max-context-tokens'))
    .option('--threads <n>', 'onnxruntime threads per session', positiveIntArg('--threads'))
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
        reportCommandError('ask', e);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
