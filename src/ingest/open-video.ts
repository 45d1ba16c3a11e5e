import type { ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { WinnowError, abortError, toWinnowError } from '../errors.js';
import { rtspTimeoutOption } from './capabilities.js';
import { SELF_CONTAINED_DEMUXERS, isConfinedSource } from './confine.js';
import { buildScaleFilter, buildSelectFilter, DEFAULT_PAD_COLOR, resolveFfmpegPath } from './ffmpeg.js';
import { classifyFailure, FfmpegLog, type FrameMeta } from './ffmpeg-log.js';
import { checkNetworkTimeoutMs, LIVE_SCHEMES } from './network.js';
import { isLifelineExecFailure, spawnWithLifeline, terminate } from './process.js';
import { isUrlString, networkSchemeOf, normalizeConfined, normalizeSource, type NormalizedSource } from './source.js';
import type { Frame, IngestEvent, OpenVideoOptions, OverflowPolicy, VideoSource } from './types.js';

/** stdout bytes allowed to wait for their frame's showinfo line (normally they wait for at most one pipe buffer). */
const MAX_UNFRAMED_BYTES = 256 * 1024 * 1024;

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

/**
 * Decodes `source` with ffmpeg into a cold Observable of RGB24 frames. Each subscription starts its own ffmpeg;
 * unsubscribing (or `signal` aborting) stops it (SIGTERM, then SIGKILL after `killGraceMs`).
 *
 * Backpressure: frames wait in a queue of `maxQueuedFrames`. With `overflow: 'pause-source'` a full queue pauses
 * ffmpeg's stdout, so ffmpeg blocks on its write and nothing piles up; `keep-latest` / `drop-oldest` keep reading
 * (live sources must not fall behind) and count drops. A frame leaves the queue when the consumer has capacity:
 * synchronous consumers have it again when `next` returns; asynchronous ones pass `ack$` and emit on it once per
 * finished frame (see `OpenVideoOptions.ack$`).
 *
 * Errors are `WinnowError`s: `WINNOW_ERR_FFMPEG_NOT_FOUND`, `WINNOW_ERR_IO` (missing file), `WINNOW_ERR_NOT_A_VIDEO`,
 * `WINNOW_ERR_CORRUPT_INPUT` (after the frames that decoded), `WINNOW_ERR_SOURCE_UNREACHABLE`,
 * `WINNOW_ERR_SOURCE_STALLED`, `WINNOW_ERR_FFMPEG_EXIT`, `WINNOW_ERR_ABORTED`, `WINNOW_ERR_LIMIT_EXCEEDED`
 * (`maxInputPixels`), `WINNOW_ERR_FORBIDDEN_SOURCE` (`policy`, whitelists); `details.stderr` holds ffmpeg's last lines.
 *
 * On Linux ffmpeg is started through `setpriv --pdeathsig KILL` when util-linux provides it, so it dies with
 * this process even when no exit handler runs (SIGKILL, OOM); the `spawn` event's pid is still ffmpeg's own.
 */
export function openVideo(source: VideoSource, options: OpenVideoOptions = {}): Observable<Frame> {
  return new Observable<Frame>((subscriber) => {
    const session = new IngestSession(source, options, subscriber);
    session.start();
    return () => session.close();
  });
}

interface Settings {
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

function positiveInt(name: string, v: number | undefined, def: number, allowZero = false): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be an integer ≥ ${allowZero ? 0 : 1}, got ${v}`);
  }
  return v;
}

function nonNegative(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!Number.isFinite(v) || v < 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${name} must be a number ≥ 0, got ${v}`);
  return v;
}

/** Everything that does not depend on the source: checked before any source is looked at. */
type SourceFree = Omit<Settings, 'src' | 'overflow' | 'maxQueuedFrames' | 'attempts' | 'stallTimeoutMs'>;

function sourceFreeSettings(o: OpenVideoOptions): SourceFree {
  const parts: string[] = [];
  const fps = o.fps ?? DEFAULTS.fps;
  if (fps !== 'source') parts.push(buildSelectFilter(fps));
  if (o.size) parts.push(buildScaleFilter(o.size, o.resize ?? 'pad', o.padColor ?? DEFAULT_PAD_COLOR));
  else if (o.resize !== undefined && !['pad', 'stretch', 'crop'].includes(o.resize)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `resize must be pad, stretch or crop, got ${String(o.resize)}`);
  }
  // Timestamps in ms so showinfo prints integer ms; showinfo reports each frame's pts and size on stderr.
  parts.push('settb=1/1000', 'showinfo=checksum=0');
  if (o.overflow !== undefined && !['pause-source', 'keep-latest', 'drop-oldest'].includes(o.overflow)) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `overflow must be pause-source, keep-latest or drop-oldest, got ${String(o.overflow)}`);
  }
  const startMs = nonNegative('startMs', o.startMs, 0);
  let durationMs: number | undefined;
  if (o.endMs !== undefined) {
    const end = nonNegative('endMs', o.endMs, 0);
    if (end <= startMs) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `endMs (${end}) must be greater than startMs (${startMs})`);
    durationMs = end - startMs;
  }
  const maxInputPixels = positiveInt('maxInputPixels', o.maxInputPixels, DEFAULTS.maxInputPixels);
  if (maxInputPixels > MAX_PIXELS_LIMIT) {
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `maxInputPixels must be at most ${MAX_PIXELS_LIMIT}, got ${maxInputPixels}`);
  }
  const reconnect = o.reconnect ?? {};
  return {
    ffmpegPath: resolveFfmpegPath(o).path,
    maxInputPixels,
    networkTimeoutMs: checkNetworkTimeoutMs(o.networkTimeoutMs),
    filter: parts.join(','),
    maxInFlightFrames: positiveInt('maxInFlightFrames', o.maxInFlightFrames, DEFAULTS.maxInFlightFrames),
    maxFrames: o.maxFrames === undefined ? Number.POSITIVE_INFINITY : positiveInt('maxFrames', o.maxFrames, 1),
    initialDelayMs: nonNegative('reconnect.initialDelayMs', reconnect.initialDelayMs, DEFAULTS.initialDelayMs),
    maxDelayMs: nonNegative('reconnect.maxDelayMs', reconnect.maxDelayMs, DEFAULTS.maxDelayMs),
    killGraceMs: nonNegative('killGraceMs', o.killGraceMs, DEFAULTS.killGraceMs),
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
    maxQueuedFrames: overflow === 'keep-latest' ? 1 : positiveInt('maxQueuedFrames', o.maxQueuedFrames, DEFAULTS.maxQueuedFrames),
    attempts: positiveInt('reconnect.attempts', reconnect.attempts, src.live && src.kind !== 'readable' ? DEFAULTS.liveReconnectAttempts : 0, true),
    stallTimeoutMs: nonNegative('stallTimeoutMs', o.stallTimeoutMs, src.live ? DEFAULTS.liveStallTimeoutMs : DEFAULTS.fileStallTimeoutMs),
  };
}


/**
 * Settings for one subscription. Synchronous when nothing has to be looked up; a Promise when a policy
 * confines the source (file system checks) or an rtsp URL needs this ffmpeg's timeout option name.
 */
function prepare(source: VideoSource, o: OpenVideoOptions): Settings | Promise<Settings> {
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

function buildArgs(s: Settings, extraInput: readonly string[], framesLeft: number): string[] {
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

/** One subscription: owns at most one ffmpeg process at a time (several in sequence when reconnecting). */
class IngestSession {
  private settings!: Settings;
  private closed = false;
  private finished = false;
  private child: ChildProcess | undefined;
  private log: FfmpegLog | undefined;
  private attemptNo = 0;
  private failuresInRow = 0;
  private spawnedAtMs = 0;
  private openedAtMs = performance.now();
  private sessionOffsetMs = 0;
  private lastPtsMs = Number.NEGATIVE_INFINITY;

  // Byte-stream framing.
  private readonly metas: FrameMeta[] = [];
  private readonly chunks: Buffer[] = [];
  private chunkOffset = 0;
  /** Bytes in `chunks` not yet copied into a frame. */
  private pendingBytes = 0;
  private current: { meta: FrameMeta; data: Buffer; filled: number } | undefined;

  // Delivery.
  private readonly queue: Frame[] = [];
  private inFlight = 0;
  private emitted = 0;
  private emittedThisSession = 0;
  private dropped = 0;
  private paused = false;
  private pumping = false;
  private terminal: { error?: WinnowError } | undefined;

  private stallTimer: NodeJS.Timeout | undefined;
  private lastActivityMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private ackSub: Subscription | undefined;
  private readonly onAbort = (): void => this.fail(abortError(this.options.signal));

  constructor(
    private readonly source: VideoSource,
    private readonly options: OpenVideoOptions,
    private readonly subscriber: Subscriber<Frame>,
  ) {}

  start(): void {
    let prepared: Settings | Promise<Settings>;
    try {
      prepared = prepare(this.source, this.options);
    } catch (e) {
      this.subscriber.error(toWinnowError(e, 'WINNOW_ERR_INVALID_ARGUMENT'));
      return;
    }
    const signal = this.options.signal;
    if (signal?.aborted) {
      if (prepared instanceof Promise) prepared.catch(() => undefined);
      this.subscriber.error(abortError(signal));
      return;
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
    if (this.options.ack$) {
      this.ackSub = this.options.ack$.subscribe({
        next: () => {
          if (this.inFlight > 0) this.inFlight--;
          this.pump();
        },
      });
    }
    if (prepared instanceof Promise) {
      prepared.then(
        (settings) => {
          if (!this.closed) this.begin(settings);
        },
        (e: unknown) => this.fail(toWinnowError(e, 'WINNOW_ERR_INVALID_ARGUMENT')),
      );
    } else {
      this.begin(prepared);
    }
  }

  private begin(settings: Settings): void {
    this.settings = settings;
    const src = settings.src;
    if (src.kind === 'file') {
      const path = src.input.slice('file:'.length);
      stat(path).then(
        (st) => {
          if (this.closed) return;
          if (!st.isFile()) this.fail(new WinnowError('WINNOW_ERR_IO', `${src.label} is not a regular file`, { details: { path } }));
          else this.spawnFfmpeg();
        },
        (e: NodeJS.ErrnoException) => {
          this.fail(new WinnowError('WINNOW_ERR_IO', `cannot open ${src.label}: ${e.code ?? e.message}`, { cause: e, details: { path } }));
        },
      );
    } else {
      this.spawnFfmpeg();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.ackSub?.unsubscribe();
    clearTimeout(this.stallTimer);
    clearTimeout(this.retryTimer);
    this.queue.length = 0;
    this.chunks.length = 0;
    this.current = undefined;
    this.stopChild();
  }

  private emit(event: IngestEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // An observer's bug must not break the stream or leak the process.
    }
  }

  private stopChild(): void {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (this.settings.src.readable && child.stdin) this.settings.src.readable.unpipe(child.stdin);
    void terminate(child, this.settings.killGraceMs);
  }

  private spawnFfmpeg(): void {
    if (this.closed) return;
    const s = this.settings;
    this.attemptNo++;
    this.metas.length = 0;
    this.chunks.length = 0;
    this.chunkOffset = 0;
    this.pendingBytes = 0;
    this.current = undefined;
    this.emittedThisSession = 0;
    this.paused = false;
    this.sessionOffsetMs = s.src.live ? performance.now() - this.openedAtMs : s.startMs;
    const args = buildArgs(s, this.options.inputOptions ?? [], s.maxFrames - this.emitted);
    let child: ChildProcess;
    try {
      child = spawnWithLifeline(s.ffmpegPath, args, { stdio: [s.src.kind === 'readable' ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    } catch (e) {
      this.fail(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffmpeg (${s.ffmpegPath})`, { cause: e }));
      return;
    }
    this.child = child;
    this.spawnedAtMs = performance.now();
    const log = new FfmpegLog({
      onFrameMeta: (meta) => {
        if (this.child !== child) return;
        this.metas.push(meta);
        this.drainBytes();
      },
      onProgress: () => {
        // Progress blocks prove a file decode is moving even while the select filter emits nothing.
        if (this.child === child && !s.src.live) this.lastActivityMs = performance.now();
      },
    });
    this.log = log;
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (this.child !== child) return;
      this.child = undefined;
      const code = e.code === 'ENOENT' || e.code === 'EACCES' ? 'WINNOW_ERR_FFMPEG_NOT_FOUND' : 'WINNOW_ERR_FFMPEG_EXIT';
      this.fail(new WinnowError(code, `cannot start ffmpeg (${s.ffmpegPath}): ${e.message}`, { cause: e }));
    });
    if (child.pid !== undefined) this.emit({ type: 'spawn', pid: child.pid, attempt: this.attemptNo, args });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (t: string) => log.push(t));
    child.stdout!.on('data', (b: Buffer) => {
      if (this.child !== child) return;
      this.chunks.push(b);
      this.pendingBytes += b.length;
      this.lastActivityMs = performance.now();
      this.drainBytes();
      // showinfo's line for a frame is written before its pixels, so bytes wait for metadata only briefly.
      // Pixels piling up without metadata mean this ffmpeg logs in a format we do not parse: fail, don't grow.
      if (this.pendingBytes > MAX_UNFRAMED_BYTES && this.child === child) {
        this.fail(new WinnowError('WINNOW_ERR_INTERNAL', 'ffmpeg produced pixels without per-frame showinfo lines (unsupported ffmpeg log format)', {
          details: { stderr: log.lastLines() },
        }));
      }
    });
    child.stdout!.on('error', () => {
      // EPIPE/ECONNRESET while stopping; the exit handler reports real failures.
    });
    if (s.src.readable && child.stdin) {
      const readable = s.src.readable;
      child.stdin.on('error', () => {
        // ffmpeg stopped reading (maxFrames, endMs, failure): the exit status tells what happened.
      });
      readable.once('error', (e: Error) => {
        if (this.child === child) this.fail(new WinnowError('WINNOW_ERR_IO', `input stream failed: ${e.message}`, { cause: e }));
      });
      readable.pipe(child.stdin);
    }
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      log.end();
      if (child.pid !== undefined) this.emit({ type: 'exit', pid: child.pid, code, signal });
      if (this.child !== child) return;
      this.child = undefined;
      clearTimeout(this.stallTimer);
      this.onChildClosed(code, signal, log);
    });
    this.armStall();
  }

  private onChildClosed(code: number | null, signal: NodeJS.Signals | null, log: FfmpegLog): void {
    const s = this.settings;
    this.drainBytes();
    const partial = this.current !== undefined && this.current.filled > 0;
    this.current = undefined;
    this.chunks.length = 0;
    if (this.emitted >= s.maxFrames) return this.finish();
    if (isLifelineExecFailure(code, log.lastLines())) {
      return this.finish(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffmpeg (${s.ffmpegPath})`, { details: { stderr: log.lastLines() } }));
    }
    const failure = (): WinnowError => {
      const elapsedMs = performance.now() - this.spawnedAtMs;
      return classifyFailure({
        kind: s.src.kind,
        live: s.src.live,
        framesEmitted: this.emitted + this.queue.length,
        code,
        signal,
        lines: log.lastLines(),
        source: s.src.label,
        ...(log.pixelLimitExceeded ? { pixelLimitExceeded: { max: s.maxInputPixels } } : {}),
        // rtsp reports a timed-out read only as "Invalid data found"; the attempt's length tells it apart.
        // 90 %: ffmpeg's clock starts a little after ours, and timers are coarse.
        ...((s.src.scheme === 'rtsp' || s.src.scheme === 'rtsps') && s.networkTimeoutMs > 0 && this.emittedThisSession === 0 && elapsedMs >= s.networkTimeoutMs * 0.9
          ? { networkTimedOutAfterMs: s.networkTimeoutMs }
          : {}),
      });
    };
    // A picture over the limit is final: other frames may have decoded, but the source is not acceptable.
    if (log.pixelLimitExceeded) return this.finish(failure());
    if (code === 0 && !partial) {
      if (!s.src.live) {
        if (log.errorsAfterFirstFrameCount > 0) {
          return this.finish(
            new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `input is truncated or corrupt after ${this.emitted} frame(s): ${log.errorsAfterFirstFrame[0]}`, {
              details: { source: s.src.label, stderr: log.lastLines(), errors: log.errorsAfterFirstFrame, errorCount: log.errorsAfterFirstFrameCount },
            }),
          );
        }
        return this.finish();
      }
      return this.retryOrFinish(
        new WinnowError('WINNOW_ERR_SOURCE_UNREACHABLE', `live source ${s.src.label} ended`, { retryable: true, details: { stderr: log.lastLines() } }),
        true,
      );
    }
    const err = failure();
    // What a whitelist refused stays refused: reconnecting would only ask again.
    if (s.src.live && err.code !== 'WINNOW_ERR_FORBIDDEN_SOURCE') return this.retryOrFinish(err, false);
    this.finish(err);
  }

  /** Live sources: reconnect with exponential backoff until `attempts` consecutive failures. */
  private retryOrFinish(err: WinnowError, cleanEnd: boolean): void {
    const s = this.settings;
    if (this.closed || this.finished) return;
    if (this.failuresInRow >= s.attempts) {
      return cleanEnd && this.emitted > 0 ? this.finish() : this.finish(err);
    }
    this.failuresInRow++;
    const delayMs = Math.min(s.maxDelayMs, s.initialDelayMs * 2 ** (this.failuresInRow - 1));
    this.emit({ type: 'reconnect', attempt: this.failuresInRow, delayMs, error: err });
    this.retryTimer = setTimeout(() => this.spawnFfmpeg(), delayMs);
  }

  /**
   * (Re)starts stall detection from now. Activity afterwards only moves `lastActivityMs` (a number store per
   * stdout chunk instead of a timer reset); the single timer re-checks when it fires.
   */
  private armStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    const ms = this.settings.stallTimeoutMs;
    if (ms <= 0 || this.paused || this.closed || !this.child) return;
    this.lastActivityMs = performance.now();
    const child = this.child;
    const check = (): void => {
      this.stallTimer = undefined;
      if (this.child !== child || this.paused || this.closed) return;
      const idleMs = performance.now() - this.lastActivityMs;
      if (idleMs < ms) {
        this.stallTimer = setTimeout(check, ms - idleMs);
        return;
      }
      this.emit({ type: 'stall', idleMs: Math.round(idleMs) });
      const err = new WinnowError('WINNOW_ERR_SOURCE_STALLED', `no frame from ${this.settings.src.label} for ${ms} ms`, {
        retryable: true,
        details: { stderr: this.log?.lastLines() ?? [] },
      });
      this.child = undefined;
      if (this.settings.src.readable && child.stdin) this.settings.src.readable.unpipe(child.stdin);
      void terminate(child, this.settings.killGraceMs);
      if (this.settings.src.live) this.retryOrFinish(err, false);
      else this.finish(err);
    };
    this.stallTimer = setTimeout(check, ms);
  }

  /** Cuts complete frames out of the stdout byte stream; each frame gets one buffer of exactly its size. */
  private drainBytes(): void {
    while (!this.closed && this.chunks.length > 0) {
      if (!this.current) {
        const meta = this.metas.shift();
        if (!meta) return; // bytes arrived before showinfo's line for this frame; wait for stderr
        this.current = { meta, data: Buffer.allocUnsafeSlow(meta.width * meta.height * 3), filled: 0 };
      }
      const cur = this.current;
      const chunk = this.chunks[0];
      const n = Math.min(chunk.length - this.chunkOffset, cur.data.length - cur.filled);
      chunk.copy(cur.data, cur.filled, this.chunkOffset, this.chunkOffset + n);
      cur.filled += n;
      this.chunkOffset += n;
      this.pendingBytes -= n;
      if (this.chunkOffset === chunk.length) {
        this.chunks.shift();
        this.chunkOffset = 0;
      }
      if (cur.filled === cur.data.length) {
        this.current = undefined;
        this.onFrame(cur.meta, cur.data);
      }
    }
  }

  private onFrame(meta: FrameMeta, data: Buffer): void {
    if (this.emitted + this.queue.length >= this.settings.maxFrames) return;
    let ptsMs = Number.isFinite(meta.pts) ? this.sessionOffsetMs + meta.pts : this.lastPtsMs + 1;
    // Live sessions restart ffmpeg's clock on reconnect; keep the stream's timeline strictly increasing.
    if (this.settings.src.live && ptsMs <= this.lastPtsMs) ptsMs = this.lastPtsMs + 1;
    this.lastPtsMs = ptsMs;
    this.failuresInRow = 0;
    this.emittedThisSession++;
    const frame: Frame = { index: -1, ptsMs, width: meta.width, height: meta.height, data };
    this.enqueue(frame);
  }

  private enqueue(frame: Frame): void {
    const s = this.settings;
    this.queue.push(frame);
    if (this.queue.length > s.maxQueuedFrames && s.overflow !== 'pause-source') {
      const evict = this.queue.length - s.maxQueuedFrames;
      this.queue.splice(0, evict);
      this.dropped += evict;
      this.emit({ type: 'drop', droppedFrames: this.dropped });
    }
    this.pump();
    if (s.overflow === 'pause-source' && this.queue.length >= s.maxQueuedFrames && !this.paused && this.child) {
      this.paused = true;
      clearTimeout(this.stallTimer);
      this.child.stdout?.pause();
    }
  }

  /** Hands queued frames to the consumer while it has capacity; re-entrant calls (sync acks) fold into the loop. */
  private pump(): void {
    // Acknowledgements can arrive while an asynchronous policy check is still running.
    if (this.pumping || !this.settings) return;
    this.pumping = true;
    try {
      while (!this.closed && this.queue.length > 0 && this.inFlight < this.settings.maxInFlightFrames) {
        const frame = this.queue.shift()!;
        frame.index = this.emitted++;
        this.inFlight++;
        this.subscriber.next(frame);
        if (!this.options.ack$ && this.inFlight > 0) this.inFlight--;
        if (this.emitted >= this.settings.maxFrames) {
          this.finish();
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
    if (this.closed) return;
    if (this.paused && this.queue.length < this.settings.maxQueuedFrames && this.child) {
      this.paused = false;
      this.child.stdout?.resume();
      this.armStall();
    }
    if (this.terminal && this.queue.length === 0 && this.inFlight === 0) this.deliverTerminal();
  }

  private fail(err: WinnowError): void {
    if (this.closed || this.finished) return;
    // Aborts and setup failures end at once; frames already decoded are dropped with the process.
    this.finished = true;
    this.close();
    this.subscriber.error(err);
  }

  /** Ends the stream after the queued (and in-flight, when acknowledged) frames were delivered. */
  private finish(err?: WinnowError): void {
    if (this.closed || this.finished) return;
    this.finished = true;
    this.terminal = { error: err };
    clearTimeout(this.stallTimer);
    clearTimeout(this.retryTimer);
    this.stopChild();
    if (this.emitted >= this.settings.maxFrames) this.queue.length = 0;
    this.pump();
  }

  private deliverTerminal(): void {
    const t = this.terminal;
    if (!t || this.closed) return;
    this.terminal = undefined;
    const err = t.error;
    this.close();
    if (err) this.subscriber.error(err);
    else this.subscriber.complete();
  }
}
