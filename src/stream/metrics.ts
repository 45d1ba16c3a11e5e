// Prometheus metrics of one server, in a registry of its own (no process-wide state).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class StreamMetrics {
  readonly registry = new Registry();
  readonly sessions: Gauge;
  readonly sessionsTotal: Counter;
  readonly framesIn: Counter;
  readonly framesProcessed: Counter;
  readonly framesDropped: Counter<'policy'>;
  readonly tokensKept: Counter;
  readonly tokensTotal: Counter;
  readonly prefillSeconds: Histogram<'kind'>;
  readonly decodeSeconds: Histogram;
  readonly ttftSeconds: Histogram;
  readonly responses: Counter<'status'>;
  readonly errors: Counter<'code'>;
  readonly ffmpegProcesses: Gauge;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'winnow_' });
    this.sessions = new Gauge({ name: 'winnow_sessions', help: 'Open sessions', registers });
    this.sessionsTotal = new Counter({ name: 'winnow_sessions_total', help: 'Sessions opened since start', registers });
    this.framesIn = new Counter({ name: 'winnow_frames_in_total', help: 'Frames sampled from inputs and queued', registers });
    this.framesProcessed = new Counter({ name: 'winnow_frames_processed_total', help: 'Frames encoded, pruned and in a context', registers });
    this.framesDropped = new Counter({
      name: 'winnow_frames_dropped_total',
      help: 'Frames that never reached a context, by drop policy (keep-latest, fps-sampling, discard-on-close)',
      labelNames: ['policy'],
      registers,
    });
    this.tokensKept = new Counter({ name: 'winnow_visual_tokens_kept_total', help: 'Visual tokens kept after pruning', registers });
    this.tokensTotal = new Counter({ name: 'winnow_visual_tokens_total', help: 'Visual tokens before pruning (after video pooling)', registers });
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.prefillSeconds = new Histogram({ name: 'winnow_prefill_seconds', help: 'LLM prefill time per frame or question', labelNames: ['kind'], buckets, registers });
    this.decodeSeconds = new Histogram({ name: 'winnow_decode_token_seconds', help: 'LLM decode time per generated token (per answer mean)', buckets, registers });
    this.ttftSeconds = new Histogram({ name: 'winnow_ttft_seconds', help: 'response.create to the first answer token', buckets, registers });
    this.responses = new Counter({ name: 'winnow_responses_total', help: 'Responses finished, by status', labelNames: ['status'], registers });
    this.errors = new Counter({ name: 'winnow_errors_total', help: 'Error events sent and connections refused, by code', labelNames: ['code'], registers });
    this.ffmpegProcesses = new Gauge({ name: 'winnow_ffmpeg_processes', help: 'Running ffmpeg children', registers });
  }
}
