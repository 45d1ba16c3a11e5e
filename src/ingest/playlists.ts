// The names an HLS playlist or an ffconcat script holds, read as ffmpeg's own readers read them
// (references.ts checks where each name leads).
import { WinnowError } from '../errors.js';

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

export interface PlaylistRefs {
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
      throw new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', `concat script directive "${keyword}" is not accepted`, {
        details: { reason: 'reference-unsupported', directive: keyword },
      });
    }
  }
  return { refs, encrypted: false, unsafeNames };
}
