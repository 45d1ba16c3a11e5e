// Standing questions: each is asked again whenever `everySeconds` of video time has passed since
// its last asking (never twice at once), and its answers go to listeners and its webhook.
import type { WatchConfig } from '../protocol.js';
import type { WebhookSender } from '../webhook.js';
import type { WatchResult } from './events.js';

interface WatchState {
  spec: WatchConfig;
  /** Video time it was last asked at. */
  lastPtsMs: number | undefined;
  /** Asked and not answered yet. */
  pending: boolean;
  /** For `notify: 'change'`. */
  lastAnswer: string | undefined;
}

export class StandingQuestions {
  private watches = new Map<string, WatchState>();

  constructor(
    private readonly sessionId: string,
    private readonly webhooks: WebhookSender,
    private readonly emit: (result: WatchResult) => void,
  ) {}

  /** Replaces the list; a watch whose question is unchanged keeps its schedule and last answer. */
  set(list: readonly WatchConfig[]): void {
    const next = new Map<string, WatchState>();
    for (const w of list) {
      const prev = this.watches.get(w.id);
      next.set(w.id, { spec: w, lastPtsMs: prev?.spec.question === w.question ? prev.lastPtsMs : undefined, pending: prev?.pending ?? false, lastAnswer: prev?.lastAnswer });
    }
    this.watches = next;
  }

  /** The watches due at video time `ptsMs`; each is pending until `done` is called for it. */
  due(ptsMs: number): WatchConfig[] {
    const out: WatchConfig[] = [];
    for (const w of this.watches.values()) {
      if (w.pending) continue;
      if (w.lastPtsMs !== undefined && ptsMs - w.lastPtsMs < w.spec.everySeconds * 1000) continue;
      w.lastPtsMs = ptsMs;
      w.pending = true;
      out.push(w.spec);
    }
    return out;
  }

  /** A watch's question was answered (`result`) or not (cancelled, failed, session closing). */
  done(watchId: string, result: Omit<WatchResult, 'id'> | undefined): void {
    const w = this.watches.get(watchId);
    if (w) w.pending = false;
    if (!result) return;
    const full: WatchResult = { id: watchId, ...result };
    this.emit(full);
    if (!w?.spec.webhook) return;
    const changed = w.lastAnswer !== result.answer;
    w.lastAnswer = result.answer;
    if ((w.spec.notify ?? 'always') === 'change' && !changed) return;
    this.webhooks.send(w.spec.webhook, { type: 'watch.result', session_id: this.sessionId, ...full });
  }
}
