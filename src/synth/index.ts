export { Rng } from './rng.js';
export * from './world.js';
export { sampleStill, sampleVideo, objectsAt, bboxGap, halfExtent } from './scene.js';
export type { ObjectSpec, PlacedObject, TrackedObject, TrackSegment, StillScene, VideoScene, BackgroundSpec, VideoOptions, StillOptions } from './scene.js';
export { renderBackground, renderFrame, drawObjects, insideObject, patchLabels } from './raster.js';
export type { PatchGeometry } from './raster.js';
export { frameQuestions, videoQuestions, caption, appearedBy } from './qa.js';
export type { QaPair, QuestionFamily, VideoQuestionOptions } from './qa.js';
export { writeVideo, sceneFrames, frameCountOf } from './video.js';
export type { EncodeVideoOptions } from './video.js';
export { writeDataset, stillAt, videoAt, watchAt, renderStill, lastSampledMs, WORLD_VERSION, WATCH_CHECKPOINT_FRACTIONS } from './dataset.js';
export type { StillTruth, VideoTruth, WatchTruth, DatasetOptions, VideoProfile } from './dataset.js';
export {
  sampleWatch,
  checkWatchDuration,
  WATCH_FPS,
  WATCH_MIN_DURATION_MS,
  WATCH_MAX_DURATION_MS,
  WATCH_MAX_APPEARANCES_PER_SHAPE,
  WATCH_FIRST_EVENT_FRACTION,
  WATCH_SAME_KIND_GAP_MS,
  WATCH_MIN_STAY_MS,
  WATCH_MAX_STAY_MS,
  WATCH_PLAN_END_MARGIN_MS,
  WATCH_LAST_START_MARGIN_MS,
} from './watch.js';
export type { WatchAppearance, WatchScene } from './watch.js';
export { formatHms, parseHms, hmsWithinTolerance, HMS_TOLERANCE_MS } from './hms.js';
export { writeShards, hasApartCount } from './shards.js';
export type { ShardOptions, VideoMix } from './shards.js';
