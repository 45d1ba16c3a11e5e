// A pruning codebook ready to use: loaded, checked against the model's vision encoder (a codebook
// built for another encoder scores nonsense), and indexed once. Every pruner of a runtime shares
// the index through a view that does not own it.
import { WinnowError } from '../errors.js';
import { checkCodebookEncoder, loadCodebook, type Codebook, type EncoderCheckPolicy } from './codebook.js';
import { createPrototypeIndex, type PrototypeIndex, type PrototypeIndexOptions } from './prototype-index.js';

export interface PruningCodebook {
  codebook: Codebook;
  /** Owned by the caller: close it once, after every pruner using it. */
  index: PrototypeIndex;
}

export interface LoadPruningCodebookOptions {
  /** The model's vision encoder file, to check the codebook was built with it. */
  visionEncoderFile?: string;
  /** 'error' (WINNOW_ERR_CODEBOOK_MISMATCH, default), 'warn' (onWarning) or 'off'. */
  policy?: EncoderCheckPolicy;
  onWarning?: (error: WinnowError) => void;
  /** Index backend options (HNSW or exact, threads). */
  index?: PrototypeIndexOptions;
  signal?: AbortSignal;
}

export async function loadPruningCodebook(source: string | Codebook, options: LoadPruningCodebookOptions = {}): Promise<PruningCodebook> {
  const { signal } = options;
  const codebook = typeof source === 'string' ? await loadCodebook(source, { signal }) : source;
  if (options.visionEncoderFile) {
    await checkCodebookEncoder(codebook, options.visionEncoderFile, { policy: options.policy, onWarning: options.onWarning, signal });
  }
  const index = await createPrototypeIndex(codebook.prototypes, codebook.count, codebook.dim, { ...options.index, signal });
  return { codebook, index };
}

/** A non-owning view of a shared prototype index: a pruner may close it freely. */
export function sharedIndexView(index: PrototypeIndex): PrototypeIndex {
  return {
    get backend() {
      return index.backend;
    },
    get kernel() {
      return index.kernel;
    },
    get count() {
      return index.count;
    },
    get dim() {
      return index.dim;
    },
    score: (t, n, out, s) => index.score(t, n, out, s),
    similarityMatrix: (t, n, s) => index.similarityMatrix(t, n, s),
    close: async () => undefined,
  };
}
