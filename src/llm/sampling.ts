import { WinnowError } from '../errors.js';

export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = off. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 = off. */
  topP?: number;
  /** Seed of the sampling PRNG (same seed + same prompt = same answer). Default 0. */
  seed?: number;
}

/** mulberry32: tiny, fast, good enough for sampling; deterministic from a 32-bit seed. */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next token from a logits row. Buffers are sized once for the vocabulary, so a
 * decoding step allocates nothing here.
 */
export class TokenSampler {
  private readonly temperature: number;
  private readonly topK: number;
  private readonly topP: number;
  private readonly rng: SeededRandom;
  private order: Int32Array = new Int32Array(0);
  private probs: Float32Array = new Float32Array(0);

  constructor(options: SamplingOptions = {}) {
    const { temperature = 0, topK = 0, topP = 1, seed = 0 } = options;
    if (!(temperature >= 0) || !Number.isFinite(temperature)) {
      throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `temperature must be ≥ 0, got ${temperature}`);
    }
    if (!Number.isInteger(topK) || topK < 0) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `topK must be an integer ≥ 0, got ${topK}`);
    if (!(topP > 0 && topP <= 1)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', `topP must be in (0, 1], got ${topP}`);
    this.temperature = temperature;
    this.topK = topK;
    this.topP = topP;
    this.rng = new SeededRandom(seed);
  }

  get greedy(): boolean {
    return this.temperature === 0 || this.topK === 1;
  }

  sample(logits: Float32Array): number {
    if (this.greedy) return argmax(logits);
    const v = logits.length;
    if (this.order.length !== v) {
      this.order = new Int32Array(v);
      this.probs = new Float32Array(v);
    }
    const order = this.order;
    const probs = this.probs;
    let max = -Infinity;
    for (let i = 0; i < v; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    const invT = 1 / this.temperature;
    for (let i = 0; i < v; i++) {
      const p = Math.exp((logits[i] - max) * invT);
      probs[i] = p;
      sum += p;
      order[i] = i;
    }
    let n = v;
    if (this.topK > 0 || this.topP < 1) {
      order.sort((a, b) => probs[b] - probs[a] || a - b);
      if (this.topK > 0 && this.topK < n) n = this.topK;
      if (this.topP < 1) {
        let cum = 0;
        let keptSum = 0;
        for (let i = 0; i < n; i++) keptSum += probs[order[i]];
        for (let i = 0; i < n; i++) {
          cum += probs[order[i]] / keptSum;
          if (cum >= this.topP) {
            n = i + 1;
            break;
          }
        }
      }
      sum = 0;
      for (let i = 0; i < n; i++) sum += probs[order[i]];
    }
    let r = this.rng.next() * sum;
    for (let i = 0; i < n; i++) {
      const id = order[i];
      r -= probs[id];
      if (r <= 0) return id;
    }
    return order[n - 1];
  }
}
