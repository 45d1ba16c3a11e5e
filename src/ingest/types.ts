import type { Readable } from 'node:stream';
import type { Observable } from 'rxjs';
import type { WinnowError } from '../errors.js';
import type { ConfinedSource, SourcePolicy } from './confine.js';

/** One decoded video frame, packed RGB24 (row-major, 3 bytes per pixel, no row padding). */
export interface Frame {
  /** 0-based index among the frames this stream emitted. */
  index: number;
  /** Presentation time in the source timeline, milliseconds. */
  ptsMs: number;
  width: number;
  height: number;
  /** width * height * 3 bytes. */
  data: Uint8Array;
}

/** A capture device, e.g. `{ device: '/dev/video0' }` (Linux v4l2 by default). */
export interface DeviceSource {
  device: string;
  /** ffmpeg input format (`-f`). Default `v4l2`. Any ffmpeg input device/format works (e.g. `lavfi`). */
  format?: string;
}

/**
 * Where frames come from:
 * - a local file path (any container/codec ffmpeg decodes, still images included);
 * - a URL: `http(s)://`, `rtsp://` (TCP transport), `rtmp://`, `srt://`;
 * - a capture device;
 * - a Node `Readable` of container bytes (fragmented MP4, WebM/Matroska, MPEG-TS, MJPEG) fed to ffmpeg's stdin.
 */
/** A path or URL, a device, a byte stream, or a source a SourcePolicy confined. */
export type VideoSource = string | DeviceSource | Readable | ConfinedSource;

/** Output size in pixels. */
export interface FrameSize {
  width: number;
  height: number;
}

/**
 * How a frame is fitted into `size`:
 * - `pad`: scale to fit inside keeping aspect ratio (bicubic), centre, fill the rest with `padColor`
 *   (the default model's "fit" preprocessing, docs/default-model.md);
 * - `stretch`: scale to exactly `size`, ignoring aspect ratio;
 * - `crop`: scale to cover `size` keeping aspect ratio, then crop the centre.
 */
export type ResizeMode = 'pad' | 'stretch' | 'crop';

/**
 * What happens when decoded frames arrive faster than the consumer takes them:
 * - `pause-source`: stop reading ffmpeg's stdout so ffmpeg blocks (no frame is lost; default for files and Readables);
 * - `keep-latest`: keep only the newest undelivered frame, count the replaced ones as dropped (default for live);
 * - `drop-oldest`: keep the newest `maxQueuedFrames` frames, count the evicted ones as dropped.
 */
export type OverflowPolicy = 'pause-source' | 'keep-latest' | 'drop-oldest';

export interface ReconnectOptions {
  /** Consecutive reconnect attempts before the stream errors. Reset by every decoded frame. Default 5 (live), 0 otherwise. */
  attempts?: number;
  /** Delay before the first reconnect; doubles every attempt. Default 500 ms. */
  initialDelayMs?: number;
  /** Upper bound for the doubling delay. Default 10 000 ms. */
  maxDelayMs?: number;
}

/** Values the entry point (CLI, server) read from its environment; the library never reads env itself. */
export interface FfmpegEnv {
  WINNOW_FFMPEG?: string;
  WINNOW_FFPROBE?: string;
}

export interface FfmpegLocateOptions {
  /** Explicit ffmpeg binary; wins over everything. */
  ffmpegPath?: string;
  /** Explicit ffprobe binary; wins over everything. */
  ffprobePath?: string;
  /** WINNOW_FFMPEG / WINNOW_FFPROBE as read by the entry point. */
  env?: FfmpegEnv;
  /**
   * The PATH list searched for `ffmpeg`/`ffprobe`. Default: the PATH this process was started with (the same
   * list `child_process.spawn` would search).
   */
  searchPath?: string;
}

export interface OpenVideoOptions extends FfmpegLocateOptions {
  /** Frames per second to sample, chosen by timestamp (VFR-safe, at most one frame per 1/fps bucket). `'source'` = every frame. Default 1. */
  fps?: number | 'source';
  /** Output size. Default: the source size (after rotation). */
  size?: FrameSize;
  /** Default `pad`. */
  resize?: ResizeMode;
  /** Fill colour for `pad`, `0xRRGGBB`. Default `0x7f7f7f` (the default model's pad colour). */
  padColor?: string;
  /** Start of the window in the source timeline, ms. Default 0. */
  startMs?: number;
  /** End of the window (exclusive), ms. Default: end of source. */
  endMs?: number;
  /** Stop after this many frames. Default unlimited. */
  maxFrames?: number;
  /** Default `pause-source` for files and Readables, `keep-latest` for live sources. */
  overflow?: OverflowPolicy;
  /** Decoded frames held while the consumer is busy (the bounded queue). Default 2. `keep-latest` always holds 1. */
  maxQueuedFrames?: number;
  /**
   * Acknowledgements for asynchronous consumers. Without it a frame counts as consumed when the subscriber's
   * `next` returns (right for synchronous consumers). With it, at most `maxInFlightFrames` frames are
   * handed out before the consumer emits once on `ack$` per frame it finished, which is what keeps
   * `concatMap(async …)` from buffering the whole file.
   */
  ack$?: Observable<unknown>;
  /** Frames handed to the consumer and not yet acknowledged on `ack$`. Default 1. */
  maxInFlightFrames?: number;
  /** Treat the source as live (reconnect, stall detection, drop instead of pause). Default: true for rtsp/rtmp/srt/udp URLs and devices. */
  live?: boolean;
  /** ffmpeg input format hint (`-f`), needed for some Readable byte streams (e.g. `mjpeg`, `mpegts`). */
  inputFormat?: string;
  /** Extra ffmpeg input options placed before `-i` (e.g. `['-video_size', '1280x720']` for a webcam). */
  inputOptions?: readonly string[];
  reconnect?: ReconnectOptions;
  /**
   * Confines a string source a client named before anything is spawned: `scheme://…` is checked as a URL,
   * anything else as a path under the policy's roots (see `SourcePolicy.confine`). Refusals surface as
   * `WINNOW_ERR_FORBIDDEN_SOURCE` errors on the Observable. Readables stay allowed (ffmpeg then reaches
   * only its stdin, and only self-contained demuxers); devices are refused.
   */
  policy?: SourcePolicy;
  /**
   * Largest decoded picture in pixels (width·height), passed to ffmpeg's decoders as `-max_pixels`, so a
   * small file declaring a huge picture cannot make ffmpeg allocate gigabytes. A bigger picture fails the
   * stream with `WINNOW_ERR_LIMIT_EXCEEDED` (`details: { limit: 'maxInputPixels', max }`). Default
   * 8192·8192 = 67 108 864 (8K is 33 177 600).
   */
  maxInputPixels?: number;
  /**
   * URL sources: a read that waits longer than this fails (ffmpeg `-rw_timeout`, rtsp `-timeout`/`-stimeout`,
   * udp/srt `-timeout`), so ffmpeg never hangs on a peer that stopped answering. rtp has no such option; the
   * stall timeout covers it. Default 10 000 ms; 0 disables.
   */
  networkTimeoutMs?: number;
  /** No decoded frame for this long while the consumer is waiting → reconnect (live) or error. Default 15 000 ms live, 60 000 ms otherwise. 0 disables. */
  stallTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping ffmpeg. Default 2 000 ms. */
  killGraceMs?: number;
  signal?: AbortSignal;
  /** Lifecycle events: process spawn/exit, reconnects, stalls, drops. Called synchronously; must not throw. */
  onEvent?: (event: IngestEvent) => void;
}

export type IngestEvent =
  | { type: 'spawn'; pid: number; attempt: number; args: readonly string[] }
  | { type: 'exit'; pid: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'reconnect'; attempt: number; delayMs: number; error: WinnowError }
  | { type: 'stall'; idleMs: number }
  | { type: 'drop'; droppedFrames: number };

/** What `probe` learns about a source. Sizes are after rotation, as frames come out of `openVideo`. */
export interface ProbeResult {
  /** Container duration, ms; null when unknown (live, pipes, still images). */
  durationMs: number | null;
  /** Average frame rate; null when unknown. */
  fps: number | null;
  width: number;
  height: number;
  /**
   * Display rotation, counter-clockwise degrees (0, 90, 180, 270; FFmpeg's display-matrix convention). openVideo
   * applies it (ffmpeg autorotate) and width/height already account for it.
   */
  rotationDeg: number;
  /** Video codec name as ffmpeg calls it (h264, vp9, mjpeg, png…). */
  codec: string;
  pixelFormat: string | null;
  /** ffmpeg's demuxer name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  formatName: string;
  /** A single picture (PNG/JPEG…): openVideo yields exactly one frame. */
  isStill: boolean;
  isLive: boolean;
  hasAudio: boolean;
}

export interface ProbeOptions extends FfmpegLocateOptions {
  signal?: AbortSignal;
  /** Give up after this long. Default 20 000 ms. */
  timeoutMs?: number;
  /** Default: inferred from the source kind like openVideo. */
  live?: boolean;
  inputFormat?: string;
  /** URL sources: network read timeout, as `OpenVideoOptions.networkTimeoutMs`. Default 10 000 ms. */
  networkTimeoutMs?: number;
}
