// A session's inputs, one active at a time: starting and ending them, taking their frames into the
// frame queue (fps sampling, keep-latest, backpressure), and reporting `source.ended` once the last
// of an input's frames has settled, so its counts are final. Every frame that reaches `enqueue` is
// accounted for: queued (then processed or dropped), or counted as dropped right away.
import type { SourcePolicy } from '../../ingest/index.js';
import type { FfmpegEnv, Frame } from '../../ingest/types.js';
import { WinnowError, toWinnowError } from '../../errors.js';
import type { StreamLimits } from '../limits.js';
import type { DropPolicy, SourceDescription, VideoFormat } from '../protocol.js';
import type { SessionConfig } from './config.js';
import type { DropLedger } from './drops.js';
import type { SessionEngine } from './engine-needs.js';
import type { SessionEmitter, SourceEnded } from './events.js';
import { describeSource, feedFromFfmpeg, feedPushedVideo, type VideoInput } from './ffmpeg-feed.js';
import type { FrameQueue } from './frame-queue.js';
import { Input, type InputFormat } from './input.js';
import { JpegFeed } from './jpeg-feed.js';

/** What the inputs need from their session. */
export interface InputsHost {
  readonly events: SessionEmitter;
  readonly drops: DropLedger;
  readonly queue: FrameQueue;
  readonly limits: StreamLimits;
  readonly engine: Pick<SessionEngine, 'inputSize' | 'scheduler'>;
  readonly ffmpeg: { ffmpegPath?: string; env?: FfmpegEnv; sourcePolicy?: SourcePolicy };
  config(): Readonly<SessionConfig>;
  closing(): boolean;
  /** Timeline pts of the newest frame that reached the context. */
  lastPtsMs(): number | undefined;
  assertOpen(): void;
  /** Marks activity (idle detection). */
  touch(): void;
}

/**
 * How `enqueue` places a frame on the session timeline: `sample` applies fps sampling to a capture
 * time, `sampled` maps a pts ffmpeg already sampled, `timeline` is a pts already on the timeline.
 */
export type FrameTiming = 'sample' | 'sampled' | 'timeline';

export class SessionInputs {
  private input: Input | undefined;
  private nextIndex = 0;

  constructor(readonly host: InputsHost) {}

  /** The newest input, ended or not (its ffmpeg may still be exiting). */
  get latest(): Input | undefined {
    return this.input;
  }

  /** The input that still accepts frames, if any. */
  get active(): Input | undefined {
    return this.input && !this.input.ended ? this.input : undefined;
  }

  private begin(desc: SourceDescription, format: InputFormat, live: boolean): Input {
    const h = this.host;
    h.assertOpen();
    if (this.active) {
      throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first', { details: { active: this.input!.desc } });
    }
    h.touch();
    const last = h.lastPtsMs();
    // Inputs continue the session timeline one frame interval after the previous one.
    const ptsOffsetMs = last === undefined ? 0 : last + Math.round(1000 / h.config().fps);
    const input = new Input(desc, format, live, ptsOffsetMs, () => h.config().fps);
    this.input = input;
    h.events.emit('source.opened', desc);
    return input;
  }

  startVideo(format: Exclude<VideoFormat, 'jpeg'>, options: { live?: boolean }): VideoInput {
    const live = options.live ?? true;
    return feedPushedVideo(this, this.begin({ kind: 'input_video', format, live }, format, live), format);
  }

  startJpeg(options: { live?: boolean }): void {
    const live = options.live ?? true;
    const input = this.begin({ kind: 'input_video', format: 'jpeg', live }, 'jpeg', live);
    input.jpeg = new JpegFeed(this, input);
  }

  async pushJpeg(bytes: Uint8Array, ptsMs: number): Promise<void> {
    this.host.assertOpen();
    const input = this.input;
    if (!input || input.ended || !input.jpeg) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no active jpeg input (input_video.start with format jpeg)');
    if (input.endRequested) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'the jpeg input was ended (input_video.end); start a new one');
    if (!Number.isFinite(ptsMs)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `ptsMs must be a finite number, got ${ptsMs}`);
    this.host.touch();
    // Sampling before decoding: an image that would be skipped costs no decode.
    const pts = input.sampler.sample(ptsMs, false);
    if (pts === undefined) {
      this.countDropped(1, 'fps-sampling', input);
      return;
    }
    return input.jpeg.push(bytes, ptsMs, pts);
  }

  async pushFrames(frames: Iterable<Frame> | AsyncIterable<Frame>, options: { live?: boolean; signal?: AbortSignal }): Promise<void> {
    const live = options.live ?? false;
    const input = this.begin({ kind: 'input_video', format: 'frames', live }, 'frames', live);
    try {
      for await (const f of frames as AsyncIterable<Frame>) {
        if (options.signal?.aborted || input.ended) break;
        if (f.data.length !== f.width * f.height * 3) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `frame ${f.index}: data is not width × height × 3 bytes`);
        input.limbo++;
        try {
          await this.enqueueWhenRoom(input, f, 'sample');
        } finally {
          input.limbo--;
          this.maybeEnded(input);
        }
      }
    } catch (e) {
      this.finish(input, 'error', toWinnowError(e));
      throw e;
    }
    this.end();
  }

  openSource(source: Parameters<typeof describeSource>[0], options: { live?: boolean }): SourceDescription {
    const { desc, target, live } = describeSource(source, options);
    const input = this.begin(desc, 'source', live);
    try {
      feedFromFfmpeg(this, input, target, { live });
    } catch (e) {
      this.finish(input, 'error', toWinnowError(e));
      throw e;
    }
    return desc;
  }

  /** No more pushes; the input ends once its producer has delivered its last frame. */
  end(): void {
    const input = this.input;
    if (!input || input.ended || input.endRequested) return;
    input.endRequested = true;
    this.host.touch();
    if (input.ffmpeg?.bytes) input.ffmpeg.bytes.end();
    else if (input.format === 'jpeg' || input.format === 'frames') {
      void (async () => {
        const jpeg = input.jpeg;
        while (jpeg?.decoding) await jpeg.worker;
        input.decodeDone = true;
        this.maybeEnded(input);
      })();
    } else {
      this.closeSource();
    }
  }

  /** Stops the current input now (ffmpeg killed, queued frames of it discarded and counted). */
  closeSource(): void {
    const input = this.input;
    if (!input || input.ended) return;
    this.finish(input, 'closed');
  }

  private stop(input: Input): void {
    input.ffmpeg?.sub?.unsubscribe();
    input.ffmpeg?.bytes?.destroy();
    input.ffmpeg?.ack$?.complete();
    this.host.queue.wakeProducers();
    const waiting = input.jpeg?.discardWaiting() ?? 0;
    if (waiting > 0) this.countDropped(waiting, 'discard-on-close', input);
  }

  /**
   * The input produces no more frames. Closed: its queued frames are discarded (counted). End or
   * error: frames already queued still reach the context. Either way source.ended follows the last
   * frame of the input that was in the model or being decoded, so its counts are final.
   */
  finish(input: Input, reason: SourceEnded['reason'], error?: WinnowError): void {
    if (input.ended) return;
    input.ended = true;
    input.endReason = { reason, ...(error ? { error } : {}) };
    this.stop(input);
    if (reason === 'closed') {
      const discarded = this.host.queue.removeInput(input);
      input.outstanding -= discarded;
      if (discarded > 0) this.countDropped(discarded, 'discard-on-close', input);
    }
    this.emitEnded(input);
  }

  /** Emits source.ended once the input is ended and none of its frames is queued, in the model or in limbo (`force`: now). */
  emitEnded(input: Input, force = false): void {
    if (input.endEmitted || !input.endReason) return;
    if (!force && !input.settled) return;
    input.endEmitted = true;
    // The drop counts go out first: a client that stops listening at source.ended has them all.
    this.host.drops.flush();
    const { reason, error } = input.endReason;
    this.host.events.emit('source.ended', { source: input.desc, frames: input.processed, dropped: input.dropped, reason, ...(error ? { error } : {}) });
  }

  /** Ends the input once its producer is done and its last frame settled; emits source.ended when due. */
  maybeEnded(input: Input): void {
    if (!input.settled) return;
    if (!input.ended && input.decodeDone && (input.jpeg?.idle ?? true)) this.finish(input, 'end');
    else if (input.ended) this.emitEnded(input);
  }

  countDropped(n: number, policy: DropPolicy, input: Input | undefined): void {
    this.host.drops.count(n, policy, input);
  }

  /** Non-live inputs wait for queue room; frames of an input that ends meanwhile are counted as discarded. */
  async enqueueWhenRoom(input: Input, f: Frame, timing: FrameTiming): Promise<void> {
    const { queue } = this.host;
    while (!input.live && !input.ended && !this.host.closing() && queue.full) await queue.waitForRoom();
    this.enqueue(input, f, timing);
  }

  /** Queues a frame for the model (see FrameTiming); a live input's full queue loses its oldest frame. */
  enqueue(input: Input, f: Frame, timing: FrameTiming): void {
    const h = this.host;
    if (h.closing() || input.ended) {
      this.countDropped(1, 'discard-on-close', input);
      input.ack();
      return;
    }
    const pts = timing === 'timeline' ? f.ptsMs : input.sampler.sample(f.ptsMs, timing === 'sampled');
    if (pts === undefined) {
      this.countDropped(1, 'fps-sampling', input);
      return;
    }
    h.touch();
    input.received++;
    input.outstanding++;
    if (input.live && h.queue.full) {
      const old = h.queue.dropOldest()!;
      old.input.outstanding--;
      old.input.ack();
      this.countDropped(1, 'keep-latest', old.input);
      if (old.input !== input) this.maybeEnded(old.input);
    }
    const frame: Frame = { index: this.nextIndex++, ptsMs: pts, width: f.width, height: f.height, data: f.data };
    h.queue.push({ frame, input, enqueuedAt: performance.now() });
    h.events.emit('queued', { index: frame.index, ptsMs: frame.ptsMs });
    h.engine.scheduler.wake();
  }
}
