import type { Command } from 'commander';
import { registerFrames } from './frames.js';
import { registerDoctor } from './doctor.js';
import { registerSynth } from './synth.js';
import { registerCodebookCommands } from './codebook.js';
import { registerCodebookBuild } from './codebook-build.js';
import { registerPruneCommand } from './prune.js';
import { registerViz } from './viz.js';
import { registerAsk } from './ask.js';
import { registerEval } from './eval.js';
import { registerServe } from './serve.js';

/** Each command module adds one import and one call here. */
export function registerCommands(program: Command): void {
  registerFrames(program);
  registerDoctor(program);
  registerSynth(program);
  registerCodebookCommands(program);
  registerCodebookBuild(program);
  registerPruneCommand(program);
  registerViz(program);
  registerAsk(program);
  registerEval(program);
  registerServe(program);
}
