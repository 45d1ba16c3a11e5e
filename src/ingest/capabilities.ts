// Facts about an ffmpeg/ffprobe binary that change the command line, found once per binary path.
import { spawn } from 'node:child_process';

/**
 * The rtsp demuxer's socket I/O timeout (µs): `-stimeout` in ffmpeg ≤ 4.x, `-timeout` from 5.0. In 4.x
 * `-timeout` means "listen for an incoming connection" instead, so guessing wrong turns a client into a
 * server (it fails with "Address already in use"); `undefined` = could not tell, pass neither.
 */
export type RtspTimeoutOption = 'timeout' | 'stimeout';

const rtspTimeout = new Map<string, Promise<RtspTimeoutOption | undefined>>();
const MAX_HELP_CHARS = 256 * 1024;

export function rtspTimeoutOption(binaryPath: string, timeoutMs = 5000): Promise<RtspTimeoutOption | undefined> {
  let pending = rtspTimeout.get(binaryPath);
  if (!pending) {
    pending = new Promise<RtspTimeoutOption | undefined>((resolve) => {
      let out = '';
      const child = spawn(binaryPath, ['-hide_banner', '-h', 'demuxer=rtsp'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
      const take = (s: string): void => {
        if (out.length < MAX_HELP_CHARS) out += s;
      };
      child.stdout.setEncoding('utf8').on('data', take);
      child.stderr.setEncoding('utf8').on('data', take);
      // A failed look-up (binary replaced, machine overloaded) is retried next time instead of
      // sticking; a definite answer, "neither option", is kept like the others.
      const failed = (): void => {
        rtspTimeout.delete(binaryPath);
        resolve(undefined);
      };
      child.on('error', failed);
      child.on('close', (code) => {
        if (code !== 0) return failed();
        if (/^\s*-stimeout\s/m.test(out)) return resolve('stimeout');
        resolve(/^\s*-timeout\s/m.test(out) ? 'timeout' : undefined);
      });
    });
    rtspTimeout.set(binaryPath, pending);
  }
  return pending;
}

