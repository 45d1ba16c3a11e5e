// Reads ffmpeg's stderr (run with `-loglevel +level+info -progress pipe:2`): per-frame metadata from the
// showinfo filter, liveness from -progress blocks, and a bounded tail of everything else for error reports.
import { WinnowError, type WinnowErrorCode } from '../errors.js';

export type LogLevel = 'panic' | 'fatal' | 'error' | 'warning' | 'info' | 'verbose' | 'debug' | 'trace';

export interface FrameMeta {
  /** Timestamp in ms as printed by showinfo after `settb=1/1000`; NaN when ffmpeg had none. */
  pts: number;
  width: number;
  height: number;
}

const LEVEL_RE = /^(?:\[[^\]]* @ 0x[0-9a-fA-F]+\] )?\[(panic|fatal|error|warning|info|verbose|debug|trace)\] /;
const SHOWINFO_RE = /showinfo[^\]]*\] (?:\[info\] )?n:\s*\d+\s+pts:\s*(-?\d+|NOPTS)\b.*?\ss:(\d+)x(\d+)/;
const PROGRESS_RE = /^(?:frame|fps|stream_\d+_\d+_q|bitrate|total_size|out_time_us|out_time_ms|out_time|dup_frames|drop_frames|speed|progress)=/;
const MAX_LINE_CHARS = 1000;
const TAIL_LINES = 24;
const MAX_ERROR_LINES = 16;

export interface FfmpegLogHandlers {
  onFrameMeta(meta: FrameMeta): void;
  onProgress(): void;
}

/** Splits stderr into lines with a bounded carry-over, classifies each line. */
export class FfmpegLog {
  /** Last non-frame, non-progress lines, for error messages. */
  private readonly tail: string[] = [];
  /** Error-level lines logged after the first frame came out (truncation, corruption). */
  readonly errorsAfterFirstFrame: string[] = [];
  errorsAfterFirstFrameCount = 0;
  private carry = '';
  private lastLevel: LogLevel = 'info';
  framesSeen = 0;
  /** A decoder refused a picture over `-max_pixels`. Sticky: later lines may push it out of the tail. */
  pixelLimitExceeded = false;

  constructor(private readonly handlers: FfmpegLogHandlers) {}

  push(chunk: string): void {
    let text = this.carry + chunk;
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      this.line(text.slice(0, nl).replace(/\r$/, ''));
      text = text.slice(nl + 1);
    }
    // A line longer than MAX_LINE_CHARS is cut: stderr must never grow memory.
    this.carry = text.length > MAX_LINE_CHARS ? text.slice(0, MAX_LINE_CHARS) : text;
  }

  end(): void {
    if (this.carry) this.line(this.carry);
    this.carry = '';
  }

  lastLines(): string[] {
    return this.tail.slice();
  }

  private line(raw: string): void {
    const line = raw.length > MAX_LINE_CHARS ? raw.slice(0, MAX_LINE_CHARS) : raw;
    if (!line) return;
    if (PROGRESS_RE.test(line)) {
      this.handlers.onProgress();
      return;
    }
    const si = SHOWINFO_RE.exec(line);
    if (si) {
      this.framesSeen++;
      this.handlers.onFrameMeta({ pts: si[1] === 'NOPTS' ? Number.NaN : Number(si[1]), width: Number(si[2]), height: Number(si[3]) });
      return;
    }
    // showinfo prints extra per-frame lines (side data, colour info); they say nothing about failures.
    if (line.includes('showinfo')) return;
    const m = LEVEL_RE.exec(line);
    if (m) this.lastLevel = m[1] as LogLevel;
    if (line.includes('-vsync is deprecated')) return;
    // libavutil's av_image_check_size2 wording, the same in 4.x and 5.x.
    if (line.includes('exceeds specified max pixel count')) this.pixelLimitExceeded = true;
    // ffmpeg echoes input URLs; credentials in them must not reach error messages.
    const safe = line.replace(/:\/\/[^/\s@']+@/g, '://***@');
    this.tail.push(safe);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if ((this.lastLevel === 'error' || this.lastLevel === 'fatal' || this.lastLevel === 'panic') && this.framesSeen > 0) {
      this.errorsAfterFirstFrameCount++;
      if (this.errorsAfterFirstFrame.length < MAX_ERROR_LINES) this.errorsAfterFirstFrame.push(safe);
    }
  }
}

export type SourceKind = 'file' | 'url' | 'device' | 'readable';

const UNREACHABLE = [
  'connection refused',
  'connection timed out',
  'timed out',
  'network is unreachable',
  'no route to host',
  'name or service not known',
  'failed to resolve',
  'temporary failure in name resolution',
  'server returned',
  'connection reset',
  'broken pipe',
  'i/o error',
  'input/output error',
  'end of file',
  'immediate exit requested',
  'method describe failed',
  'unable to open rtsp',
  'unsupported protocol',
  'protocol not found',
];
const NOT_A_VIDEO = [
  'matches no streams',
  'does not contain any stream',
  'invalid data found when processing input',
  'moov atom not found',
  'could not find codec parameters',
  'ebml header parsing failed',
  'end of file',
  'failed to read frame size',
  'invalid argument',
];

/**
 * Turns an ffmpeg failure into a typed error. `framesEmitted > 0` on a finite source means the input broke
 * part-way (truncated/corrupt); before the first frame the stderr tail decides between unreachable source,
 * not-a-video and a plain ffmpeg failure.
 */
export function classifyFailure(opts: {
  kind: SourceKind;
  live: boolean;
  framesEmitted: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  source: string;
  /** The `-max_pixels` in effect, when the log showed a picture over it. */
  pixelLimitExceeded?: { max: number };
  /** The network read timeout, when this attempt lasted at least that long without a frame. */
  networkTimedOutAfterMs?: number;
}): WinnowError {
  const { kind, live, framesEmitted, code, signal, lines, source } = opts;
  const details = { source, exitCode: code, signal, stderr: lines };
  const text = lines.join('\n').toLowerCase();
  const has = (needles: string[]): boolean => needles.some((n) => text.includes(n));
  const make = (c: WinnowErrorCode, message: string, retryable: boolean, extra: Record<string, unknown> = {}): WinnowError =>
    new WinnowError(c, `${message}${lines.length ? `: ${lastMeaningful(lines)}` : ''}`, { retryable, details: { ...details, ...extra } });
  if (opts.pixelLimitExceeded) {
    const { max } = opts.pixelLimitExceeded;
    return make('WINNOW_ERR_LIMIT_EXCEEDED', `${source} has pictures larger than maxInputPixels (${max} pixels)`, false, { limit: 'maxInputPixels', max });
  }
  // Whitelists set by ingest (SourcePolicy, per-scheme protocols): something the source led to is not allowed.
  if (text.includes('format not on whitelist')) {
    return make('WINNOW_ERR_FORBIDDEN_SOURCE', `${source} uses a container or playlist format that is not accepted`, false, { reason: 'unsupported-format' });
  }
  if (/protocol '[^']*' not on whitelist/.test(text)) {
    return make('WINNOW_ERR_FORBIDDEN_SOURCE', `${source} leads to a protocol that is not allowed for it`, false, { reason: 'protocol' });
  }
  if (kind === 'file' && text.includes('no such file or directory')) return make('WINNOW_ERR_IO', `cannot open ${source}`, false);
  if (kind === 'file' && text.includes('permission denied')) return make('WINNOW_ERR_IO', `cannot read ${source}`, false);
  if (framesEmitted > 0 && !live) return make('WINNOW_ERR_CORRUPT_INPUT', `input ended with an error after ${framesEmitted} frame(s)`, false);
  if ((kind === 'url' || kind === 'device' || live) && has(UNREACHABLE)) return make('WINNOW_ERR_SOURCE_UNREACHABLE', `cannot read ${source}`, true);
  // A peer that accepts and never answers: rtsp reports the timed-out read only as "Invalid data found".
  if (kind === 'url' && framesEmitted === 0 && opts.networkTimedOutAfterMs !== undefined) {
    return make('WINNOW_ERR_SOURCE_UNREACHABLE', `no answer from ${source} within ${opts.networkTimedOutAfterMs} ms`, true, { networkTimeoutMs: opts.networkTimedOutAfterMs });
  }
  if (kind === 'device' && (text.includes('no such file or directory') || text.includes('permission denied'))) {
    return make('WINNOW_ERR_SOURCE_UNREACHABLE', `cannot open device ${source}`, false);
  }
  if (has(NOT_A_VIDEO)) return make('WINNOW_ERR_NOT_A_VIDEO', `${source} has no decodable video stream`, false);
  return make('WINNOW_ERR_FFMPEG_EXIT', `ffmpeg exited with ${code ?? signal}`, live);
}

function lastMeaningful(lines: string[]): string {
  for (let i = lines.length - 1; i >= 0; i--) {
    const level = LEVEL_RE.exec(lines[i])?.[1];
    if (level === 'error' || level === 'fatal' || level === 'panic') return lines[i].replace(LEVEL_RE, '').trim();
  }
  return lines[lines.length - 1].replace(LEVEL_RE, '').trim();
}
