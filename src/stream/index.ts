// Public surface of the stream stage: the library API (createSession), the shared engine, and the
// WebSocket server behind `winnow serve`.
export { createSession, Session } from './session.js';
export type {
  SessionOptions,
  SessionConfig,
  SessionConfigUpdate,
  SessionEvents,
  SessionStats,
  FrameProcessed,
  SourceEnded,
  WatchResult,
  Answer,
  AnswerDone,
  AskOptions as SessionAskOptions,
  VideoInput,
} from './session.js';
export { WinnowEngine, DEFAULT_MODEL_DIR, DEFAULT_CODEBOOK } from './engine.js';
export type { EngineOptions, PrunerSettings } from './engine.js';
export { createServer, WinnowServer } from './server.js';
export type { ServerOptions } from './server.js';
export { DEFAULT_LIMITS, resolveLimits } from './limits.js';
export type { StreamLimits } from './limits.js';
export { WebhookPolicy, BEARER_PROTOCOL_PREFIX, tokensEqual, isLoopbackHost } from './access.js';
export { WebhookSender } from './webhook.js';
export type { WebhookOptions } from './webhook.js';
export { StreamMetrics } from './metrics.js';
export {
  PROTOCOL_VERSION,
  CLIENT_EVENT_TYPES,
  VIDEO_FORMATS,
  DROP_POLICIES,
  CLIENT_EVENT_SCHEMAS,
  parseClientEvent,
  checkMessageShape,
  clientEventJsonSchemas,
  serverEventJsonSchemas,
  SERVER_EVENT_SCHEMAS,
  validateServerEvent,
  protocolSchemasMarkdown,
} from './protocol.js';
export type {
  ClientEvent,
  ClientEventType,
  ServerEvent,
  VideoFormat,
  DropPolicy,
  SessionDescription,
  SourceDescription,
  UsageInfo,
  TimingInfo,
  WatchConfig,
  PruningConfig,
  GenerationConfig,
} from './protocol.js';
