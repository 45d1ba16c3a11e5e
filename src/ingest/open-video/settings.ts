// openVideo's options checked and resolved into the settings of one subscription, and the ffmpeg
// command line they make. Everything that does not depend on the source is checked first, so a bad
// option fails before any source is looked at.
import { WinnowError } from '../../errors.js';
import { intAtLeast, nonNegativeNumber, oneOf, positiveInt } from '../../util/validate.js';
import { rtspTimeoutOption } from '../capabilities.js';
import { SELF_CONTAINED_DEMUXERS, isConfinedSource } from '../confine.js';
import { buildScaleFilter, buildSelectFilter, DEFAULT_PAD_COLOR, resolveFfmpegPath } from '../ffmpeg.js';
import { checkNetworkTimeoutMs } from '../network.js';
import { isUrlString, networkSchemeOf, normalizeConfined, normalizeSource, type NormalizedSource } from '../source.js';
import type { OpenVideoOptions, OverflowPolicy, VideoSource } from '../types.js';

const DEFAULTS = {
  fps: 1,
  maxQueuedFrames: 2,
  maxInFlightFrames: 1,
  liveReconnectAttempts: 5,
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  liveStallTimeoutMs: 15_000,
  fileStallTimeoutMs: 60_000,
  killGraceMs: 2_000,
  /** Library default; a server facing untrusted clients passes its own, smaller one. */
  maxInputPixels: 8192 * 8192,
} as const;
/** ffmpeg's max_pixels option is an int. */
const MAX_PIXELS_LIMIT = 2 ** 31 - 1;

const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['pause-source', 'keep-latest', 'drop-oldest'];

export interface Settings {
  src: NormalizedSource;
  ffmpegPath: string;
  maxInputPixels: number;
  networkTimeoutMs: number;
  filter: string;
  overflow: OverflowPolicy;
  maxQueuedFrames: number;
  maxInFlightFrames: number;
  maxFrames: number;
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  stallTimeoutMs: number;
  killGraceMs: number;
  startMs: number;
  durationMs: number | undefined;
}

/** Everything that does not depend on the source: checked before any source is looked at. */
type SourceFree = Omit<Settings, 'src' | 'overflow' | 'maxQueuedFrames' | 'attempts' | 'stallTimeoutMs'>;

function sourceFreeSettings(o: OpenVideoOptions): SourceFree {
  const parts: string[] = [];
  const fps = o.fps ?? DEFAULTS.fps;
  if (fps !== 'source') parts.push(buildSelectFilter(fps));
  if (o.size) parts.push(buildScaleFilter(o.size, o.resize ?? 'pad', o.padColor ?? DEFAULT_PAD_COLOR));
  else if (o.resize !== undefined) oneOf('resize', o.resize, ['pad', 'stretch', 'crop']);
  // Timestamps in ms so showinfo prints integer ms; showinfo reports each frame's pts and size on stderr.
  parts.push('settb=1/1000', 'showinfo=checksum=0');
  if (o.overflow !== undefined) oneOf('overflow', o.overflow, OVERFLOW_POLICIES);
  const startMs = nonNegativeNumber('startMs', o.startMs ?? 0);
  let durationMs: number | undefined;
  if (o.endMs !== undefined) {
    const end = nonNegativeNumber('endMs', o.endMs);
    if (end <= startMs) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `endMs (${end}) must be greater than startMs (${startMs})`);
    durationMs = end - startMs;
  }
  const maxInputPixels = positiveInt('maxInputPixels', o.maxInputPixels ?? DEFAULTS.maxInputPixels);
  if (maxInputPixels > MAX_PIXELS_LIMIT) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxInputPixels must be at most ${MAX_PIXELS_LIMIT}, got ${maxInputPixels}`);
  }
  const reconnect = o.reconnect ?? {};
  return {
    ffmpegPath: resolveFfmpegPath(o).path,
    maxInputPixels,
    networkTimeoutMs: checkNetworkTimeoutMs(o.networkTimeoutMs),
    filter: parts.join(','),
    maxInFlightFrames: positiveInt('maxInFlightFrames', o.maxInFlightFrames ?? DEFAULTS.maxInFlightFrames),
    maxFrames: o.maxFrames === undefined ? Number.POSITIVE_INFINITY : positiveInt('maxFrames', o.maxFrames),
    initialDelayMs: nonNegativeNumber('reconnect.initialDelayMs', reconnect.initialDelayMs ?? DEFAULTS.initialDelayMs),
    maxDelayMs: nonNegativeNumber('reconnect.maxDelayMs', reconnect.maxDelayMs ?? DEFAULTS.maxDelayMs),
    killGraceMs: nonNegativeNumber('killGraceMs', o.killGraceMs ?? DEFAULTS.killGraceMs),
    startMs,
    durationMs,
  };
}

function withSource(base: SourceFree, src: NormalizedSource, o: OpenVideoOptions): Settings {
  const overflow = o.overflow ?? (src.live ? 'keep-latest' : 'pause-source');
  const reconnect = o.reconnect ?? {};
  return {
    ...base,
    src,
    overflow,
    maxQueuedFrames: overflow === 'keep-latest' ? 1 : positiveInt('maxQueuedFrames', o.maxQueuedFrames ?? DEFAULTS.maxQueuedFrames),
    attempts: intAtLeast('reconnect.attempts', reconnect.attempts ?? (src.live && src.kind !== 'readable' ? DEFAULTS.liveReconnectAttempts : 0), 0),
    stallTimeoutMs: nonNegativeNumber('stallTimeoutMs', o.stallTimeoutMs ?? (src.live ? DEFAULTS.liveStallTimeoutMs : DEFAULTS.fileStallTimeoutMs)),
  };
}

/**
 * Settings for one subscription. Synchronous when nothing has to be looked up; a Promise when a policy
 * confines the source (file system checks) or an rtsp URL needs this ffmpeg's timeout option name.
 */
export function prepare(source: VideoSource, o: OpenVideoOptions): Settings | Promise<Settings> {
  const base = sourceFreeSettings(o);
  // Already confined by a policy (e.g. the server, which reports refusals before it starts an input).
  if (isConfinedSource(source)) return withSource(base, normalizeConfined(source, o.live, o.inputFormat), o);
  const policy = o.policy;
  if (policy) {
    if (typeof source === 'string') {
      const named = isUrlString(source) ? { url: source } : { path: source };
      return policy
        .confine(named, o.signal, { ffmpegPath: base.ffmpegPath, networkTimeoutMs: base.networkTimeoutMs })
        .then((c) => withSource(base, normalizeConfined(c, o.live, o.inputFormat), o));
    }
    const src = normalizeSource(source, o.live, o.inputFormat);
    if (src.kind !== 'readable') {
      throw new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', 'devices cannot be opened under a source policy', { details: { reason: 'device' } });
    }
    src.enforcedOptions = ['-protocol_whitelist', 'pipe', '-format_whitelist', SELF_CONTAINED_DEMUXERS.join(',')];
    return withSource(base, src, o);
  }
  const scheme = networkSchemeOf(source);
  const networkTimeoutMs = base.networkTimeoutMs;
  if ((scheme === 'rtsp' || scheme === 'rtsps') && networkTimeoutMs > 0) {
    return rtspTimeoutOption(base.ffmpegPath).then((option) =>
      withSource(base, normalizeSource(source, o.live, o.inputFormat, { networkTimeoutMs, rtspTimeoutOption: option }), o),
    );
  }
  return withSource(base, normalizeSource(source, o.live, o.inputFormat, { networkTimeoutMs, rtspTimeoutOption: undefined }), o);
}

/** The ffmpeg command line for one attempt; `framesLeft` caps what this attempt may still produce. */
export function buildArgs(s: Settings, extraInput: readonly string[], framesLeft: number): string[] {
  const args = ['-hide_banner', '-nostats', '-loglevel', '+level+info', '-progress', 'pipe:2'];
  if (s.src.kind !== 'readable') args.push('-nostdin');
  // Enforced options and the decode limit come after the caller's, so the caller's cannot undo them.
  args.push(...s.src.inputOptions, ...extraInput, ...s.src.enforcedOptions, '-max_pixels', String(s.maxInputPixels));
  if (s.startMs > 0 && !s.src.live) args.push('-ss', (s.startMs / 1000).toFixed(3));
  args.push('-i', s.src.input, '-map', '0:v:0', '-an', '-sn', '-dn', '-vf', s.filter);
  // Passthrough: never duplicate or drop frames to fake a constant rate; sampling is the select filter's job.
  args.push('-vsync', 'passthrough', '-pix_fmt', 'rgb24');
  if (s.durationMs !== undefined && !s.src.live) args.push('-t', (s.durationMs / 1000).toFixed(3));
  if (Number.isFinite(framesLeft)) args.push('-frames:v', String(framesLeft));
  args.push('-f', 'rawvideo', 'pipe:1');
  return args;
}
