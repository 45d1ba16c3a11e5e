// ffmpeg's URL resolution, emulated (references.ts resolves every playlist name with both). Two
// generations exist: up to 4.3 a string splicer that collapses leading "../" only; from 4.4 on an RFC 3986 resolver that keeps "../" for bare paths and `file:`
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
