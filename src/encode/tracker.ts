// Temporal identity: a video's objects numbered in order of appearance, from the vision encoder's
// own per-patch classes. A per-frame encoder cannot tell whether the red circle now is the one seen
// ten seconds ago or a second one; a model trained with these ordinals (config.json
// `winnow.temporal_identity`) reads "how many appeared" and "which came first" off them. The rule
// is tools/default-model/model.py `track_ordinals`, which the model was trained with; the two must
// stay identical.
import { WinnowError } from '../errors.js';
import type { TemporalIdentitySpec } from '../model/config.js';

/**
 * State of one video stream: O(classes) numbers, whatever the stream's length. Feed it the
 * stream's sampled frames in order, from its first frame; a new stream needs a new tracker (or
 * `reset()`).
 */
export class ObjectTracker {
  readonly spec: TemporalIdentitySpec;
  /** Objects seen so far per group. */
  readonly #groupCount: Int32Array;
  /** Frames since each class was last present (starts at gapFrames: "never seen"). */
  readonly #absentFrames: Int32Array;
  /** Ordinal of each class's current object (valid while the class is present). */
  readonly #ordinal: Int32Array;
  readonly #tokensOfClass: Int32Array;
  #ordinals: Int32Array = new Int32Array(0);
  #frames = 0;

  constructor(spec: TemporalIdentitySpec) {
    this.spec = spec;
    const nClasses = spec.classGroups.length;
    let maxGroup = 0;
    for (const g of spec.classGroups) maxGroup = Math.max(maxGroup, g);
    this.#groupCount = new Int32Array(maxGroup + 1);
    this.#absentFrames = new Int32Array(nClasses).fill(spec.gapFrames);
    this.#ordinal = new Int32Array(nClasses);
    this.#tokensOfClass = new Int32Array(nClasses);
  }

  /** Frames observed since construction or the last reset. */
  get frames(): number {
    return this.#frames;
  }

  reset(): void {
    this.#groupCount.fill(0);
    this.#absentFrames.fill(this.spec.gapFrames);
    this.#ordinal.fill(0);
    this.#frames = 0;
  }

  /**
   * Advances by one frame. Returns each token's ordinal (0: background, an untracked class, or a
   * class on fewer than minPatches tokens); the array is reused by the next call.
   */
  observe(classes: ArrayLike<number>): Int32Array {
    const { minPatches, gapFrames, maxOrdinal, classGroups } = this.spec;
    const n = classes.length;
    const nClasses = classGroups.length;
    const count = this.#tokensOfClass;
    count.fill(0);
    for (let i = 0; i < n; i++) {
      const c = classes[i];
      if (!(c >= 0 && c < nClasses && Number.isInteger(c))) {
        throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `patch_classes holds class ${c}; winnow.temporal_identity.class_groups covers 0..${nClasses - 1}`, {
          details: { class: c, classes: nClasses },
        });
      }
      count[c]++;
    }
    for (let c = 0; c < nClasses; c++) {
      const group = classGroups[c];
      if (group === 0) continue;
      if (count[c] >= minPatches) {
        if (this.#absentFrames[c] >= gapFrames) {
          this.#groupCount[group]++;
          this.#ordinal[c] = Math.min(this.#groupCount[group], maxOrdinal);
        }
        this.#absentFrames[c] = 0;
      } else if (this.#absentFrames[c] < gapFrames) {
        // Saturates: only "absent for at least gapFrames" matters, and a long stream cannot overflow.
        this.#absentFrames[c]++;
      }
    }
    if (this.#ordinals.length !== n) this.#ordinals = new Int32Array(n);
    const out = this.#ordinals;
    for (let i = 0; i < n; i++) {
      const c = classes[i];
      out[i] = classGroups[c] !== 0 && count[c] >= minPatches ? this.#ordinal[c] : 0;
    }
    this.#frames++;
    return out;
  }

  /**
   * Observes one frame and adds each object token's ordinal embedding to `features`
   * (numTokens × dim, the encoder's full grid, before any pooling), in place.
   */
  addIdentity(features: Float32Array, classes: ArrayLike<number>): void {
    const { dim, embeddings } = this.spec;
    if (features.length !== classes.length * dim) {
      throw new WinnowError('WINNOW_ERR_MODEL_CONTRACT', `image_features holds ${features.length} values, patch_classes ${classes.length} tokens of width ${dim}`);
    }
    const ordinals = this.observe(classes);
    for (let i = 0; i < ordinals.length; i++) {
      const k = ordinals[i];
      if (k === 0) continue;
      const src = (k - 1) * dim;
      const dst = i * dim;
      for (let d = 0; d < dim; d++) features[dst + d] += embeddings[src + d];
    }
  }
}
