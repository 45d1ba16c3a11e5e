import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { WinnowError } from '../errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

type Json = Record<string, unknown>;

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/**
 * The model's tokenizer (tokenizer.json through @huggingface/tokenizers) and its chat template
 * (tokenizer_config.json's `chat_template` through @huggingface/jinja).
 */
export class TextTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  private readonly template: Template | null;
  private readonly specialTokens: Record<string, string>;

  constructor(
    private readonly tokenizer: Tokenizer,
    config: Json,
    chatTemplate: string | null,
  ) {
    this.bosToken = tokenString(config.bos_token);
    this.eosToken = tokenString(config.eos_token);
    this.specialTokens = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'image_token']) {
      const v = tokenString(config[key]);
      if (v !== null) this.specialTokens[key] = v;
    }
    try {
      this.template = chatTemplate === null ? null : new Template(chatTemplate);
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_TOKENIZER', 'chat_template does not parse', { cause: e });
    }
  }

  static async load(dir: string): Promise<TextTokenizer> {
    const read = async (name: string): Promise<Json> => {
      const path = join(dir, name);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        throw new WinnowError('WINNOW_ERR_MODEL_MISSING_FILE', `cannot read ${path}`, { cause: e, details: { path } });
      }
      try {
        return JSON.parse(text) as Json;
      } catch (e) {
        throw new WinnowError('WINNOW_ERR_TOKENIZER', `${path} is not valid JSON`, { cause: e, details: { path } });
      }
    };
    const json = await read('tokenizer.json');
    const config = await read('tokenizer_config.json');
    return TextTokenizer.fromJson(json, config);
  }

  static fromJson(tokenizerJson: Json, tokenizerConfig: Json): TextTokenizer {
    // WordLevel models have no class of their own in tokenizers.js; its vocabulary-lookup fallback
    // takes the unknown token from the tokenizer config, so pass the model's one through.
    const model = (tokenizerJson.model ?? {}) as Json;
    const config: Json = { ...tokenizerConfig };
    if (tokenString(config.unk_token) === null && typeof model.unk_token === 'string') config.unk_token = model.unk_token;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_TOKENIZER', `cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
    }
    const tpl = typeof config.chat_template === 'string' ? config.chat_template : null;
    return new TextTokenizer(tok, config, tpl);
  }

  /** Token ids of `text`, without the post-processor's special tokens (callers place bos themselves). */
  encode(text: string): number[] {
    try {
      return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    } catch (e) {
      throw new WinnowError('WINNOW_ERR_TOKENIZER', `cannot tokenize: ${(e as Error).message}`, { cause: e });
    }
  }

  decode(ids: ArrayLike<number>, skipSpecialTokens = true): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /**
   * Renders the chat template. A leading bos string is removed: the sequence already starts with
   * bos before the video, and the question continues it.
   */
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true, stripLeadingBos = true): string {
    let text: string;
    if (this.template === null) {
      // No template: the plain question, as models without chat training expect.
      text = messages.map((m) => m.content).join('\n');
    } else {
      try {
        text = this.template.render({ messages, add_generation_prompt: addGenerationPrompt, ...this.specialTokens });
      } catch (e) {
        throw new WinnowError('WINNOW_ERR_TOKENIZER', `chat_template failed to render: ${(e as Error).message}`, { cause: e });
      }
    }
    if (stripLeadingBos && this.bosToken && text.startsWith(this.bosToken)) text = text.slice(this.bosToken.length);
    return text;
  }
}

/**
 * Turns a stream of token ids into text deltas that never split a character: decodes a short
 * window (the previous token(s) + the new ones) and emits only what the new ones add, holding
 * back while the window ends in an incomplete UTF-8 sequence (U+FFFD). Keeping the previous
 * token in the window preserves leading spaces that decoders strip at the start of a text.
 */
export class IncrementalDetokenizer {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly decodeFn: (ids: number[]) => string) {}

  static forTokenizer(tokenizer: TextTokenizer): IncrementalDetokenizer {
    return new IncrementalDetokenizer((ids) => tokenizer.decode(ids, true));
  }

  reset(): void {
    this.ids.length = 0;
    this.prefixOffset = 0;
    this.readOffset = 0;
  }

  /** Adds one token; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decodeFn(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decodeFn(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      const delta = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      // The window only needs the last emitted token(s); drop older ids so cost stays constant.
      if (this.prefixOffset > 64) {
        this.ids.splice(0, this.prefixOffset);
        this.readOffset -= this.prefixOffset;
        this.prefixOffset = 0;
      }
      return delta;
    }
    return '';
  }

  /** Text still held back at the end of the stream (an incomplete character decodes as U+FFFD). */
  flush(): string {
    const prefixText = this.decodeFn(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decodeFn(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
  }
}

/**
 * Finds stop strings across deltas. Text that might be the start of a stop string is held back
 * until it is known not to be one, so a stop string never leaks into the answer.
 */
export class StopStringMatcher {
  private pending = '';
  private readonly maxLen: number;

  constructor(private readonly stops: readonly string[]) {
    this.maxLen = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Returns the text safe to emit and whether a stop string was hit (text after it is dropped). */
  push(delta: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text: delta, stopped: false };
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      if (s.length === 0) continue;
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const text = this.pending.slice(0, cut);
      this.pending = '';
      return { text, stopped: true };
    }
    // Hold back the longest suffix that is a prefix of some stop string.
    let hold = 0;
    for (let k = Math.min(this.maxLen - 1, this.pending.length); k > 0; k--) {
      const tail = this.pending.slice(this.pending.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) {
        hold = k;
        break;
      }
    }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }

  flush(): string {
    const t = this.pending;
    this.pending = '';
    return t;
  }
}
