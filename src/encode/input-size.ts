// The picture size a model wants, for the two ways frames reach it. Streaming sessions always
// decode to the encoder's input size (with the resize mode the client chose). Offline decoding
// (`winnow ask`, eval) lets ffmpeg do the model's own fit-and-pad resize when the model declares
// one, because that is the filter its training data went through; other models get the source
// size and the encoder's preprocessing resizes, crops or pads it.
import type { ModelFolder } from './model-folder.js';

export interface PictureSize {
  width: number;
  height: number;
}

/** The encoder's input size; ingest resizes to it so the encoder's own resize is a no-op. */
export function modelInputSize(folder: ModelFolder): PictureSize {
  return { width: folder.vision.imageWidth, height: folder.vision.imageHeight };
}

/** openVideo's `size`/`resize` for offline decoding: set for fit-and-pad models, else undefined. */
export function offlineDecodeResize(folder: ModelFolder): { size: PictureSize; resize: 'pad' } | undefined {
  const pre = folder.preprocess;
  return pre.pad === 'fit' && pre.resize?.kind === 'exact' ? { size: { width: pre.resize.width, height: pre.resize.height }, resize: 'pad' } : undefined;
}
