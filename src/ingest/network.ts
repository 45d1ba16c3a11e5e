// ffmpeg input options for network URLs: which protocols ffmpeg may reach from the named scheme, and
// a read timeout so a peer that stops answering ends the process instead of parking it forever.
// Used for every URL source, confined by a SourcePolicy or named by a local user.
import { WinnowError } from '../errors.js';
import { nonNegativeNumber } from '../util/index.js';
import type { RtspTimeoutOption } from './capabilities.js';

/** URL schemes ingest can read. `file:` is not one of them: files go through paths. */
export const NETWORK_SCHEMES = ['rtsp', 'rtsps', 'rtmp', 'rtmps', 'srt', 'udp', 'rtp', 'http', 'https'] as const;
export type NetworkScheme = (typeof NETWORK_SCHEMES)[number];

/** Schemes whose sources are live by default (reconnect, drop instead of pause). */
export const LIVE_SCHEMES: ReadonlySet<string> = new Set(['rtsp', 'rtsps', 'rtmp', 'rtmps', 'srt', 'udp', 'rtp']);

export const DEFAULT_NETWORK_TIMEOUT_MS = 10_000;
/** The timeouts are `int` microseconds in some ffmpeg versions: stay below 2³¹ µs. */
const MAX_NETWORK_TIMEOUT_MS = 2_000_000;

export function isNetworkScheme(s: string): s is NetworkScheme {
  return (NETWORK_SCHEMES as readonly string[]).includes(s);
}

/**
 * `-protocol_whitelist` per scheme: what that scheme itself needs. ffmpeg hands the list down to every
 * nested open (HLS segments, redirects, keys, the `crypto` wrapper's inner URL), so whatever an HTTP
 * server or an RTSP peer answers, ffmpeg can never fall back to `file`, `pipe`, `subfile`, `concat`, ….
 * `crypto` only decrypts what the listed protocols fetch (AES-128 HLS). A redirect to another scheme
 * (http → https) fails: the client named the scheme, and only that one was allowed.
 */
const PROTOCOLS: Readonly<Record<NetworkScheme, string>> = {
  http: 'http,tcp,crypto',
  https: 'https,tls,tcp,crypto',
  rtsp: 'rtsp,rtp,tcp,udp',
  rtsps: 'rtsp,rtsps,rtp,tcp,udp,tls',
  rtmp: 'rtmp,tcp',
  rtmps: 'rtmps,tls,tcp',
  srt: 'srt',
  udp: 'udp',
  rtp: 'rtp,udp',
};

export interface NetworkOptionSettings {
  /** Read timeout; 0 = none. */
  networkTimeoutMs: number;
  /** How this ffmpeg spells the rtsp socket timeout; undefined = unknown, no rtsp timeout is passed. */
  rtspTimeoutOption: RtspTimeoutOption | undefined;
}

/** The protocols a scheme's `-protocol_whitelist` allows, e.g. `http,tcp,crypto`. */
export function protocolWhitelist(scheme: NetworkScheme): string {
  return PROTOCOLS[scheme];
}

/**
 * Input options for a URL of `scheme`. Timeouts, checked against a TCP peer that accepts and never
 * answers (ffmpeg 4.1 and 5.1): `-rw_timeout` bounds http(s) and rtmp(s) (it is copied into their
 * nested tcp/tls opens); it does not bound rtsp, which has its own socket timeout; udp and srt take
 * `-timeout`. rtp has no read timeout in either version: there only the stall watchdog ends ffmpeg.
 */
export function networkInputOptions(scheme: NetworkScheme, settings: NetworkOptionSettings): string[] {
  const opts = ['-protocol_whitelist', PROTOCOLS[scheme]];
  // UDP transport drops packets under load and is blocked by most NATs; TCP is what a demanding user expects.
  if (scheme === 'rtsp' || scheme === 'rtsps') opts.push('-rtsp_transport', 'tcp');
  const us = Math.round(settings.networkTimeoutMs * 1000);
  if (us > 0) {
    switch (scheme) {
      case 'http':
      case 'https':
      case 'rtmp':
      case 'rtmps':
        opts.push('-rw_timeout', String(us));
        break;
      case 'rtsp':
      case 'rtsps':
        if (settings.rtspTimeoutOption) opts.push(`-${settings.rtspTimeoutOption}`, String(us));
        break;
      case 'udp':
      case 'srt':
        opts.push('-timeout', String(us));
        break;
      case 'rtp':
        break;
    }
  }
  return opts;
}

export function checkNetworkTimeoutMs(v: number | undefined): number {
  if (v === undefined) return DEFAULT_NETWORK_TIMEOUT_MS;
  const ms = nonNegativeNumber('networkTimeoutMs', v);
  if (ms > MAX_NETWORK_TIMEOUT_MS) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `networkTimeoutMs must be at most ${MAX_NETWORK_TIMEOUT_MS}, got ${v}`, { details: { name: 'networkTimeoutMs' } });
  }
  return ms;
}
