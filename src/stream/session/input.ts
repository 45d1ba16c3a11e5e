// One input of a session (pushed container bytes, JPEGs, RGB frames or a server-side source): what
// it is, how many of its frames went where, where it is in its life, and its place on the session
// timeline. The feeds (ffmpeg-feed.ts, jpeg-feed.ts) and SessionInputs act on it.
import { randomUUID } from 'node:crypto';
import type { PassThrough } from 'node:stream';
import type { Subject, Subscription } from 'rxjs';
import type { WinnowError } from '../../errors.js';
import { Waiters } from '../../util/deferred.js';
import type { SourceDescription, VideoFormat } from '../protocol.js';
import type { SourceEnded } from './events.js';
import type { JpegFeed } from './jpeg-feed.js';

export type InputFormat = VideoFormat | 'frames' | 'source';

/** The ffmpeg side of an input decoded by openVideo (pushed container bytes, a source). */
export interface FfmpegPlumbing {
  sub?: Subscription;
  /** Pushed container bytes on their way to ffmpeg's stdin. */
  bytes?: PassThrough;
  /** Acknowledges each settled frame, so a non-live input pauses ffmpeg instead of piling up. */
  ack$?: Subject<void>;
  /** The ingest stage's cumulative drop counter as last seen (its events carry totals). */
  ingestDropped: number;
}

/**
 * fps sampling by capture time for inputs ffmpeg does not sample (JPEGs, RGB frames): at most one
 * frame per 1/fps interval, none before the input's first. Maps every kept frame onto the session
 * timeline, which continues one frame interval after the previous input.
 */
export class FpsSampler {
  private firstPtsMs: number | undefined;
  private lastBucket = -1;

  constructor(
    private readonly ptsOffsetMs: number,
    /** Read at every frame: an fps change applies from the next frame. */
    private readonly fps: () => number,
  ) {}

  /** `sampled`: ffmpeg already sampled the frame, only map its pts. Returns the timeline pts, or undefined to skip the frame. */
  sample(ptsMs: number, sampled: boolean): number | undefined {
    if (this.firstPtsMs === undefined) this.firstPtsMs = ptsMs;
    const rel = ptsMs - this.firstPtsMs;
    if (!sampled) {
      if (rel < 0) return undefined;
      const bucket = Math.floor((rel * this.fps()) / 1000 + 1e-9);
      if (bucket <= this.lastBucket) return undefined;
      this.lastBucket = bucket;
    }
    return this.ptsOffsetMs + Math.max(0, rel);
  }
}

export class Input {
  readonly id = `in_${randomUUID().slice(0, 8)}`;

  // Where its frames went.
  /** Frames accepted from this input (after fps sampling). */
  received = 0;
  /** Frames of this input that reached the context. */
  processed = 0;
  /** Frames of this input dropped (all policies). */
  dropped = 0;
  /** Frames of this input still queued or in the model. */
  outstanding = 0;
  /** Frames accepted but not queued yet: a JPEG being decoded, a non-live frame waiting for queue room. */
  limbo = 0;

  // Where it is in its life.
  /** input_video.end / endInput was called: no more pushes. */
  endRequested = false;
  /** The producer has delivered its last frame (ffmpeg completed, the pushes were ended). */
  decodeDone = false;
  /** No more frames are accepted (end, close or error); a new input may start. */
  ended = false;
  /** source.ended was emitted (after the input's last queued frame settled, unless closed). */
  endEmitted = false;
  endReason: { reason: SourceEnded['reason']; error?: WinnowError } | undefined;

  /** ffmpeg processes of this input still running. */
  readonly pids = new Set<number>();
  /** Woken when the last of `pids` exits. */
  readonly exited = new Waiters();
  ffmpeg: FfmpegPlumbing | undefined;
  /** Set for `jpeg` inputs. */
  jpeg: JpegFeed | undefined;
  readonly sampler: FpsSampler;

  constructor(
    readonly desc: SourceDescription,
    readonly format: InputFormat,
    /** Drops frames it cannot keep up with (keep-latest) rather than pausing its producer. */
    readonly live: boolean,
    ptsOffsetMs: number,
    fps: () => number,
  ) {
    this.sampler = new FpsSampler(ptsOffsetMs, fps);
  }

  /** None of its frames is queued, in the model, or on its way to the queue. */
  get settled(): boolean {
    return this.outstanding === 0 && this.limbo === 0;
  }

  /** A frame of it settled (reached the context or failed): a non-live producer may send the next. */
  ack(): void {
    this.ffmpeg?.ack$?.next();
  }
}
