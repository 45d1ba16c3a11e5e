// `winnow prune TOKENS.npy --codebook FILE --strategy ...`: score a [L, D] token matrix saved by
// numpy against a codebook and print the kept indices. With --json the LAST stdout line is
// {"kept":[...],"scores":[...]} (scores = max cosine similarity per token).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { WinnowError, toWinnowError } from '../../errors.js';
import type { StrategyName } from '../../prune/types.js';

const CLI_STRATEGIES: StrategyName[] = ['threshold', 'ratio', 'double-softmax', 'random', 'none'];

interface PruneFlags {
  codebook?: string;
  strategy?: string;
  tau?: string;
  ratio?: string;
  seed: string;
  backend: string;
  ef?: string;
  json?: boolean;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `--${name} must be a number, got ${v}`);
  return n;
}

export function registerPruneCommand(program: Command): void {
  program
    .command('prune')
    .description('Prune a token matrix (.npy, float16/float32, shape [L, D]) against a codebook and print the kept indices')
    .argument('<tokens>', '.npy file')
    .option('--codebook <file>', 'codebook (.safetensors or .pt); required for threshold/ratio/double-softmax')
    .option('--strategy <name>', `${CLI_STRATEGIES.join('|')} (default: the codebook's)`)
    .option('--tau <t>', 'threshold τ (threshold strategy)')
    .option('--ratio <r>', 'kept ratio r (ratio, double-softmax, random)')
    .option('--seed <n>', 'seed for random', '0')
    .option('--backend <name>', 'exact | hnsw | auto', 'exact')
    .option('--ef <n>', 'HNSW query ef')
    .option('--json', 'last line: {"kept":[...],"scores":[...]}')
    .action(async (tokensPath: string, flags: PruneFlags) => {
      let pruner: import('../../prune/pruner.js').Pruner | undefined;
      try {
        const { readNpy } = await import('../../prune/npy.js');
        const { Pruner } = await import('../../prune/pruner.js');
        if (flags.strategy !== undefined && !CLI_STRATEGIES.includes(flags.strategy as StrategyName)) {
          throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `--strategy must be one of ${CLI_STRATEGIES.join(', ')}`);
        }
        if (!['exact', 'hnsw', 'auto'].includes(flags.backend)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', '--backend must be exact, hnsw or auto');
        let bytes: Uint8Array;
        try {
          bytes = await readFile(tokensPath);
        } catch (e) {
          throw new WinnowError('WINNOW_ERR_IO', `could not read ${tokensPath}`, { cause: e });
        }
        const m = readNpy(bytes, tokensPath);
        const ef = num('ef', flags.ef);
        pruner = await Pruner.load({
          codebook: flags.codebook,
          strategy: flags.strategy as StrategyName | undefined,
          tau: num('tau', flags.tau),
          ratio: num('ratio', flags.ratio),
          seed: num('seed', flags.seed),
          minKeep: 0,
          index: { backend: flags.backend as 'exact' | 'hnsw' | 'auto', ...(ef !== undefined ? { hnsw: { ef } } : {}) },
        });
        // A bare matrix has no grid: treat it as one row of L tokens.
        const result = await pruner.prune({
          frame: { index: 0, ptsMs: 0, width: 0, height: 0, data: new Uint8Array(0) },
          tokens: m.data,
          numTokens: m.rows,
          dim: m.cols,
          gridH: 1,
          gridW: m.rows,
        });
        const kept = Array.from(result.kept);
        if (flags.json) {
          process.stderr.write(`kept ${kept.length}/${m.rows} (${pruner.strategy}, ${pruner.backend}, ${result.stats.scoreMs.toFixed(1)} ms)\n`);
          const scores = Array.from(result.scores, (s) => (Number.isNaN(s) ? null : s));
          process.stdout.write(JSON.stringify({ kept, scores }) + '\n');
        } else {
          process.stdout.write(`kept ${kept.length}/${m.rows} tokens (${pruner.strategy}, ${pruner.backend}, ${result.stats.scoreMs.toFixed(1)} ms)\n`);
          process.stdout.write(kept.join(' ') + '\n');
        }
      } catch (e) {
        const err = toWinnowError(e);
        if (flags.json) process.stderr.write(JSON.stringify({ error: err.toJSON() }) + '\n');
        else process.stderr.write(`winnow: ${err.code}: ${err.message}\n`);
        process.exitCode = 1;
      } finally {
        await pruner?.close();
      }
    });
}
