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
import { makeAbsoluteUrlV4, makeAbsoluteUrlV5 } from './ffmpeg-url.js';
import { concatReferences, hlsReferences } from './playlists.js';

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
