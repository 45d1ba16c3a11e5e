// What each client event does to its connection's session (the server has already checked the
// message's size, structure and schema). Client-named sources are confined here, before an input
// starts, so a refusal is an error for that event.
import { WinnowError } from '../../errors.js';
import { SourcePolicy, resolveFfmpegPath } from '../../ingest/index.js';
import type { FfmpegEnv } from '../../ingest/types.js';
import { WebhookPolicy } from '../access.js';
import type { StreamLimits } from '../limits.js';
import type { StreamMetrics } from '../metrics.js';
import type { ClientEvent, SessionDescription } from '../protocol.js';
import type { Session } from '../session.js';
import type { Connection } from './connection.js';

export interface ClientEventsHost {
  readonly metrics: StreamMetrics;
  readonly limits: StreamLimits;
  describe(s: Session): SessionDescription;
}

export interface ClientEventsOptions {
  allowPaths?: readonly string[];
  allowUrlSchemes?: readonly string[];
  allowWebhookOrigins?: readonly string[];
  ffmpegPath?: string;
  env?: FfmpegEnv;
}

export class ClientEvents {
  private readonly sources: SourcePolicy;
  private readonly webhookPolicy: WebhookPolicy;
  /** Resolved on the first source.open (it searches PATH), then reused: the binary does not move. */
  private ffmpegPath: string | undefined;

  constructor(
    private readonly host: ClientEventsHost,
    private readonly options: ClientEventsOptions,
  ) {
    this.sources = new SourcePolicy({ ...(options.allowPaths ? { allowPaths: options.allowPaths } : {}), ...(options.allowUrlSchemes ? { allowUrlSchemes: options.allowUrlSchemes } : {}) });
    this.webhookPolicy = new WebhookPolicy(options.allowWebhookOrigins);
  }

  /** A binary message: JPEG bytes of the current input_video.frame, or container bytes. */
  binary(conn: Connection, buf: Buffer): void {
    const s = conn.session;
    const format = s.inputFormat;
    if (format === undefined || format === 'source' || format === 'frames') {
      conn.error('WINNOW_ERR_PROTOCOL', 'binary message without an active input_video.start', undefined, { reason: 'binary-before-start' });
      return;
    }
    if (format === 'jpeg') {
      const pts = conn.jpegPts;
      if (pts === undefined) {
        conn.error('WINNOW_ERR_PROTOCOL', 'each JPEG must be preceded by input_video.frame {ptsMs}', undefined, { reason: 'jpeg-without-frame' });
        return;
      }
      conn.jpegPts = undefined;
      conn.pendingJpegs++;
      // Non-live input: stop reading the socket while the queue is full (nothing is dropped).
      if (!s.inputLive && conn.pendingJpegs > 1) conn.pause();
      s.pushJpeg(buf, pts)
        .catch((e: unknown) => conn.fail(e, undefined))
        .finally(() => {
          conn.pendingJpegs--;
          if (conn.pendingJpegs <= 1) conn.resume();
        });
      return;
    }
    const input = conn.input;
    if (!input) {
      conn.error('WINNOW_ERR_PROTOCOL', 'binary message without an active input_video.start', undefined, { reason: 'binary-before-start' });
      return;
    }
    if (!input.write(buf)) {
      conn.pause();
      void input.drained().then(() => conn.resume());
    }
  }

  /** One validated client event. Errors thrown here become `error` events with its event_id. */
  async handle(conn: Connection, ev: ClientEvent): Promise<void> {
    const s = conn.session;
    switch (ev.type) {
      case 'session.update': {
        for (const w of ev.session.watch ?? []) if (w.webhook) this.webhookPolicy.check(w.webhook);
        s.update(ev.session);
        conn.send({ type: 'session.updated', session: this.host.describe(s), ...(ev.event_id ? { event_id: ev.event_id } : {}) });
        return;
      }
      case 'input_video.start': {
        conn.startedInput = true;
        if (ev.format === 'jpeg') {
          s.startJpeg({ live: ev.live ?? true });
          conn.jpegPts = undefined;
        } else {
          conn.input = s.startVideo(ev.format, { live: ev.live ?? true });
        }
        return;
      }
      case 'input_video.frame': {
        if (s.inputFormat !== 'jpeg') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'input_video.frame needs an active input_video.start with format jpeg');
        conn.jpegPts = ev.ptsMs;
        return;
      }
      case 'input_video.end': {
        if (!s.inputActive || s.inputFormat === 'source') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no active input_video to end');
        s.endInput();
        return;
      }
      case 'source.open': {
        if (s.inputActive) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first');
        // Confined here, before the session starts an input, so a refusal is an error for this event.
        const confined = await this.sources.confine(ev.path !== undefined ? { path: ev.path } : { url: ev.url! }, undefined, {
          ffmpegPath: (this.ffmpegPath ??= resolveFfmpegPath({ ...(this.options.ffmpegPath ? { ffmpegPath: this.options.ffmpegPath } : {}), ...(this.options.env ? { env: this.options.env } : {}) }).path),
        });
        if (s.inputActive) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'an input is already active; end or close it first');
        s.openSource(confined, ev.live !== undefined ? { live: ev.live } : {});
        conn.startedInput = true;
        return;
      }
      case 'source.close': {
        if (s.inputFormat !== 'source') throw new WinnowError('WINNOW_ERR_PROTOCOL', 'no open source to close');
        s.closeSource();
        return;
      }
      case 'conversation.item.create': {
        if (ev.text.length > this.host.limits.maxQuestionChars) {
          throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `the question has ${ev.text.length} characters; the limit maxQuestionChars is ${this.host.limits.maxQuestionChars}`, {
            details: { limit: 'maxQuestionChars', value: ev.text.length, max: this.host.limits.maxQuestionChars },
          });
        }
        conn.pendingQuestion = ev.text;
        return;
      }
      case 'response.create': {
        const q = conn.pendingQuestion;
        if (q === undefined) throw new WinnowError('WINNOW_ERR_PROTOCOL', 'response.create needs a conversation.item.create first');
        const answer = s.ask(q, {
          ...(ev.generation?.maxNewTokens !== undefined ? { maxNewTokens: ev.generation.maxNewTokens } : {}),
          ...(ev.generation?.temperature !== undefined ? { temperature: ev.generation.temperature } : {}),
          onDelta: (delta) => conn.send({ type: 'response.output_text.delta', response_id: answer.id, delta }),
        });
        conn.pendingQuestion = undefined;
        conn.send({ type: 'response.created', response: { id: answer.id, question: q } });
        void answer.done.then((d) => {
          this.host.metrics.responses.inc({ status: d.status });
          if (d.status === 'completed') {
            this.host.metrics.ttftSeconds.observe(d.timings.ttftMs / 1000);
            const decodeMs = d.timings.totalMs - d.timings.ttftMs;
            if (d.usage.outputTokens > 1) this.host.metrics.decodeSeconds.observe(decodeMs / (d.usage.outputTokens - 1) / 1000);
          }
          if (d.error) this.host.metrics.errors.inc({ code: d.error.code });
          conn.send({
            type: 'response.done',
            response: {
              id: d.id,
              status: d.status,
              text: d.text,
              stopReason: d.stopReason,
              usage: d.usage,
              timings: d.timings,
              ...(d.error ? { error: { code: d.error.code, message: d.error.message } } : {}),
            },
          });
        });
        return;
      }
      case 'response.cancel': {
        if (!s.cancel(ev.response_id)) throw new WinnowError('WINNOW_ERR_PROTOCOL', ev.response_id ? `no pending response ${ev.response_id}` : 'no response to cancel');
        return;
      }
    }
  }
}
