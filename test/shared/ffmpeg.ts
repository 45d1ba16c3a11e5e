// The ffmpeg and ffprobe the tests make and inspect media with: the ones winnow itself resolves
// (WINNOW_FFMPEG / WINNOW_FFPROBE, else PATH, else the bundled build), so a test's media and the
// code under test agree on the build unless a test picks one on purpose (ingest's ffmpegBuilds).
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { resolveFfmpegPath, resolveFfprobePath } from '../../src/ingest/index.js';

export const GEN_FFMPEG = resolveFfmpegPath({ env: process.env }).path;
export const GEN_FFPROBE = resolveFfprobePath({ env: process.env }).path;

// Quiet, never waiting on stdin, overwriting: what every media-making call wants.
const QUIET = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y'];

/** Runs GEN_FFMPEG with `args` (outputs included) and throws with its stderr when it fails. */
export function ffmpegSync(args: readonly string[]): void {
  const r = spawnSync(GEN_FFMPEG, [...QUIET, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
}

const execFileAsync = promisify(execFile);

/** As ffmpegSync without blocking the event loop (several at once, or an in-process server running). */
export async function ffmpeg(args: readonly string[]): Promise<void> {
  await execFileAsync(GEN_FFMPEG, [...QUIET, ...args]);
}
