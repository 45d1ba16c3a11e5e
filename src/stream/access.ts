// Who may connect and what a client may make the server open. Server-side sources are opt-in:
// paths only under allow-listed roots (compared as resolved real paths, so `..` and symlinks cannot
// escape), URLs only with allow-listed schemes, webhooks only to allow-listed origins.
import { createHash, timingSafeEqual } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { WinnowError } from '../errors.js';

/** Bearer token carried in `Sec-WebSocket-Protocol` by browsers, which cannot set headers. */
export const BEARER_PROTOCOL_PREFIX = 'winnow.bearer.';

/** Constant-time comparison (hashing first makes the lengths equal, so length leaks nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an upgrade request: `Authorization: Bearer T` or a `winnow.bearer.T` subprotocol. */
export function bearerFrom(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  const a = Array.isArray(auth) ? auth[0] : auth;
  if (a) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(a);
    if (m) return m[1];
  }
  const proto = headers['sec-websocket-protocol'];
  const list = (Array.isArray(proto) ? proto.join(',') : (proto ?? '')).split(',').map((s) => s.trim());
  for (const p of list) if (p.startsWith(BEARER_PROTOCOL_PREFIX)) return p.slice(BEARER_PROTOCOL_PREFIX.length);
  return undefined;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

export interface SourcePolicyOptions {
  /** Roots under which `source.open {path}` may read. Default none (paths refused). */
  allowPaths?: readonly string[];
  /** URL schemes `source.open {url}` may use, e.g. ['rtsp', 'https']. Default none (URLs refused). */
  allowUrlSchemes?: readonly string[];
  /** Origins (`http://host:port`) webhooks may target. Default none (webhooks refused). */
  allowWebhookOrigins?: readonly string[];
}

const forbidden = (message: string, details: Record<string, unknown> = {}): WinnowError =>
  new WinnowError('WINNOW_ERR_FORBIDDEN_SOURCE', message, { details });

export class SourcePolicy {
  private readonly roots: Promise<string[]>;
  private readonly schemes: Set<string>;
  private readonly webhookOrigins: Set<string>;

  constructor(options: SourcePolicyOptions = {}) {
    // Roots are compared as real paths: a root that is itself a symlink still works.
    this.roots = Promise.all((options.allowPaths ?? []).map(async (r) => realpath(resolve(r)).catch(() => resolve(r))));
    this.schemes = new Set((options.allowUrlSchemes ?? []).map((s) => s.toLowerCase().replace(/:(\/\/)?$/, '')));
    this.webhookOrigins = new Set((options.allowWebhookOrigins ?? []).map((o) => new URL(o).origin));
  }

  /** The real path of `path` when it lies under an allowed root; WINNOW_ERR_FORBIDDEN_SOURCE otherwise. */
  async checkPath(path: string): Promise<string> {
    const roots = await this.roots;
    if (roots.length === 0) throw forbidden('server-side paths are disabled (start the server with --allow-path DIR)');
    if (path.includes('\0')) throw forbidden('path contains a NUL byte');
    // `..` is refused outright, even where it would resolve inside a root: clients name files, not walks.
    if (path.split(/[\\/]+/).includes('..')) throw forbidden('path must not contain ".." segments', { path });
    const candidates = isAbsolute(path) ? [path] : roots.map((r) => resolve(r, path));
    for (const c of candidates) {
      let real: string;
      try {
        real = await realpath(c);
      } catch {
        continue;
      }
      if (roots.some((r) => inside(r, real))) return real;
      throw forbidden(`${path} is outside the allowed paths`, { path });
    }
    // Not existing is reported as forbidden too: an unlisted client must not learn which files exist.
    throw forbidden(`${path} is not an existing file under the allowed paths`, { path });
  }

  checkUrl(url: string): string {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'url is not a valid URL');
    }
    const scheme = u.protocol.replace(/:$/, '').toLowerCase();
    if (scheme === 'file') throw forbidden('file: URLs are not accepted; use source.open {path}', { scheme });
    if (!this.schemes.has(scheme)) {
      throw forbidden(`URL scheme ${scheme} is not allowed (allowed: ${[...this.schemes].join(', ') || 'none'}; see --allow-url-scheme)`, { scheme });
    }
    return url;
  }

  checkWebhook(url: string): void {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'webhook is not a valid URL');
    }
    if (!this.webhookOrigins.has(origin)) {
      throw forbidden(`webhook origin ${origin} is not allowed (see --allow-webhook)`, { origin });
    }
  }
}

function inside(root: string, p: string): boolean {
  if (p === root) return true;
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}
