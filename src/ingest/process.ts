import type { ChildProcess } from 'node:child_process';

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Stops a child: closes its pipes (a writer blocked on a full stdout gets EPIPE instead of waiting forever —
 * ffmpeg's SIGTERM handler does not interrupt a restarted write()), sends SIGTERM, then SIGKILL after `graceMs`.
 * Resolves once the process has exited (and been reaped). Idempotent.
 */
export function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.pid === undefined || hasExited(child)) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      if (!hasExited(child)) child.kill('SIGKILL');
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.stdin?.destroy();
    child.stdout?.destroy();
    child.kill('SIGTERM');
  });
}
