import { Option, type Command } from 'commander';
import { listArg, nonNegativeIntArg, positiveIntArg, positiveNumberArg, reportCommandError } from './options.js';

interface SynthFlags {
  out: string;
  profile: 'busy' | 'watch';
  seed: number;
  stills: number;
  videos?: number;
  duration?: number;
  checkpoints?: number[];
  shards?: boolean;
  minDuration: number;
  maxDuration: number;
  inputSize: number;
  patchSize: number;
  videoMix: 'natural' | 'apart-rich';
}

/** A busy video's default length, seconds; a watch video has none (it is the point of asking for one). */
const BUSY_DEFAULT_DURATION_S = 20;

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Render scenes of the synthetic world (stills as PNG, videos as H.264 MP4) with ground-truth JSON, or training shards')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(new Option('--profile <name>', "videos: 'busy' (short, many events) or 'watch' (10 min – 8 h static camera, rare events, V4 'when' questions)").choices(['busy', 'watch']).default('busy'))
    .option('--seed <n>', 'random seed', nonNegativeIntArg('--seed'), 1)
    .option('--stills <k>', 'number of still images', nonNegativeIntArg('--stills'), 0)
    .option('--videos <m>', 'number of videos (default: 0 busy, 1 watch)', nonNegativeIntArg('--videos'))
    .option('--duration <s>', `video duration in seconds (busy default ${BUSY_DEFAULT_DURATION_S}; watch: required, 600 … 28800)`, positiveNumberArg('--duration'))
    .option('--checkpoints <s,...>', 'watch: seconds from the start at which the questions are asked (default: at 5, 25, 50 and 75 % of the video); the end is always one', listArg('--checkpoints', nonNegativeIntArg('--checkpoints')))
    .option('--shards', 'write training shards (model-input frames + patch labels + QA) instead of PNG/MP4 (busy only)')
    .option('--min-duration <s>', 'shards: shortest video', positiveNumberArg('--min-duration'), 10)
    .option('--max-duration <s>', 'shards: longest video', positiveNumberArg('--max-duration'), 30)
    .option('--input-size <px>', 'shards: model input side', positiveIntArg('--input-size'), 112)
    .option('--patch-size <px>', 'shards: ViT patch size', positiveIntArg('--patch-size'), 8)
    .addOption(new Option('--video-mix <mix>', "shards: 'natural' (every sampled video) or 'apart-rich' (only videos where some shape's objects were never all present together)").choices(['natural', 'apart-rich']).default('natural'))
    .action(async (opts: SynthFlags) => {
      try {
        await runSynth(opts);
      } catch (e) {
        reportCommandError('synth', e);
      }
    });
}

async function runSynth(opts: SynthFlags): Promise<void> {
  const { WinnowError } = await import('../../errors.js');
  const { writeDataset, writeShards } = await import('../../synth/index.js');
  const { resolveFfmpegPath, buildScaleFilter } = await import('../../ingest/index.js');
  const watch = opts.profile === 'watch';
  if (watch && opts.shards) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', '--shards writes busy-profile shards only');
  if (watch && opts.duration === undefined) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', '--profile watch needs --duration (seconds, 600 … 28800)');
  if (!watch && opts.checkpoints) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', '--checkpoints applies to --profile watch');
  const ffmpegPath = resolveFfmpegPath({ env: { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } }).path;
  const videos = opts.videos ?? (watch ? 1 : 0);
  const tty = process.stderr.isTTY;
  const progress = (done: number, total: number): void => {
    if (tty) process.stderr.write(`\r${done}/${total}`);
  };
  if (opts.shards) {
    // The same filter ingest applies for `resize: 'pad'`, so training input == runtime input.
    const filter = buildScaleFilter({ width: opts.inputSize, height: opts.inputSize }, 'pad');
    await writeShards({
      outDir: opts.out, seed: opts.seed, stills: opts.stills, videos,
      minDurationS: opts.minDuration, maxDurationS: opts.maxDuration,
      geometry: { inputSize: opts.inputSize, patchSize: opts.patchSize, mode: 'fit' },
      inputFilter: filter, ffmpegPath, onProgress: progress, videoMix: opts.videoMix,
    });
    return;
  }
  const { files } = await writeDataset({
    outDir: opts.out, seed: opts.seed, stills: opts.stills, videos,
    durationS: opts.duration ?? BUSY_DEFAULT_DURATION_S,
    profile: opts.profile, checkpointsS: opts.checkpoints,
    ffmpegPath, onProgress: progress,
    // An 8-hour watch video takes a while: show its frames, not only whole files.
    onFrames: watch && tty ? (done, total) => process.stderr.write(`\rframes ${done}/${total}`) : undefined,
  });
  if (tty) process.stderr.write('\n');
  process.stdout.write(`${files.length} files written to ${opts.out}\n`);
}
