// openVideo, the ingest stage's entry point. Its parts live in ./open-video/: settings (options →
// checked settings and the ffmpeg command line), ffmpeg-run (one process: lifeline, stall timer),
// frame-splitter (stdout bytes + showinfo metadata → frames), delivery (the bounded queue, overflow
// policies, ack$) and subscription (reconnects, timestamps, how the stream ends).
import { Observable } from 'rxjs';
import type { Frame, OpenVideoOptions, VideoSource } from './types.js';
import { IngestSubscription } from './open-video/subscription.js';

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
    const subscription = new IngestSubscription(source, options, subscriber);
    subscription.start();
    return () => subscription.close();
  });
}
