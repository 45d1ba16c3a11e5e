// One openVideo subscription: resolves its settings, runs ffmpeg (again, with backoff, when a live
// source drops), times each frame, and ends the Observable once the frames it decoded have been
// delivered: `complete`, or `error` with the classified failure.
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Subscriber, Subscription } from 'rxjs';
import { WinnowError, abortError, toWinnowError } from '../../errors.js';
import { classifyFailure, type FrameMeta } from '../ffmpeg-log.js';
import { isLifelineExecFailure } from '../process.js';
import type { Frame, IngestEvent, OpenVideoOptions, VideoSource } from '../types.js';
import { FrameDelivery } from './delivery.js';
import { FfmpegRun, type RunExit } from './ffmpeg-run.js';
import { buildArgs, prepare, type Settings } from './settings.js';

export class IngestSubscription {
  private settings: Settings | undefined;
  private delivery: FrameDelivery | undefined;
  /** The ffmpeg process running now (at most one). */
  private run: FfmpegRun | undefined;
  private closed = false;
  private finished = false;
  private attemptNo = 0;
  private failuresInRow = 0;
  private readonly openedAtMs = performance.now();
  /** Where the running process's timestamps start on the stream's timeline. */
  private runOffsetMs = 0;
  private lastPtsMs = Number.NEGATIVE_INFINITY;
  /** How the stream ends once everything queued was delivered. */
  private terminal: { error?: WinnowError } | undefined;
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
    // Acknowledgements can arrive while an asynchronous policy check is still running: nothing is out yet.
    if (this.options.ack$) this.ackSub = this.options.ack$.subscribe({ next: () => this.delivery?.ack() });
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.ackSub?.unsubscribe();
    clearTimeout(this.retryTimer);
    this.delivery?.close();
    this.stopRun();
  }

  private begin(settings: Settings): void {
    this.settings = settings;
    this.delivery = new FrameDelivery(settings, this.options.ack$ !== undefined, {
      next: (frame) => this.subscriber.next(frame),
      dropped: (droppedFrames) => this.emit({ type: 'drop', droppedFrames }),
      pause: () => this.run?.pause(),
      resume: () => this.run?.resume(),
      limitReached: () => this.finish(),
      drained: () => {
        if (this.terminal) this.deliverTerminal();
      },
    });
    const src = settings.src;
    if (src.kind !== 'file') return this.spawnFfmpeg();
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
  }

  private emit(event: IngestEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // An observer's bug must not break the stream or leak the process.
    }
  }

  private stopRun(): void {
    this.run?.stop();
    this.run = undefined;
  }

  private spawnFfmpeg(): void {
    if (this.closed) return;
    const s = this.settings!;
    const delivery = this.delivery!;
    this.attemptNo++;
    this.runOffsetMs = s.src.live ? performance.now() - this.openedAtMs : s.startMs;
    const run: FfmpegRun = new FfmpegRun(s, buildArgs(s, this.options.inputOptions ?? [], s.maxFrames - delivery.emitted), this.attemptNo, {
      frame: (meta, data) => this.onFrame(run, meta, data),
      event: (e) => this.emit(e),
      failed: (err) => this.fail(err),
      stalled: (err) => {
        this.run = undefined;
        if (s.src.live) this.retryOrFinish(err, false);
        else this.finish(err);
      },
      exited: (exit) => {
        this.run = undefined;
        this.onExited(run, exit);
      },
    });
    this.run = run;
    run.start();
  }

  private onExited(run: FfmpegRun, { code, signal, log, partialFrame }: RunExit): void {
    const s = this.settings!;
    const delivery = this.delivery!;
    if (delivery.emitted >= s.maxFrames) return this.finish();
    if (isLifelineExecFailure(code, log.lastLines())) {
      return this.finish(new WinnowError('WINNOW_ERR_FFMPEG_NOT_FOUND', `cannot start ffmpeg (${s.ffmpegPath})`, { details: { stderr: log.lastLines() } }));
    }
    const failure = (): WinnowError => {
      const elapsedMs = performance.now() - run.spawnedAtMs;
      return classifyFailure({
        kind: s.src.kind,
        live: s.src.live,
        framesEmitted: delivery.emitted + delivery.queued,
        code,
        signal,
        lines: log.lastLines(),
        source: s.src.label,
        ...(log.pixelLimitExceeded ? { pixelLimitExceeded: { max: s.maxInputPixels } } : {}),
        // rtsp reports a timed-out read only as "Invalid data found"; the attempt's length tells it apart.
        // 90 %: ffmpeg's clock starts a little after ours, and timers are coarse.
        ...((s.src.scheme === 'rtsp' || s.src.scheme === 'rtsps') && s.networkTimeoutMs > 0 && run.framesTaken === 0 && elapsedMs >= s.networkTimeoutMs * 0.9
          ? { networkTimedOutAfterMs: s.networkTimeoutMs }
          : {}),
      });
    };
    // A picture over the limit is final: other frames may have decoded, but the source is not acceptable.
    if (log.pixelLimitExceeded) return this.finish(failure());
    if (code === 0 && !partialFrame) {
      if (!s.src.live) {
        if (log.errorsAfterFirstFrameCount > 0) {
          return this.finish(
            new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `input is truncated or corrupt after ${delivery.emitted} frame(s): ${log.errorsAfterFirstFrame[0]}`, {
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
    const s = this.settings!;
    if (this.closed || this.finished) return;
    if (this.failuresInRow >= s.attempts) {
      return cleanEnd && this.delivery!.emitted > 0 ? this.finish() : this.finish(err);
    }
    this.failuresInRow++;
    const delayMs = Math.min(s.maxDelayMs, s.initialDelayMs * 2 ** (this.failuresInRow - 1));
    this.emit({ type: 'reconnect', attempt: this.failuresInRow, delayMs, error: err });
    this.retryTimer = setTimeout(() => this.spawnFfmpeg(), delayMs);
  }

  private onFrame(run: FfmpegRun, meta: FrameMeta, data: Buffer): void {
    const delivery = this.delivery!;
    if (this.closed || delivery.emitted + delivery.queued >= this.settings!.maxFrames) return;
    let ptsMs = Number.isFinite(meta.pts) ? this.runOffsetMs + meta.pts : this.lastPtsMs + 1;
    // Live sessions restart ffmpeg's clock on reconnect; keep the stream's timeline strictly increasing.
    if (this.settings!.src.live && ptsMs <= this.lastPtsMs) ptsMs = this.lastPtsMs + 1;
    this.lastPtsMs = ptsMs;
    this.failuresInRow = 0;
    run.framesTaken++;
    delivery.push({ index: -1, ptsMs, width: meta.width, height: meta.height, data });
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
    clearTimeout(this.retryTimer);
    this.stopRun();
    const delivery = this.delivery!;
    if (delivery.emitted >= this.settings!.maxFrames) delivery.discardQueued();
    delivery.pump();
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
