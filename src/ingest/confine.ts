// The one place that decides what ffmpeg may open for a source a client named. Everything ffmpeg gets
// comes out of here rebuilt: a normalised URL (never the client's string) with only the protocols its
// scheme needs, or `file:` + a real path under an allowed root with only self-contained demuxers, plus
// the playlists' demuxers when every file those playlists name was checked too.
import { realpath, stat } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { WinnowError, throwIfAborted } from '../errors.js';
import { rtspTimeoutOption } from './capabilities.js';
import { resolveFfmpegPath } from './ffmpeg.js';
import { checkNetworkTimeoutMs, isNetworkScheme, networkInputOptions, NETWORK_SCHEMES, type NetworkScheme } from './network.js';
import { checkReferences, hasPatternChars, insideRoots, toBytes, type ReferenceCheck } from './references.js';
import { redactUrl } from './source.js';

export interface ConfinedSource {
  kind: 'file' | 'url';
  /** What goes after `-i`. */
  input: string;
  /** Options that must come right before `-i`, after any other input options (they win): whitelists, timeouts. */
  inputOptions: string[];
  /** Safe for messages and logs: the client's path, or the normalised URL with credentials masked. */
  label: string;
  /** Files: the real path ffmpeg reads. */
  path?: string;
  /** URLs: the normalised URL ffmpeg reads (credentials included). */
  url?: string;
}

/** Sources a SourcePolicy produced: openVideo trusts these and nothing that merely looks like them. */
const issued = new WeakSet<ConfinedSource>();

/** Whether `x` came out of `SourcePolicy.confine` (and so needs no second check). */
export function isConfinedSource(x: unknown): x is ConfinedSource {
  return typeof x === 'object' && x !== null && issued.has(x as ConfinedSource);
}

export interface SourcePolicyOptions {
  /** Roots under which client-named paths may be read (compared as real paths). Default none: paths refused. */
  allowPaths?: readonly string[];
  /** Network URL schemes clients may name, e.g. ['rtsp', 'https']. Default none: URLs refused. */
  allowUrlSchemes?: readonly string[];
}

/** Which ffmpeg the confined source is for (its rtsp timeout spelling) and the network read timeout. */
export interface ConfineTarget {
  /** Default: `resolveFfmpegPath()` (PATH, then the bundled binary); only consulted for rtsp URLs. */
  ffmpegPath?: string;
  /** Default 10 000 ms; 0 = none. */
  networkTimeoutMs?: number;
}

/**
 * Demuxers that read one self-contained file. `-format_whitelist` is matched against every
 * comma-separated part of a demuxer's name (`mov` admits `mov,mp4,m4a,3gp,3g2,mj2`, `matroska` admits
 * `matroska,webm`), and nested demuxers (HLS segments, concat entries) inherit the list. Names missing
 * from one ffmpeg version (`obu`, `qoi_pipe` are 5.x only) are harmless. Deliberately absent: hls,
 * concat (added only after their references were checked), dash, sdp, rtp/rtsp, imf, image2pipe,
 * lavfi and other devices, svg_pipe (SVG can pull in external images), and mov's `enable_drefs` stays off.
 * The audio and WebVTT demuxers are there for HLS renditions; an audio-only file still fails as not a video.
 */
export const SELF_CONTAINED_DEMUXERS: readonly string[] = [
  'mov',
  'matroska',
  'avi',
  'flv',
  'mpegts',
  'mpeg',
  'mpegvideo',
  'mjpeg',
  'h264',
  'hevc',
  'm4v',
  'ivf',
  'nut',
  'ogg',
  'asf',
  'gif',
  'obu',
  'yuv4mpegpipe',
  // Single pictures: names with image2's pattern characters are refused before ffmpeg sees them.
  'image2',
  'png_pipe',
  'jpeg_pipe',
  'bmp_pipe',
  'webp_pipe',
  'tiff_pipe',
  'gif_pipe',
  'ppm_pipe',
  'pgm_pipe',
  'pbm_pipe',
  'pam_pipe',
  'qoi_pipe',
  'jpegls_pipe',
  'j2k_pipe',
  'aac',
  'mp3',
  'ac3',
  'eac3',
  'webvtt',
];

/** ffmpeg builds URLs in 4096-byte buffers; a longer one would be cut, not refused. */
const MAX_URL_CHARS = 4000;
/** Hostnames as DNS allows them (underscores included: cameras on private networks use them). */
const LABEL_RE = /^[A-Za-z0-9_-]{1,63}$/;

const forbidden = (reason: string, message: string, details: Record<string, unknown> = {}): WinnowError =>
  new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', message, { details: { reason, ...details } });
const invalid = (message: string): WinnowError => new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', message);

function validHostname(host: string): boolean {
  if (host.startsWith('[')) return host.endsWith(']') && isIPv6(host.slice(1, -1));
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => LABEL_RE.test(label));
}

/**
 * A client URL, checked and rebuilt. Only `scheme://authority…` with exactly those two slashes: `http:/..`,
 * `http:..` and `http:///x` are refused instead of being read as relative paths or fixed up by the URL
 * parser (`http:/../x` → `http://../x`). Returns the WHATWG-normalised href: dot segments removed, percent
 * escapes and IDN hosts canonical, so ffmpeg never sees a string the check did not.
 */
export function normalizeClientUrl(raw: string, allowed: ReadonlySet<string>): { href: string; scheme: NetworkScheme } {
  if (typeof raw !== 'string' || raw.length === 0) throw invalid('url must be a non-empty string');
  if (raw.length > MAX_URL_CHARS) throw invalid(`url is longer than ${MAX_URL_CHARS} characters`);
  // Control characters, blanks and backslashes are each "fixed up" differently by URL parsers and ffmpeg.
  if (/[\u0000-\u0020\u007f-\u009f\\]/.test(raw) || /\s/u.test(raw)) {
    throw forbidden('characters', 'url contains control characters, whitespace or backslashes');
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) throw forbidden('url-form', 'url must have the form scheme://host[:port]/…');
  if (!isNetworkScheme(scheme)) {
    throw forbidden('scheme', `URL scheme ${scheme} is not accepted (network schemes only: ${NETWORK_SCHEMES.join(', ')})`, { scheme });
  }
  if (!allowed.has(scheme)) {
    throw forbidden('scheme', `URL scheme ${scheme} is not allowed (allowed: ${[...allowed].join(', ') || 'none'})`, { scheme });
  }
  const m = /^[^:]+:\/\/([^/?#]+)/.exec(raw);
  if (!m) throw forbidden('url-form', 'url must have the form scheme://host[:port]/…');
  const authority = m[1];
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  if (hostPort === '' || hostPort.startsWith(':')) throw forbidden('host', 'url has no host');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw invalid('url is not a valid URL');
  }
  if (u.protocol !== `${scheme}:` || !u.href.startsWith(`${scheme}://`)) throw forbidden('url-form', 'url must have the form scheme://host[:port]/…');
  if (!validHostname(u.hostname)) throw forbidden('host', `url host ${JSON.stringify(u.hostname)} is not a DNS name, IPv4 or [IPv6] address`);
  if (u.href.length > MAX_URL_CHARS) throw invalid(`url is longer than ${MAX_URL_CHARS} characters`);
  return { href: u.href, scheme };
}

/**
 * What ffmpeg may open for a client-named source. Errors are WinnowErrors: `WINNOW_ERR_INVALID_ARGUMENT`
 * for input that is not a path or URL at all, `WINNOW_ERR_FORBIDDEN_SOURCE` otherwise, with
 * `details.reason` one of: `disabled` (no roots / schemes configured), `characters`, `url-form`, `scheme`,
 * `host`, `dotdot`, `outside-roots` (also for files that do not exist: a client must not learn which
 * files exist outside), `not-a-file`, `pattern`, `unsupported-format`, `reference-outside-roots`,
 * `reference-ambiguous`, `reference-unsupported`, `reference-limit`.
 */
export class SourcePolicy {
  private readonly roots: Promise<string[]>;
  private readonly schemes: ReadonlySet<NetworkScheme>;

  constructor(options: SourcePolicyOptions = {}) {
    const schemes = new Set<NetworkScheme>();
    for (const s of options.allowUrlSchemes ?? []) {
      const name = s.toLowerCase().replace(/:(\/\/)?$/, '');
      if (!isNetworkScheme(name)) {
        throw invalid(`allowUrlSchemes: ${s} is not a network scheme (${NETWORK_SCHEMES.join(', ')}); files are allowed through allowPaths`);
      }
      schemes.add(name);
    }
    this.schemes = schemes;
    // Roots are compared as real paths, so a root that is itself a symlink still works.
    this.roots = Promise.all((options.allowPaths ?? []).map(async (r) => realpath(resolve(r)).catch(() => resolve(r))));
  }

  /** The allowed URL schemes, normalised (lower case, no colon). */
  get allowedSchemes(): readonly NetworkScheme[] {
    return [...this.schemes];
  }

  /**
   * The source as ffmpeg may open it. The result can be given to `openVideo` as it is (it is then not
   * checked again); only objects this method returned are taken that way.
   */
  async confine(source: { url: string } | { path: string }, signal?: AbortSignal, target: ConfineTarget = {}): Promise<ConfinedSource> {
    const confined = await this.confineOnce(source, signal, target);
    issued.add(Object.freeze(confined));
    return confined;
  }

  private async confineOnce(source: { url: string } | { path: string }, signal: AbortSignal | undefined, target: ConfineTarget): Promise<ConfinedSource> {
    throwIfAborted(signal);
    const networkTimeoutMs = checkNetworkTimeoutMs(target.networkTimeoutMs);
    if (typeof source !== 'object' || source === null) throw invalid('source must be { url } or { path }');
    const url = (source as { url?: unknown }).url;
    const path = (source as { path?: unknown }).path;
    if (url !== undefined && path !== undefined) throw invalid('source must have either url or path, not both');
    if (typeof url === 'string') return this.confineUrl(url, networkTimeoutMs, target.ffmpegPath, signal);
    if (typeof path === 'string') return this.confinePath(path, signal);
    throw invalid('source must be { url: string } or { path: string }');
  }

  private async confineUrl(raw: string, networkTimeoutMs: number, ffmpegPath: string | undefined, signal: AbortSignal | undefined): Promise<ConfinedSource> {
    if (this.schemes.size === 0) throw forbidden('disabled', 'URL sources are disabled (no allowed URL schemes)');
    const { href, scheme } = normalizeClientUrl(raw, this.schemes);
    const needsRtspOption = (scheme === 'rtsp' || scheme === 'rtsps') && networkTimeoutMs > 0;
    const rtspOption = needsRtspOption ? await rtspTimeoutOption(ffmpegPath ?? resolveFfmpegPath().path) : undefined;
    throwIfAborted(signal);
    return {
      kind: 'url',
      input: href,
      inputOptions: networkInputOptions(scheme, { networkTimeoutMs, rtspTimeoutOption: rtspOption }),
      label: redactUrl(href),
      url: href,
    };
  }

  private async confinePath(given: string, signal: AbortSignal | undefined): Promise<ConfinedSource> {
    const roots = await this.roots;
    if (roots.length === 0) throw forbidden('disabled', 'server-side paths are disabled (no allowed paths)');
    if (given.length === 0) throw invalid('path must be a non-empty string');
    if (given.includes('\0')) throw forbidden('characters', 'path contains a NUL byte');
    // `..` is refused outright, even where it would resolve inside a root: clients name files, not walks.
    if (given.split(/[\\/]+/).includes('..')) throw forbidden('dotdot', 'path must not contain ".." segments', { path: given });
    const notUnder = (): WinnowError => forbidden('outside-roots', `${given} is not an existing file under the allowed paths`, { path: given });
    const candidates = isAbsolute(given) ? [given] : roots.map((r) => resolve(r, given));
    let real: string | undefined;
    for (const c of candidates) {
      let r: string;
      try {
        r = await realpath(c);
      } catch {
        continue;
      }
      if (!insideRoots(roots, r)) throw notUnder();
      real = r;
      break;
    }
    throwIfAborted(signal);
    if (real === undefined) throw notUnder();
    // image2 expands %d and (4.x) globs in the name it is given: such a name may stand for many files.
    if (hasPatternChars(real)) throw forbidden('pattern', `${given}: names with % * ? [ ] { } are not accepted (image-sequence patterns)`, { path: given });
    const input = `file:${real}`;
    let refs: ReferenceCheck;
    try {
      if (!(await stat(real)).isFile()) throw forbidden('not-a-file', `${given} is not a regular file`, { path: given });
      refs = await checkReferences(toBytes(real), toBytes(input), roots.map(toBytes), signal);
    } catch (e) {
      if (e instanceof WinnowError) throw e;
      // Inside the roots, so the client may learn that it exists but cannot be read.
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new WinnowError('WINNOW_ERR_IO', `cannot read ${given} or a file it names: ${code}`, { cause: e, details: { path: given } });
    }
    throwIfAborted(signal);
    const inputOptions = [
      '-protocol_whitelist',
      refs.crypto ? 'file,crypto' : 'file',
      '-format_whitelist',
      [...SELF_CONTAINED_DEMUXERS, ...refs.formats].join(','),
    ];
    // Every name in the script was checked above, including absolute ones the concat demuxer's own safe mode refuses.
    if (refs.concatUnsafe) inputOptions.push('-safe', '0');
    return { kind: 'file', input, inputOptions, label: given, path: real };
  }
}
