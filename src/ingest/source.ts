import { Readable } from 'node:stream';
import { resolve as resolvePath } from 'node:path';
import { WinnowError } from '../errors.js';
import type { SourceKind } from './ffmpeg-log.js';
import { isNetworkScheme, LIVE_SCHEMES, networkInputOptions, type NetworkOptionSettings, type NetworkScheme } from './network.js';
import type { ConfinedSource } from './confine.js';
import type { VideoSource } from './types.js';

export interface NormalizedSource {
  kind: SourceKind;
  /** What goes after `-i`. */
  input: string;
  /** Input options that belong to the source kind (format, transport, default whitelists); caller options may override them. */
  inputOptions: string[];
  /** Input options placed after the caller's, so they cannot be overridden (a SourcePolicy's whitelists). */
  enforcedOptions: string[];
  /** Human-readable name for messages. */
  label: string;
  live: boolean;
  /** URL sources whose scheme ingest knows. */
  scheme?: NetworkScheme;
  readable?: Readable;
}

const SCHEME_RE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

function isReadable(x: unknown): x is Readable {
  return x instanceof Readable || (typeof x === 'object' && x !== null && typeof (x as Readable).pipe === 'function' && typeof (x as Readable).on === 'function');
}

/** A string of the form `scheme://…` (what openVideo treats as a URL rather than a path). */
export function isUrlString(source: unknown): source is string {
  return typeof source === 'string' && SCHEME_RE.test(source);
}

/** The network scheme of a URL string source, lower case; undefined for anything else. */
export function networkSchemeOf(source: VideoSource): NetworkScheme | undefined {
  if (typeof source !== 'string') return undefined;
  const scheme = SCHEME_RE.exec(source)?.[1]?.toLowerCase();
  return scheme !== undefined && isNetworkScheme(scheme) ? scheme : undefined;
}

/**
 * A source as the local user named it (no SourcePolicy): paths and `file:` URLs are read as given, URLs
 * get their scheme's protocol whitelist and read timeout (`network`), Readables may only reach the pipe.
 */
export function normalizeSource(
  source: VideoSource,
  live: boolean | undefined,
  inputFormat: string | undefined,
  network: NetworkOptionSettings = { networkTimeoutMs: 0, rtspTimeoutOption: undefined },
): NormalizedSource {
  const fmt = inputFormat ? ['-f', inputFormat] : [];
  if (typeof source === 'string') {
    if (source.length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'video source is an empty string');
    const scheme = SCHEME_RE.exec(source)?.[1]?.toLowerCase();
    if (scheme !== undefined && isNetworkScheme(scheme)) {
      return {
        kind: 'url',
        input: source,
        inputOptions: [...networkInputOptions(scheme, network), ...fmt],
        enforcedOptions: [],
        label: redactUrl(source),
        live: live ?? LIVE_SCHEMES.has(scheme),
        scheme,
      };
    }
    if (scheme === 'file') {
      const p = decodeURIComponent(new URL(source).pathname);
      return { kind: 'file', input: `file:${p}`, inputOptions: fmt, enforcedOptions: [], label: p, live: live ?? false };
    }
    if (scheme) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unsupported URL scheme ${scheme}://`);
    const abs = resolvePath(source);
    // `file:` keeps names with ':' or a leading '-' from being read as protocols or options.
    return { kind: 'file', input: `file:${abs}`, inputOptions: fmt, enforcedOptions: [], label: source, live: live ?? false };
  }
  if (isReadable(source)) {
    // Pushed bytes may be a playlist; whatever it names, ffmpeg can then reach nothing but its own stdin.
    return {
      kind: 'readable',
      input: 'pipe:0',
      inputOptions: ['-protocol_whitelist', 'pipe', ...fmt],
      enforcedOptions: [],
      label: 'stream',
      live: live ?? false,
      readable: source,
    };
  }
  if (typeof source === 'object' && source !== null && typeof (source as { device?: unknown }).device === 'string') {
    const dev = source as { device: string; format?: string };
    const format = dev.format ?? inputFormat ?? 'v4l2';
    return { kind: 'device', input: dev.device, inputOptions: ['-f', format], enforcedOptions: [], label: dev.device, live: live ?? true };
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

/** A source a SourcePolicy confined: its options come after any other input options, so they win. */
export function normalizeConfined(c: ConfinedSource, live: boolean | undefined, inputFormat: string | undefined): NormalizedSource {
  const scheme = c.kind === 'url' ? networkSchemeOf(c.input) : undefined;
  return {
    kind: c.kind,
    input: c.input,
    inputOptions: inputFormat ? ['-f', inputFormat] : [],
    enforcedOptions: [...c.inputOptions],
    label: c.label,
    live: live ?? (scheme !== undefined && LIVE_SCHEMES.has(scheme)),
    ...(scheme ? { scheme } : {}),
  };
}
