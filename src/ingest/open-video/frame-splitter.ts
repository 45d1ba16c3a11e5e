// Cuts ffmpeg's raw RGB24 stdout into frames. showinfo prints each frame's pts and size on stderr
// just before ffmpeg writes its pixels, so bytes wait for their frame's line at most briefly; each
// frame gets one buffer of exactly its size.
import type { FrameMeta } from '../ffmpeg-log.js';

export class FrameSplitter {
  private readonly metas: FrameMeta[] = [];
  private readonly chunks: Buffer[] = [];
  private chunkOffset = 0;
  /** Bytes in `chunks` not yet copied into a frame. */
  private pending = 0;
  private current: { meta: FrameMeta; data: Buffer; filled: number } | undefined;

  constructor(private readonly onFrame: (meta: FrameMeta, data: Buffer) => void) {}

  /** Bytes waiting for their frame's metadata (or for the rest of their frame). */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Whether a frame has some of its bytes but not all. */
  get hasPartialFrame(): boolean {
    return this.current !== undefined && this.current.filled > 0;
  }

  pushMeta(meta: FrameMeta): void {
    this.metas.push(meta);
    this.drain();
  }

  pushBytes(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.pending += chunk.length;
    this.drain();
  }

  /** Cuts every complete frame out of the bytes received so far. Stops as soon as `clear` is called. */
  drain(): void {
    while (this.chunks.length > 0) {
      if (!this.current) {
        const meta = this.metas.shift();
        if (!meta) return; // bytes arrived before showinfo's line for this frame; wait for stderr
        this.current = { meta, data: Buffer.allocUnsafeSlow(meta.width * meta.height * 3), filled: 0 };
      }
      const cur = this.current;
      const chunk = this.chunks[0];
      const n = Math.min(chunk.length - this.chunkOffset, cur.data.length - cur.filled);
      chunk.copy(cur.data, cur.filled, this.chunkOffset, this.chunkOffset + n);
      cur.filled += n;
      this.chunkOffset += n;
      this.pending -= n;
      if (this.chunkOffset === chunk.length) {
        this.chunks.shift();
        this.chunkOffset = 0;
      }
      if (cur.filled === cur.data.length) {
        this.current = undefined;
        this.onFrame(cur.meta, cur.data);
      }
    }
  }

  /** Forgets everything received (the process ended or was stopped). */
  clear(): void {
    this.metas.length = 0;
    this.chunks.length = 0;
    this.chunkOffset = 0;
    this.pending = 0;
    this.current = undefined;
  }
}
