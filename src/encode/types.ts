// The prune stage owns the EncodedFrame definition; the encode stage emits it.
export type { EncodedFrame } from '../prune/types.js';
