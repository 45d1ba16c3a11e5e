// `winnow frames SOURCE`: the frames the model would see, as JSON lines and/or PNG files.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { nonNegativeNumberArg, positiveIntArg } from './options.js';
import { toWinnowError } from '../../errors.js';
import type { FfmpegEnv, Frame, FrameSize, OpenVideoOptions, ResizeMode, VideoSource } from '../../ingest/types.js';

/** The default model's input (docs/default-model.md): what `frames` shows unless told otherwise. */
const MODEL_INPUT_SIZE: FrameSize = { width: 112, height: 112 };

interface FramesFlags {
  fps: number | 'source';
  size: FrameSize | 'source';
  resize: ResizeMode;
  out?: string;
  json?: boolean;
  startMs?: number;
  endMs?: number;
  maxFrames?: number;
  inputFormat?: string;
  progress: boolean;
}

function parseFps(v: string): number | 'source' {
  if (v === 'source') return 'source';
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 1000) throw new InvalidArgumentError('expected a number in (0, 1000] or "source"');
  return n;
}

function parseSize(v: string): FrameSize | 'source' {
  if (v === 'source') return 'source';
  const m = /^(\d+)x(\d+)$/i.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1 || Number(m[1]) > 16384 || Number(m[2]) > 16384) {
    throw new InvalidArgumentError('expected WxH (e.g. 640x360) or "source"');
  }
  return { width: Number(m[1]), height: Number(m[2]) };
}

function toSource(arg: string): VideoSource {
  if (arg === '-') return process.stdin;
  if (/^\/dev\/video\d+$/.test(arg)) return { device: arg };
  return arg;
}

export function registerFrames(program: Command): void {
  program
    .command('frames')
    .description('decode SOURCE (file, URL, /dev/videoN, or - for stdin) into the frames the model would see')
    .argument('<source>', 'video file, image, http(s)/rtsp/rtmp/srt URL, /dev/videoN, or - for stdin')
    .option('--fps <n>', 'frames per second to sample (by timestamp), or "source" for every frame', parseFps, 1)
    .option('--size <WxH>', 'output size, or "source" to keep the source size', parseSize, MODEL_INPUT_SIZE)
    .addOption(new Option('--resize <mode>', 'how to fit --size').choices(['pad', 'stretch', 'crop']).default('pad'))
    .option('--out <dir>', 'also write DIR/000000.png, DIR/000001.png, …')
    .option('--json', 'print one JSON object per frame: {"index","ptsMs","width","height"}')
    .option('--start-ms <ms>', 'start of the window in the source, ms', nonNegativeNumberArg('--start-ms'))
    .option('--end-ms <ms>', 'end of the window in the source (exclusive), ms', nonNegativeNumberArg('--end-ms'))
    .option('--max-frames <n>', 'stop after n frames', positiveIntArg('--max-frames'))
    .option('--input-format <fmt>', 'ffmpeg input format hint for stdin (e.g. mpegts, matroska, mjpeg)')
    .option('--no-progress', 'never show a progress bar')
    .action(async (sourceArg: string, flags: FramesFlags) => {
      const code = await runFrames(sourceArg, flags);
      process.exitCode = code;
    });
}

async function runFrames(sourceArg: string, flags: FramesFlags): Promise<number> {
  // The CLI is an entry point: the only place the ffmpeg environment variables are read.
  const env: FfmpegEnv = { WINNOW_FFMPEG: process.env.WINNOW_FFMPEG, WINNOW_FFPROBE: process.env.WINNOW_FFPROBE };
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  let bar: import('cli-progress').SingleBar | undefined;
  try {
    const { openVideo, probe } = await import('../../ingest/index.js');
    const { Subject, concatMap, lastValueFrom } = await import('rxjs');
    const source = toSource(sourceArg);
    if (flags.out) await mkdir(flags.out, { recursive: true });

    // A bar only where it helps: a person watching a terminal while a file of known length decodes.
    if (flags.progress && process.stderr.isTTY && typeof source === 'string' && !/^[a-z]+:\/\//i.test(source)) {
      const info = await probe(source, { env, signal: controller.signal }).catch(() => null);
      if (info?.durationMs) {
        const { default: cliProgress } = await import('cli-progress');
        const startMs = flags.startMs ?? 0;
        const endMs = Math.min(flags.endMs ?? info.durationMs, info.durationMs);
        bar = new cliProgress.SingleBar(
          { format: 'frames |{bar}| {percentage}% | {value}/{total} s | {frames} frames', stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, Math.ceil((endMs - startMs) / 1000)), 0, { frames: 0 });
      }
    }

    const options: OpenVideoOptions = {
      env,
      fps: flags.fps,
      resize: flags.resize,
      signal: controller.signal,
      ...(flags.size === 'source' ? {} : { size: flags.size }),
      ...(flags.startMs !== undefined ? { startMs: flags.startMs } : {}),
      ...(flags.endMs !== undefined ? { endMs: flags.endMs } : {}),
      ...(flags.maxFrames !== undefined ? { maxFrames: flags.maxFrames } : {}),
      ...(flags.inputFormat ? { inputFormat: flags.inputFormat } : {}),
    };
    // PNG encoding is asynchronous: acknowledge each written frame so decoding never runs ahead of the disk.
    const ack$ = new Subject<void>();
    let writePng: ((frame: Frame, file: string) => Promise<unknown>) | undefined;
    if (flags.out) {
      const { default: sharp } = await import('sharp');
      writePng = (frame, file) => sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: 3 } }).png().toFile(file);
    }
    const startMs = flags.startMs ?? 0;
    let count = 0;
    const handle = async (frame: Frame): Promise<void> => {
      if (writePng && flags.out) await writePng(frame, join(flags.out, `${String(frame.index).padStart(6, '0')}.png`));
      const line = { index: frame.index, ptsMs: frame.ptsMs, width: frame.width, height: frame.height };
      if (flags.json) process.stdout.write(JSON.stringify(line) + '\n');
      else if (!flags.out) process.stdout.write(`frame ${line.index}\tt=${(line.ptsMs / 1000).toFixed(3)}s\t${line.width}x${line.height}\n`);
      count++;
      bar?.update(Math.max(0, Math.floor((frame.ptsMs - startMs) / 1000)), { frames: count });
      ack$.next();
    };
    await lastValueFrom(
      openVideo(source, { ...options, ...(flags.out ? { ack$, maxInFlightFrames: 2 } : {}) }).pipe(concatMap((f) => handle(f))),
      { defaultValue: undefined },
    );
    if (bar) {
      bar.update(bar.getTotal(), { frames: count });
      bar.stop();
      bar = undefined;
    }
    if (!flags.json) process.stderr.write(`${count} frame(s)${flags.out ? ` written to ${flags.out}` : ''}\n`);
    return 0;
  } catch (e) {
    bar?.stop();
    const err = toWinnowError(e, 'WINNOW_ERR_INTERNAL');
    process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message, retryable: err.retryable } }) + '\n');
    if (err.code === 'WINNOW_ERR_ABORTED') return 130;
    return err.code === 'WINNOW_ERR_INVALID_ARGUMENT' ? 2 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
