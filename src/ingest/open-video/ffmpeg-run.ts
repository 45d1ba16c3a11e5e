// One ffmpeg process of a subscription (a reconnecting source has several, one after another):
// spawned with the lifeline, its stdout cut into frames, its stderr read, watched for stalls, and
// stopped (SIGTERM, then SIGKILL after the grace period). Once stopped, or once it has exited, it
// reports nothing more.
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { WinnowError } from '../../errors.js';
import { FfmpegLog, type FrameMeta } from '../ffmpeg-log.js';
import { spawnWithLifeline, terminate } from '../process.js';
import type { IngestEvent } from '../types.js';
import { FrameSplitter } from './frame-splitter.js';
import type { Settings } from './settings.js';

/** stdout bytes allowed to wait for their frame's showinfo line (normally they wait for at most one pipe buffer). */
const MAX_UNFRAMED_BYTES = 256 * 1024 * 1024;

export interface RunExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  log: FfmpegLog;
  /** The process ended in the middle of a frame's pixels. */
  partialFrame: boolean;
}

export interface FfmpegRunHandlers {
  frame(meta: FrameMeta, data: Buffer): void;
  /** `spawn`, `stall` and `exit` (exits are reported even after `stop`). */
  event(e: IngestEvent): void;
  /** The run cannot go on (cannot start, unsupported log format, input stream failed). */
  failed(err: WinnowError): void;
  /** No output for `stallTimeoutMs`; the run has stopped itself. */
  stalled(err: WinnowError): void;
  /** The process exited on its own; every complete frame has been reported. */
  exited(exit: RunExit): void;
}

export class FfmpegRun {
  private child: ChildProcess | undefined;
  private stopped = false;
  private paused = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private lastActivityMs = 0;
  private readonly splitter: FrameSplitter;
  readonly log: FfmpegLog;
  spawnedAtMs = 0;
  /** Frames this process produced that the subscription took. */
  framesTaken = 0;

  constructor(
    private readonly s: Settings,
    readonly args: readonly string[],
    readonly attempt: number,
    private readonly on: FfmpegRunHandlers,
  ) {
    this.splitter = new FrameSplitter((meta, data) => on.frame(meta, data));
    this.log = new FfmpegLog({
      onFrameMeta: (meta) => {
        if (!this.stopped) this.splitter.pushMeta(meta);
      },
      onProgress: () => {
        // Progress blocks prove a file decode is moving even while the select filter emits nothing.
        if (!this.stopped && !s.src.live) this.lastActivityMs = performance.now();
      },
    });
  }

  /** Spawns ffmpeg; a spawn that fails is reported through `failed`. */
  start(): void {
    const s = this.s;
    let child: ChildProcess;
    try {
      child = spawnWithLifeline(s.ffmpegPath, [...this.args], { stdio: [s.src.kind === 'readable' ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    } catch (e) {
      this.stopped = true;
      this.on.failed(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffmpeg (${s.ffmpegPath})`, { cause: e }));
      return;
    }
    this.child = child;
    this.spawnedAtMs = performance.now();
    const log = this.log;
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (this.stopped) return;
      this.detach();
      const code = e.code === 'ENOENT' || e.code === 'EACCES' ? 'WINNOW_ERR_FFMPEG_NOT_FOUND' : 'WINNOW_ERR_FFMPEG_EXIT';
      this.on.failed(new WinnowError(code, `cannot start ffmpeg (${s.ffmpegPath}): ${e.message}`, { cause: e }));
    });
    if (child.pid !== undefined) this.on.event({ type: 'spawn', pid: child.pid, attempt: this.attempt, args: this.args });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (t: string) => log.push(t));
    child.stdout!.on('data', (b: Buffer) => {
      if (this.stopped) return;
      this.lastActivityMs = performance.now();
      this.splitter.pushBytes(b);
      // Pixels piling up without metadata mean this ffmpeg logs in a format we do not parse: fail, don't grow.
      if (this.splitter.pendingBytes > MAX_UNFRAMED_BYTES && !this.stopped) {
        this.on.failed(new WinnowError('WINNOW_ERR_INTERNAL', 'ffmpeg produced pixels without per-frame showinfo lines (unsupported ffmpeg log format)', {
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
      const onReadableError = (e: Error): void => {
        if (!this.stopped) this.on.failed(new WinnowError('WINNOW_ERR_IO', `input stream failed: ${e.message}`, { cause: e }));
      };
      // `on`, removed when this run detaches: a caller's stream outlives the run and may fail twice.
      readable.on('error', onReadableError);
      this.removeReadableListener = () => readable.off('error', onReadableError);
      readable.pipe(child.stdin);
    }
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      log.end();
      if (child.pid !== undefined) this.on.event({ type: 'exit', pid: child.pid, code, signal });
      if (this.stopped) return;
      this.detach();
      this.splitter.drain();
      const partialFrame = this.splitter.hasPartialFrame;
      this.splitter.clear();
      this.on.exited({ code, signal, log, partialFrame });
    });
    this.armStall();
  }

  /** Stops reading stdout (ffmpeg blocks on its write); stall detection rests meanwhile. */
  pause(): void {
    if (this.paused || this.stopped || !this.child) return;
    this.paused = true;
    clearTimeout(this.stallTimer);
    this.child.stdout?.pause();
  }

  resume(): void {
    if (!this.paused || this.stopped || !this.child) return;
    this.paused = false;
    this.child.stdout?.resume();
    this.armStall();
  }

  /** Stops the process (if it still runs) and reports nothing more. Idempotent. */
  stop(): void {
    const child = this.child;
    this.detach();
    this.splitter.clear();
    if (!child) return;
    if (this.s.src.readable && child.stdin) this.s.src.readable.unpipe(child.stdin);
    void terminate(child, this.s.killGraceMs);
  }

  private removeReadableListener: (() => void) | undefined;

  private detach(): void {
    this.removeReadableListener?.();
    this.removeReadableListener = undefined;
    this.stopped = true;
    this.child = undefined;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  /**
   * (Re)starts stall detection from now. Activity afterwards only moves `lastActivityMs` (a number store per
   * stdout chunk instead of a timer reset); the single timer re-checks when it fires.
   */
  private armStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    const ms = this.s.stallTimeoutMs;
    if (ms <= 0 || this.paused || this.stopped || !this.child) return;
    this.lastActivityMs = performance.now();
    const check = (): void => {
      this.stallTimer = undefined;
      if (this.stopped || this.paused) return;
      const idleMs = performance.now() - this.lastActivityMs;
      if (idleMs < ms) {
        this.stallTimer = setTimeout(check, ms - idleMs);
        return;
      }
      this.on.event({ type: 'stall', idleMs: Math.round(idleMs) });
      const err = new WinnowError('WINNOW_ERR_SOURCE_STALLED', `no frame from ${this.s.src.label} for ${ms} ms`, {
        retryable: true,
        details: { stderr: this.log.lastLines() },
      });
      this.stop();
      this.on.stalled(err);
    };
    this.stallTimer = setTimeout(check, ms);
  }
}
