// Which model folder and codebook a caller gets when it names none. Kept free of heavy imports
// (no onnxruntime) so that CLI help and `winnow doctor` can use it cheaply.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../package-root.js';
import type { Codebook } from '../prune/index.js';

/** The bundled model, relative to the package root. */
export const DEFAULT_MODEL_DIR = 'models/winnow-tiny';
/** The bundled model's codebook, relative to the package root. */
export const DEFAULT_CODEBOOK = 'codebooks/winnow-tiny.safetensors';

/** Why a runtime has no codebook (and so prunes with `none` unless told otherwise). */
export type NoCodebookReason = 'model-without-codebook' | 'bundled-codebook-missing';

export interface ModelChoice {
  /** Model folder. Default: the bundled one. */
  model?: string;
  /** Codebook path or a loaded codebook. Default: the bundled one, with the bundled model only. */
  codebook?: string | Codebook;
}

export interface ResolvedModel {
  /** Absolute model folder. */
  modelDir: string;
  /** Absolute codebook path or the caller's loaded codebook; undefined: no codebook. */
  codebook: string | Codebook | undefined;
  /** Set exactly when `codebook` is undefined. */
  noCodebookReason?: NoCodebookReason;
}

/** The model folder to use: the caller's, else the bundled one. */
export function resolveModelDir(model?: string): string {
  return model ? resolve(model) : join(packageRoot(), DEFAULT_MODEL_DIR);
}

/**
 * The one rule: the bundled codebook goes with the bundled model. A codebook is built for one
 * vision encoder, so naming another model folder without a codebook means no codebook at all.
 */
export function resolveModel(choice: ModelChoice = {}): ResolvedModel {
  const modelDir = resolveModelDir(choice.model);
  if (choice.codebook !== undefined) {
    return { modelDir, codebook: typeof choice.codebook === 'string' ? resolve(choice.codebook) : choice.codebook };
  }
  if (choice.model) return { modelDir, codebook: undefined, noCodebookReason: 'model-without-codebook' };
  const bundled = join(packageRoot(), DEFAULT_CODEBOOK);
  return existsSync(bundled) ? { modelDir, codebook: bundled } : { modelDir, codebook: undefined, noCodebookReason: 'bundled-codebook-missing' };
}

/** One line for the user: why there is no codebook and what to pass instead. */
export function describeNoCodebook(reason: NoCodebookReason): string {
  return reason === 'model-without-codebook'
    ? 'a model folder was named without a codebook (pass --codebook to prune with one)'
    : `${DEFAULT_CODEBOOK} is not installed (pass --codebook to prune with one)`;
}
