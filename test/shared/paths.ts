// Where the tests find the checkout's parts. Computed here once: a test that builds these paths
// itself breaks silently when a folder moves.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder holding package.json); spawned CLIs and examples run from here. */
export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** `winnow`'s entry point, run through tsx as `npx winnow` runs the built one. */
export const CLI_ENTRY = join(repoRoot, 'src', 'cli', 'index.ts');

/** The bundled default model. */
export const MODEL_DIR = join(repoRoot, 'models', 'winnow-tiny');

/** The codebook shipped with the bundled model. */
export const BUNDLED_CODEBOOK = join(repoRoot, 'codebooks', 'winnow-tiny.safetensors');

const MODEL_FILES = ['vision_encoder.onnx', 'embed_tokens.onnx', 'decoder_model_merged.onnx'];

/**
 * Why a test that needs the bundled model skips (`{ skip: modelSkip }`), or false when its ONNX files
 * are all there: a checkout without the model's large files still runs every other test.
 */
export const modelSkip: string | false = MODEL_FILES.every((f) => existsSync(join(MODEL_DIR, 'onnx', f))) ? false : 'models/winnow-tiny is not installed';

/** As modelSkip, for tests that also need the bundled codebook. */
export const codebookSkip: string | false = modelSkip || (existsSync(BUNDLED_CODEBOOK) ? false : 'codebooks/winnow-tiny.safetensors is not installed');
