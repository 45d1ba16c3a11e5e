// Files that name other files. ffmpeg's hls and concat demuxers open whatever their playlist lists,
// so before such a file may be decoded for a client every name in it (recursively) is resolved the
// way ffmpeg resolves it and must land on a regular file inside the allowed roots.
//
// Paths here are "byte strings": file contents and file names are handled as latin1 strings, one char
// per byte, so names are compared and opened byte for byte as ffmpeg (C strings) would, whatever the
// encoding. `toBytes`/`fromBytes` convert at the edges.
import { open, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { WinnowError, throwIfAborted } from '../errors.js';

/** What a file is, judged from its first bytes. */
export type Sniffed = 'hls' | 'concat' | 'plain' | { refused: string };

/** How much of a tree of playlists is read before giving up (a client must not make us read without end). */
export const REFERENCE_LIMITS = {
  /** Nesting of playlists (master → media → … ). ffmpeg itself needs 2. */
  maxDepth: 4,
  /** One playlist; ffmpeg reads it whole, so a bigger one cannot be checked and is refused. */
  maxPlaylistBytes: 4 * 1024 * 1024,
  /** All playlists of one source together. */
  maxTotalBytes: 16 * 1024 * 1024,
  /** Names across all playlists of one source. */
  maxReferences: 100_000,
  /**
   * ffmpeg reads playlist lines and builds URLs in 4096-byte buffers and silently truncates longer
   * ones, which could turn a checked name into a different one; anything near that size is refused.
   */
  maxNameBytes: 4000,
} as const;

const SNIFF_BYTES = 4096;
/** Characters image2 (and its glob mode in 4.x) expands: a name with them may open other files. */
const PATTERN_RE = /[%*?[\]{}]/;
/** ffmpeg's URL_SCHEME_CHARS: a name that starts with these and a ':' is opened by that protocol. */
const SCHEME_PREFIX_RE = /^[A-Za-z0-9+.-]+:/;

export function toBytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

function bytesBuf(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

export function hasPatternChars(path: string): boolean {
  return PATTERN_RE.test(path);
}

export function insideRoots(roots: readonly string[], p: string): boolean {
  return roots.some((root) => {
    if (p === root) return true;
    const rel = relative(root, p);
    return rel !== '' && rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel);
  });
}

const forbidden = (reason: string, message: string, details: Record<string, unknown> = {}): WinnowError =>
  new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', message, { details: { reason, ...details } });

// ---------------------------------------------------------------------------------------------------
// ffmpeg's URL resolution, emulated. Two generations exist: up to 4.3 a string splicer that collapses
// leading "../" only; from 4.4 on an RFC 3986 resolver that keeps "../" for bare paths and `file:`
// without "//" (so the kernel resolves them through symlinks) but simplifies `scheme://` URLs.
// Both are computed and every result must pass.

/** libavformat/url.c ff_make_absolute_url before 4.4. */
export function makeAbsoluteUrlV4(base: string, rel: string): string {
  if (base && base.includes('://') && rel.startsWith('/')) {
    let buf = base;
    const sep = buf.indexOf('://');
    if (rel[1] === '/') buf = buf.slice(0, sep + 1);
    else {
      const slash = buf.indexOf('/', sep + 3);
      if (slash >= 0) buf = buf.slice(0, slash);
    }
    return buf + rel;
  }
  if (!base || rel.includes('://') || rel.startsWith('/')) return rel;
  let buf = base;
  const q = buf.indexOf('?');
  if (q >= 0) buf = buf.slice(0, q);
  if (rel.startsWith('?')) return buf + rel;
  let sep = buf.lastIndexOf('/');
  buf = sep >= 0 ? buf.slice(0, sep + 1) : '';
  while (rel.startsWith('../') && sep >= 0) {
    buf = buf.slice(0, sep);
    sep = buf.lastIndexOf('/');
    if ((sep >= 0 ? buf.slice(sep + 1) : buf) === '..') {
      buf += '/';
      break;
    }
    buf = sep >= 0 ? buf.slice(0, sep + 1) : '';
    rel = rel.slice(3);
  }
  return buf + rel;
}

interface UrlParts {
  authority: number;
  userinfo: number;
  path: number;
  query: number;
  fragment: number;
  end: number;
}

/** libavformat/url.c ff_url_decompose (indices into `url`; each part ends where the next begins). */
function decompose(url: string): UrlParts {
  const end = url.length;
  const findDelim = (delims: string, from: number, to: number): number => {
    let i = from;
    while (i < to && !delims.includes(url[i])) i++;
    return i;
  };
  let cur = 0;
  const p = findDelim(':/?#', 0, end);
  if (p < end && url[p] === ':') cur = p + 1;
  const authority = cur;
  let userinfo = cur;
  if (end - cur >= 2 && url[cur] === '/' && url[cur + 1] === '/') {
    cur += 2;
    const aend = findDelim('/?#', cur, end);
    userinfo = cur;
    const at = findDelim('@', cur, aend);
    if (at < aend) cur = at + 1;
    if (url[cur] === '[') {
      const close = findDelim(']', cur, aend);
      if (close >= aend || (close + 1 < aend && url[close + 1] !== ':')) throw new Error('invalid IPv6 authority');
    }
    cur = aend;
  }
  const path = cur;
  cur = findDelim('?#', cur, end);
  const query = cur;
  if (url[cur] === '?') cur = findDelim('#', cur, end);
  return { authority, userinfo, path, query, fragment: cur, end };
}

function appendPath(out: string, root: number, input: string, from: number, to: number): string {
  let i = from;
  if (i < to && input[i] === '/') i++;
  while (i < to) {
    let d = i;
    while (d < to && input[d] !== '/') d++;
    const next = d < to ? d + 1 : d;
    const seg = input.slice(i, d);
    if (seg === '.') {
      // dropped
    } else if (seg === '..') {
      if (out.length - root > 1) {
        let o = out.length;
        while (o > root) {
          o--;
          if (out[o - 1] === '/') break;
        }
        out = out.slice(0, o);
      }
    } else {
      out += input.slice(i, next);
    }
    i = next;
  }
  return out;
}

/** libavformat/url.c ff_make_absolute_url2 from 4.4 on (without DOS paths, as on Linux). */
export function makeAbsoluteUrlV5(base: string, rel: string): string {
  const ub = decompose(base);
  const uc = decompose(rel);
  let keep = 0;
  let simplify = false;
  if (uc.authority === 0 && ub.authority > keep) keep = ub.authority;
  if (uc.path === 0 && ub.path > keep) {
    keep = ub.path;
    simplify = true;
  }
  if (uc.query === 0 && ub.query > keep) keep = ub.query;
  if (uc.fragment === 0 && ub.fragment > keep) keep = ub.fragment;
  if (uc.end === 0 && ub.end > keep) keep = ub.end;
  let out = base.slice(0, keep) + rel.slice(0, uc.path);
  const relHasPath = uc.query > uc.path;
  let useBasePath = ub.query > ub.path && keep <= ub.path;
  if (uc.path > 0) useBasePath = false;
  if (relHasPath && rel[uc.path] === '/') useBasePath = false;
  let basePathEnd = ub.query;
  if (useBasePath && relHasPath) while (basePathEnd > ub.path && base[basePathEnd - 1] !== '/') basePathEnd--;
  if (keep > ub.path) simplify = false;
  if (uc.authority > 0) simplify = false;
  if (uc.userinfo > uc.authority) simplify = true;
  if (!useBasePath && !relHasPath) simplify = false;
  if (simplify) {
    out += '/';
    const root = out.length;
    if (useBasePath) out = appendPath(out, root, base, ub.path, basePathEnd);
    if (relHasPath) out = appendPath(out, root, rel, uc.path, uc.query);
  } else {
    if (useBasePath) out += base.slice(ub.path, basePathEnd);
    out += rel.slice(uc.path, uc.query);
  }
  return out + rel.slice(uc.query);
}

// ---------------------------------------------------------------------------------------------------
// Sniffing.

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(bytesBuf(path), 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Classifies a file by its head the way ffmpeg's probing would see it, erring towards "playlist": ffmpeg
 * skips an ID3v2 tag before probing, so the check is repeated after one; a byte-order mark or leading
 * blanks (which ffmpeg would not accept) still count, so such a file is checked rather than waved through.
 */
export async function sniff(path: string): Promise<Sniffed> {
  let offset = 0;
  let head = await readAt(path, 0, SNIFF_BYTES);
  for (let tags = 0; tags < 4 && head.length >= 10 && head.subarray(0, 3).toString('latin1') === 'ID3' && head[3] !== 0xff && head[4] !== 0xff; tags++) {
    if ((head[6] | head[7] | head[8] | head[9]) & 0x80) break;
    const size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9];
    offset += 10 + size + (head[5] & 0x10 ? 10 : 0);
    head = await readAt(path, offset, SNIFF_BYTES);
  }
  const text = head.toString('latin1').replace(/^(\xef\xbb\xbf)?[\s]*/, '');
  if (text.startsWith('#EXTM3U')) return 'hls';
  if (/^ffconcat\s+version/.test(text)) return 'concat';
  // ffmpeg demuxers that open further resources and have no checker here (their demuxers are not
  // whitelisted either; refusing here gives the client a clear reason instead of an ffmpeg failure).
  if (/^v=0\s/.test(text) || /^c=IN IP/m.test(text)) return { refused: 'sdp' };
  if (/<MPD[\s>]/.test(text)) return { refused: 'dash' };
  if (/<CompositionPlaylist[\s>]/.test(text)) return { refused: 'imf' };
  return 'plain';
}

// ---------------------------------------------------------------------------------------------------
// Playlist parsing, following ffmpeg's readers.

/** Lines as ffmpeg's ff_get_chomp_line yields them: split at \n, \r\n or \r, trailing blanks removed. */
function lines(text: string): string[] {
  return text.split(/\r\n|\r|\n/).map((l) => l.replace(/[ \t\n\v\f\r]+$/, ''));
}

/** libavformat/utils.c ff_parse_key_value: `KEY=value` or `KEY="va\"lue"` pairs, comma separated. */
function parseKeyValue(s: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = 0;
  for (;;) {
    while (i < s.length && (/\s/.test(s[i]) || s[i] === ',')) i++;
    if (i >= s.length) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const key = s.slice(i, eq + 1);
    i = eq + 1;
    let value = '';
    if (s[i] === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\') {
          if (i + 1 >= s.length) break;
          value += s[i + 1];
          i += 2;
        } else value += s[i++];
      }
      if (s[i] === '"') i++;
    } else {
      while (i < s.length && !(/\s/.test(s[i]) || s[i] === ',')) value += s[i++];
    }
    out.push([key, value]);
  }
  return out;
}

interface PlaylistRefs {
  refs: string[];
  /** A key method other than NONE: ffmpeg then reads segments through its `crypto` protocol. */
  encrypted: boolean;
  /** ffconcat: some name fails ffmpeg's `safe` rules, so the demuxer needs `-safe 0`. */
  unsafeNames: boolean;
}

/** Every name an HLS playlist makes ffmpeg open: URI lines (segments, variants) and `URI=` attributes of tags. */
export function hlsReferences(text: string): PlaylistRefs {
  const refs: string[] = [];
  let encrypted = false;
  for (const line of lines(text)) {
    if (!line) continue;
    if (!line.startsWith('#')) {
      refs.push(line);
      continue;
    }
    if (!line.startsWith('#EXT')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const attrs = parseKeyValue(line.slice(colon + 1));
    // Any tag's URI is checked, not just the ones this ffmpeg reads: a later ffmpeg may read more.
    for (const [k, v] of attrs) if (k.trim().toUpperCase() === 'URI=') refs.push(v);
    if (/^#EXT-X-(SESSION-)?KEY:/.test(line)) {
      const method = attrs.find(([k]) => k.trim().toUpperCase() === 'METHOD=')?.[1];
      if (method !== undefined && method.toUpperCase() !== 'NONE') encrypted = true;
    }
  }
  return { refs, encrypted, unsafeNames: false };
}

const CONCAT_SPACE = ' \t\r\n';

/** libavformat/concatdec.c get_keyword. */
function concatKeyword(line: string, i: number): [string, number] {
  while (i < line.length && CONCAT_SPACE.includes(line[i])) i++;
  const start = i;
  while (i < line.length && !CONCAT_SPACE.includes(line[i])) i++;
  const word = line.slice(start, i);
  while (i < line.length && CONCAT_SPACE.includes(line[i])) i++;
  return [word, i];
}

/** libavutil/avstring.c av_get_token with ffconcat's terminators: quotes and backslash escapes. */
function concatToken(line: string, i: number): string {
  let out = '';
  let protectedLen = 0;
  while (i < line.length && ' \n\t\r'.includes(line[i])) i++;
  while (i < line.length && !CONCAT_SPACE.includes(line[i])) {
    const c = line[i++];
    if (c === '\\' && i < line.length) {
      out += line[i++];
      protectedLen = out.length;
    } else if (c === "'") {
      while (i < line.length && line[i] !== "'") out += line[i++];
      if (i < line.length) {
        i++;
        protectedLen = out.length;
      }
    } else out += c;
  }
  let end = out.length;
  while (end > protectedLen && ' \n\t\r'.includes(out[end - 1])) end--;
  return out.slice(0, end);
}

/** libavformat/concatdec.c safe_filename: relative, components of [A-Za-z0-9_-.] not starting with '.'. */
function concatSafeName(f: string): boolean {
  let start = 0;
  for (let i = 0; i < f.length; i++) {
    const c = f[i];
    if (!/[A-Za-z0-9_-]/.test(c)) {
      if (i === start) return false;
      if (c === '/') start = i + 1;
      else if (c !== '.') return false;
    }
  }
  return true;
}

/** Directives of ffmpeg 4.x/5.x concat scripts that name nothing. `option` is refused: with `-safe 0` it sets demuxer options per file. */
const CONCAT_INERT = new Set([
  'ffconcat',
  'duration',
  'inpoint',
  'outpoint',
  'file_packet_meta',
  'file_packet_metadata',
  'stream',
  'exact_stream_id',
  'stream_meta',
  'stream_codec',
  'stream_extradata',
  'chapter',
]);

export function concatReferences(text: string): PlaylistRefs {
  const refs: string[] = [];
  let unsafeNames = false;
  for (const line of lines(text)) {
    const [keyword, after] = concatKeyword(line, 0);
    if (!keyword || keyword.startsWith('#')) continue;
    if (keyword === 'file') {
      const name = concatToken(line, after);
      if (!concatSafeName(name)) unsafeNames = true;
      refs.push(name);
    } else if (!CONCAT_INERT.has(keyword)) {
      throw forbidden('reference-unsupported', `concat script directive "${keyword}" is not accepted`, { directive: keyword });
    }
  }
  return { refs, encrypted: false, unsafeNames };
}

// ---------------------------------------------------------------------------------------------------
// The walk.

export interface ReferenceCheck {
  /** Demuxers that must be allowed beyond the self-contained ones (`hls`, `concat`). */
  formats: Set<'hls' | 'concat'>;
  /** HLS with encrypted segments: `crypto` must be an allowed protocol. */
  crypto: boolean;
  /** The top-level concat script needs `-safe 0` (all its names were checked here instead). */
  concatUnsafe: boolean;
}

interface WalkState {
  roots: readonly string[];
  signal: AbortSignal | undefined;
  bytes: number;
  references: number;
  sniffed: Map<string, Sniffed>;
  result: ReferenceCheck;
}

/** The byte path ffmpeg's file protocol opens for `url`, or undefined when another protocol would. */
function fileProtocolPath(url: string): string | undefined {
  if (url.startsWith('file:')) return url.slice('file:'.length);
  if (SCHEME_PREFIX_RE.test(url) || url.startsWith('subfile,')) return undefined;
  return url;
}

/** The URLs ffmpeg (either generation) builds for `ref` read from a playlist at any of `bases`. */
function candidates(kind: 'hls' | 'concat', bases: readonly string[], ref: string): string[] {
  const out = new Set<string>();
  for (const base of bases) {
    // concat opens names carrying a protocol prefix as they are; everything else is resolved.
    if (kind === 'concat' && ref.startsWith('file:')) out.add(ref);
    else {
      out.add(makeAbsoluteUrlV4(base, ref));
      out.add(makeAbsoluteUrlV5(base, ref));
    }
  }
  return [...out];
}

async function readPlaylist(path: string, state: WalkState): Promise<string> {
  const st = await stat(bytesBuf(path));
  if (st.size > REFERENCE_LIMITS.maxPlaylistBytes) {
    throw forbidden('reference-limit', `a playlist is larger than ${REFERENCE_LIMITS.maxPlaylistBytes} bytes`, { limit: 'maxPlaylistBytes' });
  }
  // One byte more than stat reported tells a file that grew since from one that did not.
  const buf = await readAt(path, 0, st.size + 1);
  if (buf.length > st.size) throw forbidden('reference-unsupported', 'a playlist changed while it was being checked');
  state.bytes += buf.length;
  if (state.bytes > REFERENCE_LIMITS.maxTotalBytes) {
    throw forbidden('reference-limit', `playlists total more than ${REFERENCE_LIMITS.maxTotalBytes} bytes`, { limit: 'maxTotalBytes' });
  }
  // A NUL ends a line for ffmpeg but not here; refusing it keeps both readings identical.
  if (buf.includes(0)) throw forbidden('reference-unsupported', 'a playlist contains NUL bytes');
  return buf.toString('latin1');
}

async function checkFile(kind: 'hls' | 'concat', bases: readonly string[], ref: string, depth: number, state: WalkState): Promise<void> {
  if (++state.references > REFERENCE_LIMITS.maxReferences) {
    throw forbidden('reference-limit', `more than ${REFERENCE_LIMITS.maxReferences} names in playlists`, { limit: 'maxReferences' });
  }
  const outside = (): WinnowError => forbidden('reference-outside-roots', 'a playlist names a file that is not an existing file under the allowed paths');
  if (ref.length > REFERENCE_LIMITS.maxNameBytes) throw forbidden('reference-limit', 'a playlist names a file with an overlong name', { limit: 'maxNameBytes' });
  // Query and fragment parts change how the newer resolver splits names; plain file names never need them.
  if (/[?#]/.test(ref)) throw forbidden('reference-unsupported', 'a playlist name contains "?" or "#"');
  const urls = candidates(kind, bases, ref);
  let real: string | undefined;
  for (const url of urls) {
    const p = fileProtocolPath(url);
    if (p === undefined || !p.startsWith('/')) throw outside();
    if (url.length > REFERENCE_LIMITS.maxNameBytes) throw forbidden('reference-limit', 'a playlist names a file with an overlong name', { limit: 'maxNameBytes' });
    if (hasPatternChars(p)) throw forbidden('pattern', 'a playlist names a file with image-pattern characters (% * ? [ ] { })');
    let r: string;
    try {
      r = (await realpath(bytesBuf(p), { encoding: 'buffer' })).toString('latin1');
    } catch {
      throw outside();
    }
    if (!insideRoots(state.roots, r)) throw outside();
    if (hasPatternChars(r)) throw forbidden('pattern', 'a playlist names a file with image-pattern characters (% * ? [ ] { })');
    if (real !== undefined && real !== r) {
      throw forbidden('reference-ambiguous', 'a playlist name resolves to different files depending on the ffmpeg version (".." after a symlink)');
    }
    real = r;
  }
  if (real === undefined) throw outside();
  throwIfAborted(state.signal);
  let what = state.sniffed.get(real);
  if (what === undefined) {
    const st = await stat(bytesBuf(real));
    if (!st.isFile()) throw outside();
    what = await sniff(real);
    state.sniffed.set(real, what);
  }
  if (typeof what === 'object') throw forbidden('unsupported-format', `a playlist names a ${what.refused} file, which may name further resources`, { format: what.refused });
  if (what !== 'plain') await walk(what, real, urls, depth + 1, state);
}

async function walk(kind: 'hls' | 'concat', real: string, bases: readonly string[], depth: number, state: WalkState): Promise<void> {
  if (depth > REFERENCE_LIMITS.maxDepth) throw forbidden('reference-limit', `playlists nest deeper than ${REFERENCE_LIMITS.maxDepth}`, { limit: 'maxDepth' });
  // The newer resolver treats '?' and '#' in the playlist's own URL as query/fragment delimiters.
  if (bases.some((b) => /[?#]/.test(b))) throw forbidden('reference-unsupported', 'a playlist path contains "?" or "#"');
  state.result.formats.add(kind);
  const text = await readPlaylist(real, state);
  const parsed = kind === 'hls' ? hlsReferences(text) : concatReferences(text);
  if (parsed.encrypted) state.result.crypto = true;
  if (depth === 0 && parsed.unsafeNames) state.result.concatUnsafe = true;
  for (const ref of parsed.refs) {
    throwIfAborted(state.signal);
    await checkFile(kind, bases, ref, depth, state);
  }
}

/**
 * Checks everything a file would make ffmpeg open. `real` is the file's real path and `roots` the
 * allowed roots' real paths (both in byte-string form, see `toBytes`); `input` is the string given to
 * ffmpeg (`file:` + real path). Throws WINNOW_ERR_FORBIDDEN_SOURCE with a `details.reason`.
 */
export async function checkReferences(real: string, input: string, roots: readonly string[], signal?: AbortSignal): Promise<ReferenceCheck> {
  const result: ReferenceCheck = { formats: new Set(), crypto: false, concatUnsafe: false };
  const state: WalkState = { roots, signal, bytes: 0, references: 0, sniffed: new Map(), result };
  const what = await sniff(real);
  if (typeof what === 'object') {
    throw forbidden('unsupported-format', `${what.refused} files may name further resources and are not accepted`, { format: what.refused });
  }
  if (what !== 'plain') await walk(what, real, [input], 0, state);
  return result;
}
