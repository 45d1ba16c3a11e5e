// Helpers every stage's tests share; tests import them from here. Each file owns one concern:
//   paths.ts      repository root, the CLI entry, the bundled model and codebook, modelSkip
//   temp.ts       temporary directories that are always removed
//   ffmpeg.ts     the ffmpeg/ffprobe tests make media with, and running it
//   processes.ts  liveness (zombie-aware), waiting for processes to go, children of a pid
//   cli.ts        the CLI, examples and fixtures as child processes
//   net.ts        local servers on a free port, a peer that never answers
//   errors.ts     the code of a thrown or rejected WinnowError
//   onnx.ts       writing small ONNX models
// Stage-specific helpers stay in their stage's folder (test/<stage>/helpers.ts).
export { BUNDLED_CODEBOOK, CLI_ENTRY, MODEL_DIR, codebookSkip, modelSkip, repoRoot } from './paths.js';
export { tempDir, fileTempDir, tempDirSync, withTempDir, type TempDir } from './temp.js';
export { GEN_FFMPEG, GEN_FFPROBE, ffmpeg, ffmpegSync } from './ffmpeg.js';
export { childPids, isAlive, waitGone, waitUntil } from './processes.js';
export { runCli, runTsx, spawnTsx, type RunOptions, type RunResult } from './cli.js';
export { listenLocal, silentPeer, type SilentPeer } from './net.js';
export { rejection, thrownCode } from './errors.js';
export { buildModel, seededWeights, type AttrValue, type Dim, type ElemType, type Initializer, type Node, type ValueInfo } from './onnx.js';
