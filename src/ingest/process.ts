import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

function hasExited(child: ChildProcess): boolean {
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

/** setpriv (util-linux) found once per process: `null` = none usable (not Linux, missing, too old for --pdeathsig). */
let lifelineBinary: string | null | undefined;

/**
 * The wrapper that ties a child's life to this process, if this system has one. `setpriv --pdeathsig KILL`
 * sets PR_SET_PDEATHSIG and then execs the command in place, so the child's pid is the command's own and
 * the kernel SIGKILLs it the moment this process dies, even by SIGKILL or OOM, when no exit handler runs.
 * Only the fixed system locations are used: a setpriv found through PATH could be anything.
 */
export function lifelineCommand(): string | undefined {
  if (lifelineBinary === undefined) {
    lifelineBinary = null;
    if (process.platform === 'linux') {
      for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
        try {
          const r = spawnSync(candidate, ['--help'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] });
          if (r.status === 0 && r.stdout.includes('--pdeathsig')) {
            lifelineBinary = candidate;
            break;
          }
        } catch {
          // not there or not runnable: try the next one
        }
      }
    }
  }
  return lifelineBinary ?? undefined;
}

/**
 * Spawns `command` so that it cannot outlive this process (see `lifelineCommand`); a plain spawn where no
 * lifeline exists. The pdeathsig fires when the spawning *thread* ends, so spawn from the main thread or
 * from a worker that lives as long as the child should.
 */
export function spawnWithLifeline(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const wrapper = lifelineCommand();
  return wrapper ? spawn(wrapper, ['--pdeathsig', 'KILL', '--', command, ...args], options) : spawn(command, [...args], options);
}

/** setpriv's report that it could not exec the command (exit 126/127): the binary is missing or not executable. */
export function isLifelineExecFailure(code: number | null, stderrLines: readonly string[]): boolean {
  return (code === 126 || code === 127) && stderrLines.some((l) => l.startsWith('setpriv: failed to execute'));
}
