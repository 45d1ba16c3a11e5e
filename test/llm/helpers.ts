import type * as ort from 'onnxruntime-node';
import type { VisualFrame } from '../../src/llm/index.js';

/** Deterministic visual tokens for a frame at `ptsMs` with `count` kept tokens. */
export function syntheticFrame(ptsMs: number, count: number, dim: number, seed = 0): VisualFrame {
  const tokens = new Float32Array(count * dim);
  for (let i = 0; i < tokens.length; i++) tokens[i] = Math.sin(0.37 * i + 0.011 * ptsMs + seed) * 0.8;
  return { frame: { ptsMs }, tokens, dim };
}

export interface RecordedRun {
  positions: number[];
  tokens: number;
  past: number;
  /** Output names the run asked for (all outputs when the caller passed no fetches). */
  fetches: string[] | null;
}

/**
 * Wraps a session and records what each run was fed: the test sees the real position ids
 * and token counts going into onnxruntime, not what the runtime believes it sends.
 */
export function recordingSession(inner: ort.InferenceSession, runs: RecordedRun[]): ort.InferenceSession {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'run') {
        return (feeds: Record<string, ort.Tensor>, ...rest: unknown[]) => {
          // The runtime always passes a fetches record as the second argument.
          const f = rest[0];
          const fetches = f !== null && typeof f === 'object' ? Object.keys(f) : null;
          const pos = feeds.position_ids;
          const emb = feeds.inputs_embeds;
          const past = feeds['past_key_values.0.key'];
          runs.push({
            positions: pos ? Array.from(pos.data as BigInt64Array, Number) : [],
            tokens: emb ? emb.dims[1] : 0,
            past: past ? past.dims[2] : 0,
            fetches,
          });
          return (target.run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>).call(target, feeds, ...rest);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
