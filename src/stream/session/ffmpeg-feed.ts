// Inputs that ffmpeg decodes: container bytes pushed by the client (mp4, webm, mpegts, mjpeg) and
// server-side sources (a path or URL). openVideo samples and resizes; non-live inputs acknowledge
// each settled frame so ffmpeg pauses instead of outrunning the model.
import { PassThrough } from 'node:stream';
import { Subject } from 'rxjs';
import { toWinnowError } from '../../errors.js';
import { isConfinedSource, openVideo, type ConfinedSource } from '../../ingest/index.js';
import { LIVE_SCHEMES } from '../../ingest/network.js';
import { networkSchemeOf, redactUrl } from '../../ingest/source.js';
import type { IngestEvent } from '../../ingest/types.js';
import type { SourceDescription, VideoFormat } from '../protocol.js';
import type { Input } from './input.js';
import type { SessionInputs } from './inputs.js';

export interface VideoInput {
  /** Appends container bytes. false: the buffer is full, wait for `drained()` before writing more. */
  write(chunk: Uint8Array): boolean;
  drained(): Promise<void>;
  /** No more bytes; the input ends once ffmpeg has delivered its last frame. */
  end(): void;
}

const FFMPEG_FORMAT: Readonly<Record<Exclude<VideoFormat, 'jpeg'>, string | undefined>> = {
  // mp4 and webm are recognised by probing; naming them would stop ffmpeg from accepting the
  // fragmented variants browsers and muxers produce.
  mp4: undefined,
  webm: undefined,
  mpegts: 'mpegts',
  mjpeg: 'mjpeg',
};

/** How a named or confined source is described to clients (URLs redacted), fed to ffmpeg, and paced. */
export function describeSource(
  source: { url: string } | { path: string } | ConfinedSource,
  options: { live?: boolean },
): { desc: SourceDescription; target: string | ConfinedSource; live: boolean } {
  const confined = isConfinedSource(source) ? source : undefined;
  const url = confined ? confined.url : 'url' in source ? source.url : undefined;
  const named = source as { url?: string; path?: string };
  const target: string | ConfinedSource = confined ?? named.url ?? named.path ?? '';
  // Live unless told otherwise: ingest's streaming schemes (rtsp, rtmp, srt, udp, …).
  const scheme = url !== undefined ? networkSchemeOf(url) : undefined;
  const live = options.live ?? (scheme !== undefined && LIVE_SCHEMES.has(scheme));
  const desc: SourceDescription =
    url !== undefined ? { kind: 'url', url: confined ? confined.label : redactUrl(url), live } : { kind: 'path', path: confined ? confined.label : (source as { path: string }).path, live };
  return { desc, target, live };
}

/** Starts ffmpeg on the pushed container bytes of `input` and returns the writer for them. */
export function feedPushedVideo(inputs: SessionInputs, input: Input, format: Exclude<VideoFormat, 'jpeg'>): VideoInput {
  const bytes = new PassThrough({ highWaterMark: inputs.host.limits.maxBufferedInputBytes });
  // ffmpeg exiting early makes writes fail with EPIPE; the input reports the exit itself.
  bytes.on('error', () => undefined);
  // Pushed bytes stop whenever the client stops; idle detection, not a stall timer, ends those.
  feedFromFfmpeg(inputs, input, bytes, { inputFormat: FFMPEG_FORMAT[format], live: false, stallTimeoutMs: 0 });
  return {
    write: (chunk) => {
      if (input.ended || bytes.destroyed || bytes.writableEnded) return true;
      inputs.host.touch();
      return bytes.write(chunk);
    },
    drained: () =>
      input.ended || bytes.destroyed || !bytes.writableNeedDrain
        ? Promise.resolve()
        : new Promise<void>((r) => {
            const done = (): void => {
              bytes.off('drain', done);
              bytes.off('close', done);
              r();
            };
            bytes.once('drain', done);
            bytes.once('close', done);
          }),
    end: () => {
      if (!bytes.writableEnded) bytes.end();
    },
  };
}

/** Decodes `source` with openVideo into `input`'s frames. */
export function feedFromFfmpeg(
  inputs: SessionInputs,
  input: Input,
  source: string | PassThrough | ConfinedSource,
  opts: { inputFormat?: string; live?: boolean; stallTimeoutMs?: number },
): void {
  const h = inputs.host;
  const cfg = h.config();
  const ack$ = input.live ? undefined : new Subject<void>();
  input.ffmpeg = { ingestDropped: 0, ...(ack$ ? { ack$ } : {}), ...(source instanceof PassThrough ? { bytes: source } : {}) };
  const frames$ = openVideo(source, {
    fps: cfg.fps,
    size: h.engine.inputSize,
    resize: cfg.resize,
    ...(opts.inputFormat ? { inputFormat: opts.inputFormat } : {}),
    ...(opts.live !== undefined ? { live: opts.live } : {}),
    ...(opts.stallTimeoutMs !== undefined ? { stallTimeoutMs: opts.stallTimeoutMs } : {}),
    ...(ack$ ? { ack$, maxInFlightFrames: h.limits.maxQueuedFrames } : {}),
    ...(h.ffmpeg.ffmpegPath ? { ffmpegPath: h.ffmpeg.ffmpegPath } : {}),
    ...(h.ffmpeg.env ? { env: h.ffmpeg.env } : {}),
    // Client-named sources, pushed containers too: nothing decodes past the pixel limit.
    maxInputPixels: h.limits.maxInputPixels,
    ...(h.ffmpeg.sourcePolicy && typeof source === 'string' ? { policy: h.ffmpeg.sourcePolicy } : {}),
    onEvent: (e) => onIngestEvent(inputs, input, e),
  });
  input.ffmpeg.sub = frames$.subscribe({
    next: (f) => inputs.enqueue(input, f, 'sampled'),
    error: (e: unknown) => inputs.finish(input, 'error', toWinnowError(e)),
    complete: () => {
      input.decodeDone = true;
      inputs.maybeEnded(input);
    },
  });
}

function onIngestEvent(inputs: SessionInputs, input: Input, e: IngestEvent): void {
  if (e.type === 'spawn') input.pids.add(e.pid);
  else if (e.type === 'exit') {
    input.pids.delete(e.pid);
    if (input.pids.size === 0) input.exited.wakeAll();
  } else if (e.type === 'reconnect') {
    inputs.host.events.emit('source.reconnecting', { source: input.desc, attempt: e.attempt, delayMs: e.delayMs, reason: e.error.message });
  } else if (e.type === 'drop' && input.ffmpeg) {
    // Ingest reports its running total; count only what is new.
    const n = e.droppedFrames - input.ffmpeg.ingestDropped;
    input.ffmpeg.ingestDropped = e.droppedFrames;
    if (n > 0) inputs.countDropped(n, 'keep-latest', input);
  }
}
