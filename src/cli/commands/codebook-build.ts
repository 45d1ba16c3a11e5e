// `winnow codebook build`: the paper's redundancy analysis over a folder of images (or a video)
// and the codebook it yields. A long job: progress bar, resumable work dir, Ctrl-C safe.
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { isWinnowError, toWinnowError } from '../../errors.js';
import { codebookGroup } from './codebook.js';
import { intAtLeastArg, numberArg } from './options.js';

interface BuildFlags {
  model?: string;
  images: string;
  out: string;
  work?: string;
  fps?: number;
  maxImages?: number;
  prompt?: string;
  analyze?: string;
  singleRepeat?: number;
  singleTopK?: number;
  jsdTopK?: number;
  window?: number;
  kCtx?: number;
  kGlob?: number;
  tauJsd?: number;
  tauP?: number;
  imageClusters?: number;
  clusterSize?: number;
  globalClusters?: number;
  minImages?: number;
  knn?: number;
  seed?: number;
  padTokenId?: number;
  frameMarker?: string;
  batch?: number;
  batchTokens?: number;
  inferenceTau?: number;
  mergeCosine?: number | null;
  dtype: string;
  threads?: number;
  force?: boolean;
  selectOnly?: boolean;
  json?: boolean;
  progress: boolean;
}

function fmtMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '--:--';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function registerCodebookBuild(program: Command): void {
  codebookGroup(program)
    .command('build')
    .description("Build a codebook of redundancy prototypes for a model by asking its language model which visual tokens carry no information (METHOD.md, 'Building a codebook')")
    .option('--model <dir>', 'model folder (default: the bundled models/winnow-tiny)')
    .requiredOption('--images <dir|file>', 'folder of images (sorted by name), one image, or a video')
    .requiredOption('--out <file>', 'output .safetensors codebook')
    .option('--work <dir>', 'resumable work dir (default: <out>.work); rerun the same command to continue')
    .option('--fps <n>', 'frames per second sampled from a video', numberArg('--fps'))
    .option('--max-images <n>', 'use at most this many images', intAtLeastArg('--max-images', 1))
    .option('--prompt <text>', "prompt of the experiments (default: the model's caption prompt)")
    .option('--analyze <dir>', 'write a PNG per image: top probability and JSD heat maps, selected tokens outlined')
    .option('--single-repeat <n>', 'copies of the token in the single-input experiment (reference: 1)', intAtLeastArg('--single-repeat', 1))
    .option('--single-top-k <n>', 'logits softmaxed for the top probability (reference: 50)', intAtLeastArg('--single-top-k', 1))
    .option('--jsd-top-k <n>', "vocabulary entries compared by the JSD, the unablated run's top ones (reference: 10)", intAtLeastArg('--jsd-top-k', 1))
    .option('--window <n>', 'neighbourhood side for leave-one-out (reference: 3)', intAtLeastArg('--window', 1))
    .option('--k-ctx <k>', 'weight of the context-level JSD (reference: 1)', numberArg('--k-ctx'))
    .option('--k-glob <k>', 'weight of the global-level JSD (reference: 16)', numberArg('--k-glob'))
    .option('--tau-jsd <t>', 'low-information iff weighted JSD < this (reference: 2e-3; 1.8e-3 for OV)', numberArg('--tau-jsd'))
    .option('--tau-p <p>', '… and top probability < this (reference: 0.15 / 0.10 / 0.08 for LLaVA-1.5 / NeXT / OV)', numberArg('--tau-p'))
    .option('--image-clusters <n>', 'per-image DPC-KNN clusters (reference: 8)', intAtLeastArg('--image-clusters', 1))
    .option('--cluster-size <n>', 'per-image clusters of at most this many tokens contribute (reference: 8; 3 for OV)', intAtLeastArg('--cluster-size', 0))
    .option('--global-clusters <n>', 'global DPC-KNN clusters (reference: 64; 24 for OV)', intAtLeastArg('--global-clusters', 1))
    .option('--min-images <n>', 'a global cluster is kept iff it spans more than this many images (reference: 64; 16 for OV)', intAtLeastArg('--min-images', 0))
    .option('--knn <k>', 'DPC-KNN neighbours for the density (reference: 5)', intAtLeastArg('--knn', 1))
    .option('--seed <n>', "seed of DPC-KNN's tie-breaking noise", intAtLeastArg('--seed', 0))
    .option('--pad-token-id <id>', "token whose embedding replaces ablated tokens (default: the model's pad_token_id)", intAtLeastArg('--pad-token-id', 0))
    .option('--frame-marker <text>', "text before the visual tokens (default: the model's frame marker at t=0; '' for none)")
    .option('--batch <n>', 'sequences per decoder call (1 = one at a time)', intAtLeastArg('--batch', 1))
    .option('--batch-tokens <n>', 'tokens per decoder call', intAtLeastArg('--batch-tokens', 1))
    .option('--inference-tau <t>', 'default τ written into the codebook for threshold pruning', numberArg('--inference-tau'))
    .option(
      '--merge-cosine <c>',
      "merge prototypes whose cosine similarity to an earlier kept one is ≥ c, in (0, 1]; 'off' keeps every cluster member as the reference does (default: 0.99)",
      (v: string): number | null => {
        if (v === 'off') return null;
        const n = Number(v);
        if (!(n > 0 && n <= 1)) throw new InvalidArgumentError("--merge-cosine must be in (0, 1] or 'off'");
        return n;
      },
    )
    .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(['f16', 'f32']).default('f16'))
    .option('--threads <n>', 'onnxruntime threads', intAtLeastArg('--threads', 1))
    .option('--force', 'overwrite --out if it exists')
    .option('--select-only', 'redo only the selection steps (4-6) from the work dir, reading no further image')
    .option('--json', 'print the result as one JSON line')
    .option('--no-progress', 'no progress bar')
    .action(async (flags: BuildFlags) => {
      const { buildCodebook } = await import('../../prune/build/index.js');
      const { resolveModelDir } = await import('../../runtime/defaults.js');
      const ac = new AbortController();
      const onSigint = (): void => ac.abort();
      process.once('SIGINT', onSigint);
      const showBar = flags.progress && process.stderr.isTTY;
      let bar: import('cli-progress').SingleBar | null = null;
      try {
        if (showBar) {
          const { default: cliProgress } = await import('cli-progress');
          bar = new cliProgress.SingleBar(
            { format: 'images {bar} {value}/{total} | {tps} tokens/s | ETA {eta2} {id}', stream: process.stderr, hideCursor: true, clearOnComplete: true },
            cliProgress.Presets.shades_classic,
          );
        }
        let started = false;
        const result = await buildCodebook({
          model: resolveModelDir(flags.model),
          images: flags.images,
          out: flags.out,
          work: flags.work,
          fps: flags.fps,
          maxImages: flags.maxImages,
          prompt: flags.prompt,
          analyze: flags.analyze,
          singleRepeat: flags.singleRepeat,
          singleTopK: flags.singleTopK,
          jsdTopK: flags.jsdTopK,
          window: flags.window,
          kCtx: flags.kCtx,
          kGlob: flags.kGlob,
          tauJsd: flags.tauJsd,
          tauP: flags.tauP,
          imageClusters: flags.imageClusters,
          clusterSizeThreshold: flags.clusterSize,
          globalClusters: flags.globalClusters,
          minDistinctImages: flags.minImages,
          knn: flags.knn,
          seed: flags.seed,
          padTokenId: flags.padTokenId,
          frameMarker: flags.frameMarker,
          maxBatchSequences: flags.batch,
          maxBatchTokens: flags.batchTokens,
          inferenceTau: flags.inferenceTau,
          mergeCosine: flags.mergeCosine,
          dtype: flags.dtype === 'f32' ? 'F32' : 'F16',
          threads: flags.threads,
          force: flags.force,
          selectOnly: flags.selectOnly,
          signal: ac.signal,
          onLog: (line) => process.stderr.write(`${line}\n`),
          onProgress: (p) => {
            if (!bar) return;
            const payload = { tps: p.tokensPerSecond.toFixed(0), eta2: fmtMs(p.etaMs), id: p.currentId ?? '' };
            if (!started) {
              bar.start(p.imagesTotal ?? 0, p.imagesDone, payload);
              started = true;
            } else bar.update(p.imagesDone, payload);
          },
        });
        bar?.stop();
        if (flags.json) {
          process.stdout.write(JSON.stringify(result) + '\n');
          return;
        }
        const d = result.distributions;
        const q = (r: Record<string, number>): string => ['p5', 'p25', 'p50', 'p75', 'p95'].map((k) => `${k} ${Number(r[k]).toPrecision(3)}`).join('  ');
        process.stdout.write(
          [
            `wrote ${result.out}: ${result.prototypes} prototypes × ${result.dim} from ${result.images} images (${result.imagesResumed} resumed)` +
              (result.mergeCosine !== null ? `; ${result.unmergedPrototypes} before merging near-duplicates (cosine ≥ ${result.mergeCosine})` : ''),
            `tokens ${result.tokens}: ${result.lowInfoTokens} low-information (${(100 * d.lowInfo).toFixed(1)} %), ${result.selectedTokens} kept by the per-image clustering`,
            `top prob      ${q(d.topProb)}   (${(100 * d.belowTauP).toFixed(1)} % < τp)`,
            `weighted JSD  ${q(d.jsdWeighted)}   (${(100 * d.belowTauJsd).toFixed(1)} % < τjsd)`,
            `global clusters kept ${result.clusters.filter((c) => c.kept).length}/${result.clusters.length}`,
            `time ${(result.timings.totalMs / 1000).toFixed(1)} s (experiments ${(result.timings.experimentsMs / 1000).toFixed(1)} s, ${result.forward.calls} decoder calls, ${result.forward.sequences} sequences)`,
          ].join('\n') + '\n',
        );
      } catch (e) {
        bar?.stop();
        const err = toWinnowError(e);
        if (flags.json) {
          const details = isWinnowError(e) ? e.details : {};
          process.stderr.write(JSON.stringify({ error: { code: err.code, message: err.message, retryable: err.retryable, details } }) + '\n');
        } else {
          process.stderr.write(`winnow: ${err.code}: ${err.message}\n`);
          const r = (err.details as { result?: { distributions?: unknown } }).result;
          if (r?.distributions) process.stderr.write(`distributions: ${JSON.stringify(r.distributions)}\n`);
        }
        process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
