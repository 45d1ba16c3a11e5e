import { stat } from 'node:fs/promises';
import { WinnowError, abortError } from '../errors.js';
import { rtspTimeoutOption } from './capabilities.js';
import { resolveFfprobePath } from './ffmpeg.js';
import { classifyFailure, FfmpegLog } from './ffmpeg-log.js';
import { checkNetworkTimeoutMs } from './network.js';
import { isLifelineExecFailure, spawnWithLifeline, terminate } from './process.js';
import { isConfinedSource } from './confine.js';
import { networkSchemeOf, normalizeConfined, normalizeSource } from './source.js';
import type { ProbeOptions, ProbeResult, VideoSource } from './types.js';

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
  nb_frames?: string;
  tags?: Record<string, string>;
  side_data_list?: Array<{ side_data_type?: string; rotation?: number }>;
  disposition?: Record<string, number>;
}
interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { format_name?: string; duration?: string };
}

const STILL_FORMATS = /(^|,)(image2|png_pipe|jpeg_pipe|bmp_pipe|webp_pipe|tiff_pipe|gif|ppm_pipe|pgm_pipe|jpegls_pipe|qoi_pipe)(,|$)/;
const MAX_STDOUT_BYTES = 4 << 20;

function rate(r: string | undefined): number | null {
  if (!r) return null;
  const [n, d] = r.split('/').map(Number);
  if (!Number.isFinite(n) || !Number.isFinite(d) || d === 0 || n === 0) return null;
  return n / d;
}

function seconds(v: string | undefined): number | null {
  if (v === undefined || v === 'N/A') return null;
  const x = Number(v);
  return Number.isFinite(x) && x >= 0 ? x : null;
}

/** Counter-clockwise degrees, FFmpeg's display-matrix convention (the legacy `rotate` tag counts clockwise). */
function rotationOf(st: FfprobeStream): number {
  let ccw = 0;
  const side = st.side_data_list?.find((d) => typeof d.rotation === 'number');
  if (side?.rotation !== undefined) ccw = side.rotation;
  else if (st.tags?.rotate !== undefined) ccw = -(Number(st.tags.rotate) || 0);
  return (((Math.round(ccw / 90) * 90) % 360) + 360) % 360;
}

/**
 * Describes a file, URL or device with ffprobe: duration, frame rate, size after rotation (what `openVideo`
 * will output without `size`), codec, and whether the source is live. A Readable cannot be probed without
 * consuming it: pass it straight to `openVideo`.
 */
export async function probe(source: VideoSource, options: ProbeOptions = {}): Promise<ProbeResult> {
  const confined = isConfinedSource(source);
  let src = confined ? normalizeConfined(source, options.live, options.inputFormat) : normalizeSource(source, options.live, options.inputFormat);
  if (src.kind === 'readable') {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'probe cannot read a Readable without consuming it; use openVideo');
  }
  if (options.signal?.aborted) throw abortError(options.signal);
  const ffprobe = resolveFfprobePath(options).path;
  const networkTimeoutMs = checkNetworkTimeoutMs(options.networkTimeoutMs);
  const scheme = confined ? undefined : networkSchemeOf(source);
  if (scheme) {
    const option = (scheme === 'rtsp' || scheme === 'rtsps') && networkTimeoutMs > 0 ? await rtspTimeoutOption(ffprobe) : undefined;
    src = normalizeSource(source, options.live, options.inputFormat, { networkTimeoutMs, rtspTimeoutOption: option });
  }
  if (src.kind === 'file') {
    const path = src.input.slice('file:'.length);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new WinnowError('WINNOW_ERR_IO', `${src.label} is not a regular file`, { details: { path } });
    } catch (e) {
      if (e instanceof WinnowError) throw e;
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new WinnowError('WINNOW_ERR_IO', `cannot open ${src.label}: ${code}`, { cause: e, details: { path } });
    }
  }
  const args = ['-hide_banner', '-loglevel', '+level+error', ...src.inputOptions, ...src.enforcedOptions, '-show_streams', '-show_format', '-of', 'json', src.input];
  const timeoutMs = options.timeoutMs ?? 20_000;
  const { code, stdout, lines } = await new Promise<{ code: number | null; stdout: string; lines: string[] }>((resolve, reject) => {
    const child = spawnWithLifeline(ffprobe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = new FfmpegLog({ onFrameMeta: () => undefined, onProgress: () => undefined });
    let out = '';
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = (): void => {
      void terminate(child, 1000);
      settle(() => reject(abortError(options.signal)));
    };
    const timer = setTimeout(() => {
      void terminate(child, 1000);
      settle(() =>
        reject(new WinnowError('WINNOW_ERR_SOURCE_STALLED', `ffprobe gave no answer for ${src.label} within ${timeoutMs} ms`, { retryable: src.live })),
      );
    }, timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      if (out.length < MAX_STDOUT_BYTES) out += s;
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => log.push(s));
    child.on('error', (e) => settle(() => reject(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffprobe (${ffprobe}): ${e.message}`, { cause: e }))));
    child.on('close', (c) => {
      log.end();
      settle(() => resolve({ code: c, stdout: out, lines: log.lastLines() }));
    });
  });
  if (isLifelineExecFailure(code, lines)) {
    throw new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffprobe (${ffprobe})`, { details: { stderr: lines } });
  }
  if (code !== 0) {
    throw classifyFailure({ kind: src.kind, live: src.live, framesEmitted: 0, code, signal: null, lines, source: src.label });
  }
  let parsed: FfprobeOutput;
  try {
    parsed = JSON.parse(stdout) as FfprobeOutput;
  } catch (e) {
    throw new WinnowError('WINNOW_ERR_FFMPEG_EXIT', 'ffprobe printed invalid JSON', { cause: e, details: { stderr: lines } });
  }
  const streams = parsed.streams ?? [];
  // Cover art in audio files is a video stream flagged attached_pic; it is not a video.
  const video = streams.find((st) => st.codec_type === 'video' && !st.disposition?.attached_pic);
  if (!video || !video.width || !video.height) {
    throw new WinnowError('WINNOW_ERR_NOT_A_VIDEO', `${src.label} has no video stream`, {
      details: { source: src.label, streams: streams.map((st) => st.codec_type ?? 'unknown'), stderr: lines },
    });
  }
  const rotationDeg = rotationOf(video);
  const swap = rotationDeg === 90 || rotationDeg === 270;
  const formatName = parsed.format?.format_name ?? '';
  const isStill = STILL_FORMATS.test(formatName) && (video.nb_frames === undefined || video.nb_frames === '1' || video.nb_frames === 'N/A');
  const durS = isStill ? null : (seconds(parsed.format?.duration) ?? seconds(video.duration));
  const isLive = src.live || (src.kind === 'url' && durS === null);
  return {
    durationMs: durS === null || isLive ? null : Math.round(durS * 1000),
    fps: isStill ? null : (rate(video.avg_frame_rate) ?? rate(video.r_frame_rate)),
    width: swap ? video.height : video.width,
    height: swap ? video.width : video.height,
    rotationDeg,
    codec: video.codec_name ?? 'unknown',
    pixelFormat: video.pix_fmt ?? null,
    formatName,
    isStill,
    isLive,
    hasAudio: streams.some((st) => st.codec_type === 'audio'),
  };
}
