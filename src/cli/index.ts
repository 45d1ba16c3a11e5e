#!/usr/bin/env node
// Entry point of the `winnow` command. Every sub-command lives in its own module under
// ./commands and registers itself; heavy dependencies (onnxruntime, sharp) are imported inside
// the actions so that `winnow frames` does not pay for loading a model runtime.
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command();
// Before registering: sub-commands inherit the override. Usage errors (unknown option, bad choice,
// missing argument) exit 2 like the commands' own invalid-argument errors; help and version exit 0.
program.name('winnow').description('Streaming video understanding with visual-token pruning').showHelpAfterError().exitOverride();
registerCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (!(e instanceof CommanderError)) throw e;
  process.exitCode = e.exitCode === 0 ? 0 : 2;
}
