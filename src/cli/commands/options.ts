// Options several commands share, defined once so their flags, help and choices cannot drift.
import { Option } from 'commander';
import { ENCODER_CHECK_POLICIES, type EncoderCheckPolicy } from '../../prune/types.js';

export type { EncoderCheckPolicy };

/** `--codebook-check`: see checkCodebookEncoder. `carryOn` says what `warn` goes on to do. */
export function codebookCheckOption(carryOn = 'prune anyway'): Option {
  return new Option('--codebook-check <policy>', `a codebook built for another vision encoder: error (default), warn and ${carryOn}, or off (no hashing)`).choices(ENCODER_CHECK_POLICIES);
}
