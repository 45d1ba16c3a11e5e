import type { Command } from 'commander';

/** Each command module adds one import and one call here. */
export function registerCommands(program: Command): void {
  void program;
}
