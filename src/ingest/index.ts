// Public surface of the ingest stage: any video source → a bounded, cancellable stream of RGB24 frames.
export { openVideo } from './open-video.js';
export { probe } from './probe.js';
export {
  resolveFfmpeg,
  resolveFfmpegPath,
  resolveFfprobePath,
  binaryVersion,
  buildScaleFilter,
  buildSelectFilter,
  DEFAULT_PAD_COLOR,
} from './ffmpeg.js';
export type { BinarySource, ResolvedBinary, ResolvedFfmpeg } from './ffmpeg.js';
export type {
  Frame,
  FrameSize,
  DeviceSource,
  VideoSource,
  ResizeMode,
  OverflowPolicy,
  ReconnectOptions,
  FfmpegEnv,
  FfmpegLocateOptions,
  OpenVideoOptions,
  IngestEvent,
  ProbeResult,
  ProbeOptions,
} from './types.js';
export { SourcePolicy, SELF_CONTAINED_DEMUXERS, normalizeClientUrl, isConfinedSource } from './confine.js';
export { isUrlString } from './source.js';
export type { ConfinedSource, ConfineTarget, SourcePolicyOptions } from './confine.js';
export { NETWORK_SCHEMES, DEFAULT_NETWORK_TIMEOUT_MS, networkInputOptions, protocolWhitelist } from './network.js';
export type { NetworkScheme, NetworkOptionSettings } from './network.js';
export type { RtspTimeoutOption } from './capabilities.js';
export { rtspTimeoutOption } from './capabilities.js';
