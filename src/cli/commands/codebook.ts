// `winnow codebook <sub-command>`: import the paper's .pt codebooks into our safetensors format
// and inspect any codebook. The group is created through codebookGroup() so that other modules
// (e.g. a later `codebook build`) can attach their sub-commands to the same group.
import { basename } from 'node:path';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { WinnowError, toWinnowError } from '../../errors.js';
import { STRATEGY_NAMES, type StrategyName } from '../../prune/types.js';

/** Returns the `codebook` command group, creating it on first use. */
export function codebookGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'codebook');
  if (existing) return existing;
  return program.command('codebook').description('Create, import and inspect codebooks of redundancy prototypes');
}

function fail(e: unknown, json: boolean): void {
  const err = toWinnowError(e);
  if (json) process.stderr.write(JSON.stringify({ error: err.toJSON() }) + '\n');
  else process.stderr.write(`winnow: ${err.code}: ${err.message}\n`);
  process.exitCode = 1;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `--${name} must be a number, got ${v}`);
  return n;
}

interface ImportFlags {
  out: string;
  modelName?: string;
  visionEncoderSha256?: string;
  strategy?: string;
  tau?: string;
  ratio?: string;
  dtype: string;
  force?: boolean;
  json?: boolean;
}

export function registerCodebookCommands(program: Command): void {
  const group = codebookGroup(program);

  group
    .command('import')
    .description('Convert a PyTorch .pt codebook (one [P, D] tensor) into a .safetensors codebook; sample ids come from <name>.samples.json when present')
    .argument('<file>', '.pt file')
    .requiredOption('--out <file>', 'output .safetensors path')
    .option('--model-name <name>', 'model the codebook belongs to')
    .option('--vision-encoder-sha256 <hex>', 'fingerprint of the vision encoder file')
    .option('--strategy <name>', `default strategy (${STRATEGY_NAMES.join('|')})`)
    .option('--tau <t>', 'default threshold τ')
    .option('--ratio <r>', 'default kept ratio r')
    .option('--dtype <dtype>', 'stored dtype: f16 or f32', 'f16')
    .option('--force', 'overwrite --out if it exists')
    .option('--json', 'print a JSON summary')
    .action(async (file: string, flags: ImportFlags) => {
      try {
        const { loadCodebook, saveCodebook } = await import('../../prune/codebook.js');
        if (existsSync(flags.out) && !flags.force) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `${flags.out} exists (use --force to overwrite)`);
        const dtype = flags.dtype.toUpperCase();
        if (dtype !== 'F16' && dtype !== 'F32') throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', '--dtype must be f16 or f32');
        if (flags.strategy !== undefined && !STRATEGY_NAMES.includes(flags.strategy as StrategyName)) {
          throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `unknown strategy ${flags.strategy}`);
        }
        const cb = await loadCodebook(file);
        if (flags.modelName || flags.visionEncoderSha256) {
          cb.model = {
            name: flags.modelName ?? cb.model?.name ?? basename(file),
            llmWidth: cb.dim,
            ...(flags.visionEncoderSha256 ?? cb.model?.visionEncoderSha256 ? { visionEncoderSha256: flags.visionEncoderSha256 ?? cb.model?.visionEncoderSha256 } : {}),
          };
        }
        const tau = num('tau', flags.tau);
        const ratio = num('ratio', flags.ratio);
        if (flags.strategy || tau !== undefined || ratio !== undefined) {
          const strategy = (flags.strategy as StrategyName | undefined) ?? cb.defaults?.strategy ?? (tau !== undefined ? 'threshold' : 'ratio');
          cb.defaults = { strategy, ...(tau !== undefined ? { tau } : cb.defaults?.tau !== undefined && flags.strategy === undefined ? { tau: cb.defaults.tau } : {}), ...(ratio !== undefined ? { ratio } : {}) };
        }
        cb.build = { ...(cb.build ?? { source: 'PyTorch .pt import' }), parameters: { ...(cb.build?.parameters ?? {}), importedFrom: basename(file) } };
        await saveCodebook(flags.out, cb, { dtype });
        const summary = { out: flags.out, count: cb.count, dim: cb.dim, dtype, model: cb.model ?? null, defaults: cb.defaults ?? null, sampleIds: cb.build?.sampleIds?.length ?? 0 };
        if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else process.stdout.write(`wrote ${flags.out}: ${cb.count} prototypes × ${cb.dim} (${dtype}), ${summary.sampleIds} sample ids\n`);
      } catch (e) {
        fail(e, flags.json === true);
      }
    });

  group
    .command('inspect')
    .description('Show size, dtype, norm statistics and metadata of a codebook (.safetensors or .pt)')
    .argument('<file>', 'codebook file')
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { json?: boolean }) => {
      try {
        const { loadCodebook, codebookNormStats } = await import('../../prune/codebook.js');
        const cb = await loadCodebook(file);
        const norms = codebookNormStats(cb);
        const info = {
          path: file,
          count: cb.count,
          dim: cb.dim,
          dtype: cb.dtype,
          norms,
          model: cb.model ?? null,
          defaults: cb.defaults ?? null,
          build: cb.build ? { ...cb.build, sampleIds: undefined, sampleIdCount: cb.build.sampleIds?.length ?? 0, distinctSamples: new Set(cb.build.sampleIds ?? []).size } : null,
          extraMetadata: cb.extraMetadata,
        };
        if (flags.json) {
          process.stdout.write(JSON.stringify(info) + '\n');
          return;
        }
        const lines = [
          `file        ${file}`,
          `prototypes  ${cb.count} × ${cb.dim} (${cb.dtype})`,
          `L2 norms    min ${norms.min.toFixed(4)}  mean ${norms.mean.toFixed(4)}  max ${norms.max.toFixed(4)}`,
          `model       ${cb.model ? `${cb.model.name} (width ${cb.model.llmWidth}${cb.model.visionEncoderSha256 ? `, encoder sha256 ${cb.model.visionEncoderSha256.slice(0, 12)}…` : ''})` : '(unknown)'}`,
          `defaults    ${cb.defaults ? `${cb.defaults.strategy}${cb.defaults.tau !== undefined ? ` τ=${cb.defaults.tau}` : ''}${cb.defaults.ratio !== undefined ? ` r=${cb.defaults.ratio}` : ''}` : '(none)'}`,
          `build       ${cb.build ? `${cb.build.source}${cb.build.imageCount !== undefined ? `, ${cb.build.imageCount} images` : ''}, ${info.build?.sampleIdCount ?? 0} sample ids (${info.build?.distinctSamples ?? 0} distinct)` : '(unknown)'}`,
        ];
        if (cb.build?.parameters) lines.push(`parameters  ${JSON.stringify(cb.build.parameters)}`);
        for (const [k, v] of Object.entries(cb.extraMetadata)) lines.push(`meta.${k.padEnd(7)} ${v}`);
        process.stdout.write(lines.join('\n') + '\n');
      } catch (e) {
        fail(e, flags.json === true);
      }
    });
}
