// Where every token of a winnow prompt goes and which position id it gets, in one place for the
// LM runtime (VideoContext) and the codebook builder (src/prune/build/forward.ts), so that the
// builder measures tokens exactly as the runtime later feeds them.
//
// Layout (what winnow models are trained on): [bos], then per frame the marker text (`t=12s`)
// and one image placeholder per kept visual token, then the chat-templated question with the
// generation prompt, then the answer. Text tokens take one position each; a frame's visual tokens
// follow the model's scheme (see VisualPositionScheme).
import type { LanguageModelConfig, VisualPositionScheme } from './config.js';
import type { TextTokenizer } from './tokenizer.js';

/** `t={s}s` → `t=12s` for ptsMs 12_400; `{ms}` is the rounded ptsMs. */
export function formatFrameMarker(template: string, ptsMs: number): string {
  const s = Math.floor(Math.max(0, ptsMs) / 1000);
  return template.replaceAll('{s}', String(s)).replaceAll('{ms}', String(Math.round(ptsMs)));
}

/** One frame's share of the sequence. */
export interface FrameSlots {
  /** The marker's token ids, before the visual tokens. */
  markerIds: number[];
  visualCount: number;
  /** markerIds + visual tokens. */
  tokenCount: number;
  /** Position ids the frame advances the sequence by. */
  positionCount: number;
}

export class VideoPromptLayout {
  readonly scheme: VisualPositionScheme;
  /** Ids the sequence starts with, before the first frame or question: bos when the model has one. */
  readonly prefixIds: readonly number[];
  /** The placeholder id whose embedding each visual token replaces. */
  readonly imageTokenId: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly config: LanguageModelConfig,
  ) {
    this.scheme = config.visualPositionScheme;
    this.prefixIds = config.bosTokenId === null ? [] : [config.bosTokenId];
    this.imageTokenId = config.imageTokenId;
  }

  /** The marker text of a frame at `ptsMs`, from the model's template. */
  frameMarker(ptsMs: number): string {
    return formatFrameMarker(this.config.frameMarker, ptsMs);
  }

  /** Token ids of plain text placed as is (a marker); none for ''. */
  textIds(text: string): number[] {
    return text ? this.tokenizer.encode(text) : [];
  }

  /** A frame at `ptsMs` with `visualCount` visual tokens; `marker` overrides the model's marker text. */
  frame(ptsMs: number, visualCount: number, marker = this.frameMarker(ptsMs)): FrameSlots {
    const markerIds = this.textIds(marker);
    return {
      markerIds,
      visualCount,
      tokenCount: markerIds.length + visualCount,
      positionCount: markerIds.length + this.visualPositionCount(visualCount),
    };
  }

  /** The question as the user turn of the chat template, ending with the generation prompt. */
  questionIds(question: string): number[] {
    return this.tokenizer.encode(this.tokenizer.applyChatTemplate([{ role: 'user', content: question }]));
  }

  /** Position of a frame's visual token `i` when the frame's visual tokens start at `first`. */
  visualPosition(first: number, i: number): number {
    return this.scheme === 'frame-shared' ? first : first + i;
  }

  /** Positions `count` visual tokens of one frame take: frame-shared tokens share one. */
  visualPositionCount(count: number): number {
    if (count === 0) return 0;
    return this.scheme === 'frame-shared' ? 1 : count;
  }
}
