#!/usr/bin/env node
// Entry point of the `winnow` command. Every sub-command lives in its own module under
// ./commands and registers itself; heavy dependencies (onnxruntime, sharp) are imported inside
// the actions so that `winnow frames` does not pay for loading a model runtime.
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command();
program.name('winnow').description('Streaming video understanding with visual-token pruning').showHelpAfterError();
registerCommands(program);
await program.parseAsync(process.argv);
