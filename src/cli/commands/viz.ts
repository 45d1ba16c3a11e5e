// `winnow viz SOURCE --out kept.png`: which visual tokens survive pruning, as a picture. A still
// image gives one frame with its token grid (pruned tokens dimmed) and a kept/total caption; a
// video gives a contact sheet of sampled frames, encoded in video mode (pooled grid) exactly as
// `winnow ask` would feed them to the LLM.
import { writeFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { codebookCheckOption, numberInArg, similarityArg, type EncoderCheckPolicy, reportCommandError } from './options.js';
import { WinnowError, throwIfAborted } from '../../errors.js';
import { STRATEGY_NAMES, type StrategyName } from '../../prune/types.js';

export interface VizOptions {
  out: string;
  strategy?: StrategyName;
  tau?: number;
  ratio?: number;
  temporal?: number;
  model?: string;
  codebook?: string;
  /** A codebook built for another vision encoder: 'error' (default), 'warn' (logged) or 'off'. */
  codebookCheck?: EncoderCheckPolicy;
  /** Frames on a video's contact sheet. Default 8. */
  frames?: number;
  /** Tiles per row. Default 4. */
  columns?: number;
  threads?: number;
}

export interface VizResult {
  out: string;
  width: number;
  height: number;
  frames: number;
  kept: number;
  total: number;
  strategy: StrategyName;
  isVideo: boolean;
}

/** Renders the picture; the CLI action and tests call this. */
export async function runViz(source: string, opts: VizOptions, io: { signal?: AbortSignal; log?: (line: string) => void } = {}): Promise<VizResult> {
  const { signal } = io;
  const log = io.log ?? (() => undefined);
  const [{ encode }, viz, ingest, rx, { VisionRuntime, describeNoCodebook }] = await Promise.all([
    import('../../encode/index.js'),
    import('../../encode/viz.js'),
    import('../../ingest/index.js'),
    import('rxjs'),
    import('../../runtime/index.js'),
  ]);

  const closers: Array<() => Promise<void>> = [];
  try {
    // Probe first: a missing or unreadable source should fail before a model is loaded.
    const probe = await ingest.probe(source, { signal });
    const runtime = await VisionRuntime.loadVision({
      ...(opts.model ? { model: opts.model } : {}),
      ...(opts.codebook ? { codebook: opts.codebook } : {}),
      codebookCheck: opts.codebookCheck,
      onWarning: (e) => log(`warning: ${e.message}`),
      ...(opts.threads ? { threads: opts.threads } : {}),
      signal,
    });
    closers.push(() => runtime.close());
    const model = runtime.folder;
    log(`model ${model.dir} on ${runtime.executionProviderReason}`);
    // Without a codebook, a picture with nothing pruned says little: fall back to a strategy that
    // needs none, the [CLS] baseline when the encoder provides it, else uniform spatial pooling.
    const fallback: StrategyName = model.vision.hasClsSimilarity ? 'cls' : 'pool';
    if (runtime.noCodebookReason && !opts.strategy) log(`note: ${describeNoCodebook(runtime.noCodebookReason)}; showing strategy ${fallback}`);
    const pruner = runtime.createPruner({
      strategy: opts.strategy ?? (runtime.codebook ? undefined : fallback),
      tau: opts.tau,
      ratio: opts.ratio,
      temporal: opts.temporal,
    });
    closers.unshift(() => pruner.close());

    const isVideo = !probe.isStill;
    const wanted = isVideo ? (opts.frames ?? 8) : 1;
    // Sample `wanted` frames spread over the video (native size: the picture shows the source
    // at display resolution; preprocessing for the model happens in encode).
    const fps = isVideo && probe.durationMs ? Math.min(probe.fps ?? 30, (wanted * 1000) / probe.durationMs) : 1;
    const frames = await rx.lastValueFrom(ingest.openVideo(source, { fps, maxFrames: wanted, signal }).pipe(rx.toArray()));
    throwIfAborted(signal);
    if (!frames.length) throw new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `${source} gave no frames`);
    const encoded = await rx.lastValueFrom(
      rx.from(frames).pipe(encode(model, { batchSize: 4, video: isVideo, sourceId: 'viz', maxQueuedFrames: Math.max(64, frames.length), signal }), rx.toArray()),
    );
    const plan = model.preprocess;
    const scale = isVideo ? Math.max(1, Math.round(viz.defaultDisplayScale(plan) / 2)) : viz.defaultDisplayScale(plan);
    const tiles = [];
    let kept = 0;
    let total = 0;
    for (const e of encoded) {
      const p = await pruner.prune(e, signal); // in order: temporal pruning compares with the previous frame
      kept += p.kept.length;
      total += e.numTokens;
      const pct = ((100 * p.kept.length) / e.numTokens).toFixed(1);
      const caption = isVideo
        ? [`t=${(e.frame.ptsMs / 1000).toFixed(1)}s  kept ${p.kept.length}/${e.numTokens} (${pct} %)`]
        : [`kept ${p.kept.length}/${e.numTokens} tokens (${pct} %)`, `${pruner.strategy} · grid ${e.gridH}×${e.gridW} · ${source.split('/').pop()}`];
      tiles.push(await viz.renderTokenTile(e.frame, plan, { gridH: e.gridH, gridW: e.gridW, kept: p.kept }, { displayScale: scale, caption }));
    }
    const image = isVideo
      ? await viz.contactSheet(tiles, {
          columns: opts.columns ?? 4,
          title: `${source.split('/').pop()} · ${pruner.strategy} · kept ${kept}/${total} tokens (${((100 * kept) / total).toFixed(1)} %) over ${encoded.length} frames`,
        })
      : tiles[0];
    const png = await viz.encodePng(image);
    try {
      await writeFile(opts.out, png);
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_IO', `cannot write ${opts.out}`, { cause: e, details: { file: opts.out } });
    }
    return { out: opts.out, width: image.width, height: image.height, frames: encoded.length, kept, total, strategy: pruner.strategy, isVideo };
  } finally {
    for (const c of closers) await c().catch(() => undefined);
  }
}

export function registerViz(program: Command): void {
  program
    .command('viz')
    .description('draw the token grid over a frame with pruned tokens dimmed (a contact sheet for videos)')
    .argument('<source>', 'image or video file, URL or device')
    .requiredOption('--out <file>', 'PNG to write')
    .addOption(new Option('--strategy <s>', "pruning strategy (default: the codebook's; without one: cls, else pool)").choices(STRATEGY_NAMES))
    .option('--tau <t>', 'similarity threshold for --strategy threshold', similarityArg('--tau'))
    .option('--ratio <r>', 'kept fraction for ratio-based strategies', numberInArg('--ratio', 0, 1))
    .option('--temporal <tau>', 'also drop tokens this similar to the same place in the last kept frame', similarityArg('--temporal'))
    .option('--model <dir>', 'model folder (default: the bundled models/winnow-tiny)')
    .option('--codebook <file>', "codebook .safetensors or .pt (default: the bundled model's, when present)")
    .addOption(codebookCheckOption())
    .option('--frames <n>', 'frames on a video contact sheet', numberInArg('--frames', 1, 64, { integer: true }), 8)
    .option('--columns <n>', 'tiles per row on a contact sheet', numberInArg('--columns', 1, 16, { integer: true }), 4)
    .option('--threads <n>', 'onnxruntime intra-op threads', numberInArg('--threads', 1, 256, { integer: true }))
    .action(async (source: string, opts: VizOptions) => {
      const ac = new AbortController();
      const onSigint = (): void => ac.abort(new Error('SIGINT'));
      process.once('SIGINT', onSigint);
      try {
        const r = await runViz(source, opts, { signal: ac.signal, log: (line) => process.stderr.write(`${line}\n`) });
        process.stdout.write(
          `${r.out}: ${r.width}×${r.height}, ${r.frames} frame${r.frames === 1 ? '' : 's'}, kept ${r.kept}/${r.total} tokens (${r.strategy})\n`,
        );
      } catch (e) {
        reportCommandError('viz', e);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
