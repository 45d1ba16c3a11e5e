// A worker process of `winnow eval --workers N`: loads its own copy of the pipeline, evaluates the
// scenes it is given under the configs the parent planned, and sends each scene's result back.
// Scenes are independent, so N processes use N cores without sharing onnxruntime sessions.
import { toWinnowError } from '../errors.js';
import type { QuestionFamily } from '../synth/index.js';
import { Evaluator, selectCheckpoints, type EvaluatorLoadOptions } from './evaluator.js';
import { readTruth } from './set.js';
import type { EvalConfig, SceneRef, SceneResult } from './types.js';

export interface WorkerRequest {
  load: Omit<EvaluatorLoadOptions, 'log' | 'signal'>;
  configs: EvalConfig[];
  scenes: { index: number; scene: SceneRef }[];
  families: QuestionFamily[];
  checkpoints: number;
}

export type WorkerMessage =
  | { type: 'scene'; index: number; result: SceneResult }
  | { type: 'done' }
  | { type: 'error'; code: string; message: string };

/** Evaluates `req.scenes`, calling `emit` per scene (shared by the worker process and tests). */
export async function evaluateScenes(req: WorkerRequest, emit: (m: WorkerMessage) => void, signal?: AbortSignal): Promise<void> {
  const ev = await Evaluator.load({ ...req.load, signal });
  try {
    const families = new Set<string>(req.families);
    for (const { index, scene } of req.scenes) {
      const enc = await ev.encodeScene(scene, signal);
      const truth = await readTruth(scene);
      const cps = selectCheckpoints(truth.qa, families, enc.isStill ? 1 : req.checkpoints);
      const configs = [];
      for (const c of req.configs) configs.push(await ev.runConfig(enc, cps, c, signal));
      emit({ type: 'scene', index, result: { scene, encodeMs: enc.encodeMs, configs } });
    }
  } finally {
    await ev.close();
  }
}

if (process.send && process.env.WINNOW_EVAL_WORKER === '1') {
  const send = (m: WorkerMessage): void => void process.send?.(m);
  // Disconnect only once the last message is handed over, or the parent may never see it.
  const finish = (m: WorkerMessage): void => void process.send?.(m, undefined, {}, () => process.disconnect?.());
  process.once('message', (req: WorkerRequest) => {
    evaluateScenes(req, send).then(
      () => finish({ type: 'done' }),
      (e: unknown) => {
        const err = toWinnowError(e);
        finish({ type: 'error', code: err.code, message: err.message });
      },
    );
  });
  // The parent going away ends the worker.
  process.once('disconnect', () => setTimeout(() => process.exit(0), 100).unref());
}
