import { Readable } from 'node:stream';
import { resolve as resolvePath } from 'node:path';
import { WinnowError } from '../errors.js';
import type { SourceKind } from './ffmpeg-log.js';
import type { VideoSource } from './types.js';

export interface NormalizedSource {
  kind: SourceKind;
  /** What goes after `-i`. */
  input: string;
  /** Input options that belong to the source kind (format, transport). */
  inputOptions: string[];
  /** Human-readable name for messages. */
  label: string;
  live: boolean;
  readable?: Readable;
}

const LIVE_SCHEMES = new Set(['rtsp:', 'rtsps:', 'rtmp:', 'rtmps:', 'srt:', 'udp:', 'rtp:']);
const URL_SCHEMES = new Set([...LIVE_SCHEMES, 'http:', 'https:']);

function isReadable(x: unknown): x is Readable {
  return x instanceof Readable || (typeof x === 'object' && x !== null && typeof (x as Readable).pipe === 'function' && typeof (x as Readable).on === 'function');
}

export function normalizeSource(source: VideoSource, live: boolean | undefined, inputFormat: string | undefined): NormalizedSource {
  const fmt = inputFormat ? ['-f', inputFormat] : [];
  if (typeof source === 'string') {
    if (source.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'video source is an empty string');
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*:)\/\//.exec(source)?.[1]?.toLowerCase();
    if (scheme && URL_SCHEMES.has(scheme)) {
      const opts = [...fmt];
      // UDP transport drops packets under load and is blocked by most NATs; TCP is what a demanding user expects.
      if (scheme === 'rtsp:' || scheme === 'rtsps:') opts.unshift('-rtsp_transport', 'tcp');
      return { kind: 'url', input: source, inputOptions: opts, label: redactUrl(source), live: live ?? LIVE_SCHEMES.has(scheme) };
    }
    if (scheme === 'file:') {
      const p = decodeURIComponent(new URL(source).pathname);
      return { kind: 'file', input: `file:${p}`, inputOptions: fmt, label: p, live: live ?? false };
    }
    if (scheme) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unsupported URL scheme ${scheme}//`);
    const abs = resolvePath(source);
    // `file:` keeps names with ':' or a leading '-' from being read as protocols or options.
    return { kind: 'file', input: `file:${abs}`, inputOptions: fmt, label: source, live: live ?? false };
  }
  if (isReadable(source)) {
    return { kind: 'readable', input: 'pipe:0', inputOptions: fmt, label: 'stream', live: live ?? false, readable: source };
  }
  if (typeof source === 'object' && source !== null && typeof (source as { device?: unknown }).device === 'string') {
    const dev = source as { device: string; format?: string };
    const format = dev.format ?? inputFormat ?? 'v4l2';
    return { kind: 'device', input: dev.device, inputOptions: ['-f', format], label: dev.device, live: live ?? true };
  }
  throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'video source must be a path, a URL, { device } or a Readable');
}

/** Credentials in URLs must not end up in error messages or logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = u.username ? '***' : '';
      u.password = u.password ? '***' : '';
    }
    return u.toString();
  } catch {
    return url;
  }
}
