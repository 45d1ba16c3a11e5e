/** One decoded video frame, packed RGB24 (row-major, 3 bytes per pixel, no row padding). */
export interface Frame {
  /** 0-based index among the frames this stream emitted. */
  index: number;
  /** Presentation time in the source timeline, milliseconds. */
  ptsMs: number;
  width: number;
  height: number;
  /** width * height * 3 bytes. */
  data: Uint8Array;
}
