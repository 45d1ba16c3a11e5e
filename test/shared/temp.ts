// Temporary directories that are always removed: per test (withTempDir), per file or suite
// (fileTempDir), or held by a fixture object that removes it (tempDir, tempDirSync).
import { before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly dir: string;
  cleanup(): Promise<void>;
}

/** A fresh directory under the OS temp dir, named `<prefix>XXXXXX`; `cleanup` removes it and its contents. */
export async function tempDir(prefix: string): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** As tempDir, for fixtures built synchronously (class fields, sync `before` hooks). */
export function tempDirSync(prefix: string): { readonly dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `fn` with a fresh directory and removes it afterwards, whether `fn` passed or threw. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => T | Promise<T>): Promise<T> {
  const t = await tempDir(prefix);
  try {
    return await fn(t.dir);
  } finally {
    await t.cleanup();
  }
}

/**
 * A directory for the current test file (or `describe` suite), made by a `before` hook registered
 * now (call this before the hooks that read `.dir`) and removed when the test process exits: after
 * every `after` hook, whatever order those were registered in, so none of them finds it gone.
 */
export function fileTempDir(prefix: string): { readonly dir: string } {
  let dir: string | undefined;
  before(() => {
    const made = tempDirSync(prefix);
    dir = made.dir;
    process.once('exit', made.cleanup);
  });
  return {
    get dir(): string {
      if (dir === undefined) throw new Error(`fileTempDir(${prefix}): .dir read before its before() hook ran`);
      return dir;
    },
  };
}
