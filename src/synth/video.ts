import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { WinnowError, throwIfAborted } from '../errors.js';
import { resolveFfmpegPath } from '../ingest/ffmpeg.js';
import { drawObjects, renderBackground } from './raster.js';
import { objectsAt, type VideoScene } from './scene.js';

export interface EncodeVideoOptions {
  ffmpegPath?: string;
  /** x264 constant rate factor. */
  crf?: number;
  signal?: AbortSignal;
  /** Called every `progressEveryFrames` frames and after the last, with frames written so far. */
  onProgress?: (framesDone: number, frameCount: number) => void;
  progressEveryFrames?: number;
}

/** Frames a scene is rendered to: one per 1/fps from t = 0, the last before the end. */
export function frameCountOf(scene: VideoScene): number {
  return Math.round((scene.durationMs / 1000) * scene.fps);
}

/**
 * The scene's frames in order (RGB24). A yielded buffer is reused: it is valid until the next one
 * is taken. Frames with no object are the background raster itself, neither copied nor redrawn,
 * which is what keeps hours of an empty watch video cheap.
 */
export function* sceneFrames(scene: VideoScene): Generator<Uint8Array, void, undefined> {
  const { width, height, fps } = scene;
  const bg = renderBackground(scene.background, width, height);
  const frame = new Uint8Array(bg.length);
  const frameCount = frameCountOf(scene);
  for (let i = 0; i < frameCount; i++) {
    const objects = objectsAt(scene, Math.round((i * 1000) / fps));
    if (objects.length === 0) {
      yield bg;
      continue;
    }
    frame.set(bg);
    drawObjects(frame, width, height, objects);
    yield frame;
  }
}

/**
 * Renders a video scene frame by frame straight into ffmpeg's stdin (H.264, yuv420p, MP4), so
 * memory stays flat whatever the length. Each write waits for ffmpeg to drain before the next
 * frame is drawn: a frame is larger than the pipe's high-water mark, so the wait also guarantees
 * the reused buffer is no longer queued when it is redrawn.
 */
export async function writeVideo(scene: VideoScene, outPath: string, options: EncodeVideoOptions = {}): Promise<{ frames: number }> {
  const { width, height, fps } = scene;
  const frameCount = frameCountOf(scene);
  const progressEvery = options.progressEveryFrames ?? 600;
  const args = [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0',
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', String(options.crf ?? 20), '-pix_fmt', 'yuv420p',
    '-movflags', '+faststart', outPath,
  ];
  const child = spawnFfmpeg(options.ffmpegPath ?? resolveFfmpegPath().path, args);
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = once(child, 'close') as Promise<[number | null]>;
  const onAbort = (): void => void child.kill('SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let done = 0;
    for (const frame of sceneFrames(scene)) {
      throwIfAborted(options.signal);
      if (!child.stdin!.write(frame)) await once(child.stdin!, 'drain');
      if (++done % progressEvery === 0 || done === frameCount) options.onProgress?.(done, frameCount);
    }
    child.stdin!.end();
    const [code] = await exited;
    if (code !== 0) {
      throw new WinnowError('WINNOW_ERR_FFMPEG_EXIT', `ffmpeg exited with ${code} while encoding ${outPath}`, {
        details: { stderr: stderr.join('').split('\n').slice(-10) },
      });
    }
    return { frames: frameCount };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

export function spawnFfmpeg(path: string, args: string[]): ChildProcess {
  const child = spawn(path, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.on('error', () => undefined);
  return child;
}
