// A session's settings: their shape, their defaults, and the checks every change passes (the
// server's own schema, then the server limits) before the session applies it.
import { WinnowError } from '../../errors.js';
import type { FfmpegEnv, ResizeMode } from '../../ingest/types.js';
import type { SourcePolicy } from '../../ingest/index.js';
import type { StrategyName } from '../../prune/index.js';
import type { EngineOptions } from '../engine.js';
import type { StreamLimits } from '../limits.js';
import { sessionUpdateSchema, type WatchConfig } from '../protocol.js';
import type { WebhookSender } from '../webhook.js';
import type { SessionEngine } from './engine-needs.js';

export interface SessionConfig {
  /** Frames per second sampled from the input. Default 1. */
  fps: number;
  /** How frames are fitted to the model input. Default `pad` (the default model's preprocessing). */
  resize: ResizeMode;
  pruning: { strategy?: StrategyName; tau?: number; ratio?: number; temporal?: number; minKeep?: number };
  /** KV-cache budget (video + question + answer). Default: the limit `maxContextTokens`. */
  maxContextTokens: number;
  generation: { maxNewTokens: number; temperature: number };
  watch: WatchConfig[];
}

export type SessionConfigUpdate = Partial<Omit<SessionConfig, 'generation' | 'pruning'>> & {
  pruning?: SessionConfig['pruning'];
  generation?: Partial<SessionConfig['generation']>;
};

export interface SessionOptions extends Omit<EngineOptions, 'signal'> {
  /** A loaded engine shared with other sessions. Without it the session loads (and owns) its own. */
  engine?: SessionEngine;
  config?: SessionConfigUpdate;
  limits?: Partial<StreamLimits>;
  id?: string;
  /** Webhook delivery for standing questions. Default: one owned by the session. */
  webhooks?: WebhookSender;
  /** Explicit ffmpeg binary (else WINNOW_FFMPEG in `env`, else PATH, else the bundled one). */
  ffmpegPath?: string;
  env?: FfmpegEnv;
  /**
   * Confines every path or URL given to `openSource` (ingest's SourcePolicy: roots, schemes,
   * playlists); refusals end the input with WINNOW_ERR_FORBIDDEN_SOURCE. Default: none, the caller
   * is trusted (sources a policy already confined are always taken as they are).
   */
  sourcePolicy?: SourcePolicy;
  signal?: AbortSignal;
}

/** The settings a session starts from, before its own `config`. */
export function defaultConfig(limits: StreamLimits, engine: SessionEngine): SessionConfig {
  return {
    fps: 1,
    resize: 'pad',
    pruning: {},
    maxContextTokens: limits.maxContextTokens,
    generation: { maxNewTokens: Math.min(limits.maxNewTokens, engine.lm.config.generation.maxNewTokens ?? 64), temperature: 0 },
    watch: [],
  };
}

/** `cfg` with `u` applied: pruning and generation merge key by key, `watch` replaces the list. */
export function mergeConfig(cfg: SessionConfig, u: SessionConfigUpdate): SessionConfig {
  return {
    fps: u.fps ?? cfg.fps,
    resize: u.resize ?? cfg.resize,
    pruning: u.pruning ? { ...cfg.pruning, ...u.pruning } : cfg.pruning,
    maxContextTokens: u.maxContextTokens ?? cfg.maxContextTokens,
    generation: { ...cfg.generation, ...(u.generation ?? {}) },
    watch: u.watch ?? cfg.watch,
  };
}

/** A question (asked or standing) is non-empty and within `maxQuestionChars`. */
export function checkQuestion(q: string, what: string, limits: StreamLimits): void {
  if (q.trim().length === 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${what} is empty`);
  if (q.length > limits.maxQuestionChars) {
    throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${what} has ${q.length} characters; the limit maxQuestionChars is ${limits.maxQuestionChars}`, {
      details: { limit: 'maxQuestionChars', value: q.length, max: limits.maxQuestionChars },
    });
  }
}

export interface UpdateCheck {
  limits: StreamLimits;
  engine: SessionEngine;
  /** The settings the update would change; undefined while the session is being constructed. */
  current: SessionConfig | undefined;
  /** Whether a frame has reached the context (the context budget is fixed from then on). */
  contextStarted: boolean;
}

/** Throws WINNOW_ERR_INVALID_ARGUMENT / WINNOW_ERR_LIMIT_EXCEEDED for an update the session must refuse. */
export function checkUpdate(u: SessionConfigUpdate, { limits: L, engine, current, contextStarted }: UpdateCheck): void {
  const over = (limit: keyof StreamLimits, value: number, max: number): never => {
    throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `${limit} ${value} exceeds the server limit ${max}`, { details: { limit, value, max } });
  };
  // Library callers skip the server's schema; the same schema guards their numbers (fps 5e-324 made ptsMs Infinity).
  const checked = sessionUpdateSchema.shape.session.safeParse(u);
  if (!checked.success) {
    const issues = checked.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `invalid session settings: ${issues.join('; ')}`, { details: { issues: issues.join('; ') } });
  }
  if (u.maxContextTokens !== undefined) {
    if (!Number.isInteger(u.maxContextTokens) || u.maxContextTokens < 512) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxContextTokens must be an integer ≥ 512');
    if (u.maxContextTokens > L.maxContextTokens) over('maxContextTokens', u.maxContextTokens, L.maxContextTokens);
    if (current && u.maxContextTokens !== current.maxContextTokens && contextStarted) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxContextTokens can only change before the first frame');
    }
  }
  const g = u.generation;
  if (g?.maxNewTokens !== undefined && g.maxNewTokens > L.maxNewTokens) over('maxNewTokens', g.maxNewTokens, L.maxNewTokens);
  if (u.watch) {
    if (u.watch.length > L.maxWatches) over('maxWatches', u.watch.length, L.maxWatches);
    const ids = new Set<string>();
    for (const w of u.watch) {
      if (ids.has(w.id)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `watch id ${w.id} is used twice`);
      ids.add(w.id);
      checkQuestion(w.question, `watch ${w.id} question`, L);
      if (w.everySeconds < L.minWatchSeconds) {
        throw new WinnowError('WINNOW_ERR_LIMIT_EXCEEDED', `watch ${w.id}: everySeconds ${w.everySeconds} is below the limit minWatchSeconds ${L.minWatchSeconds}`, {
          details: { limit: 'minWatchSeconds', value: w.everySeconds, min: L.minWatchSeconds },
        });
      }
    }
  }
  // Pruning settings are checked by constructing the pruner (codebook presence, tau, minKeep).
  if (u.pruning) void engine.createPruner({ ...current?.pruning, ...u.pruning }).close();
}
