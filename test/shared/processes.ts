// Process checks for the tests that prove no ffmpeg outlives its owner: liveness that counts a
// zombie as gone, waiting for processes to go, and the children of a pid (Linux /proc).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const HAS_PROC = existsSync('/proc/self/stat');

/** `/proc/PID/stat` split around the command name, which may itself hold spaces and parentheses. */
function procStat(pid: number | string): { command: string; state: string; ppid: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited, or never was
  }
  const close = stat.lastIndexOf(')');
  const [state, ppid] = stat.slice(close + 2).split(' ');
  return { command: stat.slice(stat.indexOf('(') + 1, close), state, ppid: Number(ppid) };
}

/**
 * Whether `pid` is a running process. A zombie (exited, not reaped) is not: a process whose parent
 * died is re-parented to PID 1, and PID 1 on some machines (this test VM's among them) never reaps,
 * so a killed orphan stays in the table as state Z forever.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!HAS_PROC) return true;
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** Polls `done` every `intervalMs`; true as soon as it holds, false if it still does not after `timeoutMs`. */
export async function waitUntil(done: () => boolean, timeoutMs = 5000, intervalMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= end) return false;
    await sleep(intervalMs);
  }
  return true;
}

/** True once none of `pids` is alive (see isAlive), false after `timeoutMs`. */
export function waitGone(pids: number | readonly number[], timeoutMs = 5000): Promise<boolean> {
  const all = typeof pids === 'number' ? [pids] : pids;
  return waitUntil(() => !all.some(isAlive), timeoutMs);
}

/** Direct children of `ppid` (Linux only), those whose command name is `command` when given. */
export function childPids(ppid: number, command?: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(name);
    if (stat?.ppid === ppid && (command === undefined || stat.command === command)) out.push(Number(name));
  }
  return out;
}
