// Running winnow's CLI, the examples and test fixtures as child processes, as a user runs them:
// node with tsx loading the TypeScript sources.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { CLI_ENTRY, repoRoot } from './paths.js';

// Resolved to an absolute URL so a child started in another cwd (to show that nothing depends on
// the cwd) still finds tsx.
const TSX = import.meta.resolve('tsx');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Default: the repository root. */
  cwd?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Written to the child's stdin, which is then closed. */
  stdin?: string | Uint8Array;
  /** The child is SIGKILLed after this long. */
  timeoutMs?: number;
}

/** `node --import tsx <script> ...args`, not waited for: the caller reads its streams and exit. */
export function spawnTsx(script: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, ['--import', TSX, script, ...args], { cwd: repoRoot, ...options });
}

/**
 * `winnow <args>` run to its end. Blocks this process meanwhile, so nothing the child talks to
 * may live in it (an in-process server): use runTsx for that.
 */
export function runCli(args: readonly string[], options: RunOptions = {}): RunResult {
  const r = spawnSync(process.execPath, ['--import', TSX, CLI_ENTRY, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...options.env },
    input: options.stdin,
    timeout: options.timeoutMs,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A TypeScript script (an example, a fixture, the CLI) run to its end without blocking this process. */
export function runTsx(script: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawnTsx(script, args, { cwd: options.cwd ?? repoRoot, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.on('error', () => undefined); // a child that exits without reading its stdin
  child.stdin!.end(options.stdin ?? '');
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
