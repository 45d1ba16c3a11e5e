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
}

/**
 * Renders a video scene frame by frame straight into ffmpeg's stdin (H.264, yuv420p, MP4). Only one
 * frame is ever in memory; writes wait for ffmpeg to drain, so a slow encoder slows the renderer.
 */
export async function writeVideo(scene: VideoScene, outPath: string, options: EncodeVideoOptions = {}): Promise<{ frames: number }> {
  const { width, height, fps } = scene;
  const bg = renderBackground(scene.background, width, height);
  const frame = new Uint8Array(bg.length);
  const frameCount = Math.round((scene.durationMs / 1000) * fps);
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
    for (let i = 0; i < frameCount; i++) {
      throwIfAborted(options.signal);
      frame.set(bg);
      drawObjects(frame, width, height, objectsAt(scene, Math.round((i * 1000) / fps)));
      if (!child.stdin!.write(frame)) await once(child.stdin!, 'drain');
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
