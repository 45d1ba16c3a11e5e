// Temporal redundancy: a token whose cosine similarity to the token last KEPT at the same grid
// position of the same source is ≥ τ_t adds nothing the LLM has not already seen. The reference
// is per position and only moves when a token is kept, so slow drift still accumulates until it
// crosses τ_t (comparing with the previous frame instead would let a slow pan go unnoticed).
import { WinnowError } from '../errors.js';

export interface TemporalOptions {
  /** Cosine similarity at or above which a token counts as unchanged. */
  tau: number;
  /** Sources remembered at once; the least recently seen is forgotten beyond this. Default 64. */
  maxSources?: number;
}

interface SourceState {
  gridH: number;
  gridW: number;
  dim: number;
  /** L×D unit-normalised reference rows. */
  ref: Float32Array;
  has: Uint8Array;
}

const DEFAULT_SOURCE = '\u0000default';

export class TemporalFilter {
  readonly tau: number;
  readonly maxSources: number;
  private readonly sources = new Map<string, SourceState>();

  constructor(options: TemporalOptions) {
    if (!Number.isFinite(options.tau)) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'temporal tau must be finite');
    this.tau = options.tau;
    this.maxSources = options.maxSources ?? 64;
    if (!Number.isInteger(this.maxSources) || this.maxSources < 1) throw new WinnowError('WINNOW_ERR_INVALID_ARGUMENT', 'maxSources must be a positive integer');
  }

  private state(sourceId: string | undefined, gridH: number, gridW: number, dim: number): SourceState {
    const key = sourceId ?? DEFAULT_SOURCE;
    let s = this.sources.get(key);
    if (s && (s.gridH !== gridH || s.gridW !== gridW || s.dim !== dim)) s = undefined; // geometry changed: start over
    if (s) this.sources.delete(key); // re-insert below to mark as most recent
    else s = { gridH, gridW, dim, ref: new Float32Array(gridH * gridW * dim), has: new Uint8Array(gridH * gridW) };
    this.sources.set(key, s);
    while (this.sources.size > this.maxSources) this.sources.delete(this.sources.keys().next().value as string);
    return s;
  }

  /**
   * Clears mask[i] for tokens unchanged since last kept; writes per-token similarity to the
   * reference into `similarity` (NaN where there is no reference yet).
   */
  filter(sourceId: string | undefined, tokens: Float32Array, gridH: number, gridW: number, dim: number, mask: Uint8Array, similarity: Float32Array): void {
    const s = this.state(sourceId, gridH, gridW, dim);
    const L = gridH * gridW;
    for (let i = 0; i < L; i++) {
      if (!s.has[i]) {
        similarity[i] = NaN;
        continue;
      }
      const b = i * dim;
      let dot = 0;
      let ss = 0;
      for (let k = 0; k < dim; k++) {
        const v = tokens[b + k];
        dot += v * s.ref[b + k];
        ss += v * v;
      }
      const cos = dot / Math.max(Math.sqrt(ss), 1e-12);
      similarity[i] = cos;
      if (cos >= this.tau) mask[i] = 0;
    }
  }

  /** Records the finally kept tokens as the new references of their positions. */
  commit(sourceId: string | undefined, tokens: Float32Array, dim: number, kept: Int32Array): void {
    const s = this.sources.get(sourceId ?? DEFAULT_SOURCE);
    if (!s) return;
    for (let j = 0; j < kept.length; j++) {
      const i = kept[j];
      const b = i * dim;
      let ss = 0;
      for (let k = 0; k < dim; k++) ss += tokens[b + k] * tokens[b + k];
      const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
      for (let k = 0; k < dim; k++) s.ref[b + k] = tokens[b + k] * inv;
      s.has[i] = 1;
    }
  }

  forget(sourceId?: string): void {
    if (sourceId === undefined) this.sources.clear();
    else this.sources.delete(sourceId);
  }

  get sourceCount(): number {
    return this.sources.size;
  }
}
