import type { Command } from 'commander';

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Render scenes of the synthetic world (stills as PNG, videos as H.264 MP4) with ground-truth JSON, or training shards')
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'random seed', '1')
    .option('--stills <k>', 'number of still images', '0')
    .option('--videos <m>', 'number of videos', '0')
    .option('--duration <s>', 'video duration in seconds (dataset mode)', '20')
    .option('--shards', 'write training shards (model-input frames + patch labels + QA) instead of PNG/MP4')
    .option('--min-duration <s>', 'shards: shortest video', '10')
    .option('--max-duration <s>', 'shards: longest video', '30')
    .option('--input-size <px>', 'shards: model input side', '112')
    .option('--patch-size <px>', 'shards: ViT patch size', '8')
    .option('--video-mix <mix>', "shards: 'natural' (every sampled video) or 'apart-rich' (only videos where some shape's objects were never all present together)", 'natural')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      const { writeDataset, writeShards } = await import('../../synth/index.js');
      const { resolveFfmpegPath, buildScaleFilter } = await import('../../ingest/index.js');
      const ffmpegPath = resolveFfmpegPath({ env: { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG } }).path;
      const seed = Number(opts.seed);
      const stills = Number(opts.stills);
      const videos = Number(opts.videos);
      const progress = (done: number, total: number): void => {
        if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total}`);
      };
      if (opts.shards) {
        const inputSize = Number(opts.inputSize);
        const videoMix = String(opts.videoMix);
        if (videoMix !== 'natural' && videoMix !== 'apart-rich') {
          const { WinnowError } = await import('../../errors.js');
          throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `--video-mix must be natural or apart-rich, not ${videoMix}`);
        }
        // The same filter ingest applies for `resize: 'pad'`, so training input == runtime input.
        const filter = buildScaleFilter({ width: inputSize, height: inputSize }, 'pad');
        await writeShards({
          outDir: String(opts.out), seed, stills, videos,
          minDurationS: Number(opts.minDuration), maxDurationS: Number(opts.maxDuration),
          geometry: { inputSize, patchSize: Number(opts.patchSize), mode: 'fit' },
          inputFilter: filter, ffmpegPath, onProgress: progress, videoMix,
        });
      } else {
        const { files } = await writeDataset({ outDir: String(opts.out), seed, stills, videos, durationS: Number(opts.duration), ffmpegPath, onProgress: progress });
        if (process.stderr.isTTY) process.stderr.write('\n');
        process.stdout.write(`${files.length} files written to ${String(opts.out)}\n`);
      }
    });
}
