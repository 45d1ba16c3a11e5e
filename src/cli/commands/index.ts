import type { Command } from 'commander';
import { registerSynth } from './synth.js';

/** Each command module adds one import and one call here. */
export function registerCommands(program: Command): void {
  registerSynth(program);
}
