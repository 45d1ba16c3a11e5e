// A `jpeg` input: images pushed one by one, decoded in order (one at a time, off the socket path)
// into model-sized RGB frames. Waiting images are bounded: a live input drops the oldest
// undecoded one (keep-latest) rather than let memory grow.
import { WinnowError } from '../../errors.js';
import { DEFAULT_PAD_COLOR } from '../../ingest/index.js';
import { decodeJpeg } from '../jpeg.js';
import type { Input } from './input.js';
import type { SessionInputs } from './inputs.js';

interface PendingJpeg {
  bytes: Uint8Array;
  /** Capture time as pushed (for messages). */
  capturePtsMs: number;
  /** Session timeline time (fps sampling already applied). */
  ptsMs: number;
  settle: (e?: unknown) => void;
}

/** ingest's DEFAULT_PAD_COLOR, so pushed JPEGs and decoded video are padded alike. */
const PAD_RGB = Number.parseInt(DEFAULT_PAD_COLOR.replace(/^0x/, ''), 16);
const PAD_BACKGROUND = { r: (PAD_RGB >> 16) & 255, g: (PAD_RGB >> 8) & 255, b: PAD_RGB & 255 };

export class JpegFeed {
  /** JPEGs waiting to be decoded, oldest first. */
  private readonly pending: PendingJpeg[] = [];
  private loop: Promise<void> | undefined;
  private running = false;

  constructor(
    private readonly inputs: SessionInputs,
    private readonly input: Input,
  ) {}

  /** Whether the decode loop runs; it turns false in the same tick the loop runs out of work. */
  get decoding(): boolean {
    return this.running;
  }

  /** The decode loop, while it runs. */
  get worker(): Promise<void> | undefined {
    return this.loop;
  }

  /** Nothing waits and nothing is being decoded. */
  get idle(): boolean {
    return this.pending.length === 0 && !this.running;
  }

  /**
   * Queues one sampled image. Resolves once it is queued for the model or dropped; a non-live input
   * resolves only once the frame queue has room (awaiting each push is the backpressure). A JPEG that
   * does not decode rejects with WINNOW_ERR_CORRUPT_INPUT.
   */
  push(bytes: Uint8Array, capturePtsMs: number, ptsMs: number): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.pending.push({ bytes, capturePtsMs, ptsMs, settle: (e) => (e === undefined ? resolve() : reject(e)) });
    });
    if (this.input.live && this.pending.length > this.inputs.host.limits.maxQueuedFrames) {
      this.pending.shift()!.settle();
      this.inputs.countDropped(1, 'keep-latest', this.input);
    }
    if (!this.running) {
      this.running = true;
      this.loop = this.decodeAll();
    }
    return done;
  }

  /** Settles every image still waiting (the input stopped); returns how many, for the caller to count. */
  discardWaiting(): number {
    const waiting = this.pending.splice(0);
    for (const j of waiting) j.settle();
    return waiting.length;
  }

  /**
   * Decodes queued JPEGs one at a time, in order. Clears `running` in the same tick it finds the
   * queue empty: a push arriving between the last shift and the promise settling must start a new
   * loop, not wait for one that has exited.
   */
  private async decodeAll(): Promise<void> {
    const { input, inputs } = this;
    try {
      for (;;) {
        const job = this.pending.shift();
        if (!job) return;
        if (input.ended || inputs.host.closing()) {
          inputs.countDropped(1, 'discard-on-close', input);
          job.settle();
          continue;
        }
        input.limbo++;
        try {
          await this.decodeOne(job);
        } finally {
          input.limbo--;
        }
        inputs.maybeEnded(input);
      }
    } finally {
      this.running = false;
    }
  }

  /** Decodes one JPEG into a model-sized RGB frame and queues it (a bad JPEG rejects its push). */
  private async decodeOne(job: PendingJpeg): Promise<void> {
    const h = this.inputs.host;
    const size = h.engine.inputSize;
    const resize = h.config().resize;
    const fit = resize === 'pad' ? 'contain' : resize === 'stretch' ? 'fill' : 'cover';
    let img: { data: Buffer; info: { width: number; height: number } };
    try {
      img = await decodeJpeg(job.bytes, h.limits.maxInputPixels, job.capturePtsMs).then((pipeline) =>
        pipeline.removeAlpha().resize(size.width, size.height, { fit, background: PAD_BACKGROUND, kernel: 'cubic' }).raw().toBuffer({ resolveWithObject: true }),
      );
    } catch (e) {
      job.settle(
        e instanceof WinnowError
          ? e
          : new WinnowError('WINNOW_ERR_CORRUPT_INPUT', `cannot decode the JPEG at ${job.capturePtsMs} ms: ${(e as Error).message}`, { cause: e, details: { ptsMs: job.capturePtsMs } }),
      );
      return;
    }
    const data = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.length);
    await this.inputs.enqueueWhenRoom(this.input, { index: 0, ptsMs: job.ptsMs, width: img.info.width, height: img.info.height, data }, 'timeline');
    job.settle();
  }
}
