import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IncrementalDetokenizer, StopStringMatcher, TextTokenizer } from '../../src/llm/tokenizer.js';
import { TokenSampler, argmax } from '../../src/llm/sampling.js';
import { formatFrameMarker, parseLanguageModelConfig } from '../../src/llm/index.js';

// Byte-level "tokenizer": id = one byte; decoding an incomplete UTF-8 sequence yields U+FFFD,
// exactly what byte-fallback / ByteLevel tokenizers do mid-character.
const byteDecode = (ids: number[]): string => new TextDecoder().decode(Uint8Array.from(ids));

test('streaming deltas never split a multi-byte character', () => {
  const text = 'a é 漢字 🎥 done';
  const bytes = [...new TextEncoder().encode(text)];
  const d = new IncrementalDetokenizer(byteDecode);
  const deltas: string[] = [];
  for (const b of bytes) {
    const delta = d.push(b);
    assert.ok(!delta.includes('\uFFFD'), `delta ${JSON.stringify(delta)} holds a replacement char`);
    if (delta) deltas.push(delta);
  }
  deltas.push(d.flush());
  assert.equal(deltas.join(''), text);
  // The 4-byte emoji arrives as a single delta.
  assert.ok(deltas.includes('🎥'));
});

test('a truncated character at the end is flushed as U+FFFD, not lost silently', () => {
  const d = new IncrementalDetokenizer(byteDecode);
  const bytes = [...new TextEncoder().encode('ok 🎥')].slice(0, -1);
  let out = '';
  for (const b of bytes) out += d.push(b);
  assert.equal(out, 'ok ');
  assert.equal(d.flush(), '\uFFFD');
});

test('a decoder that strips the leading space keeps inter-word spaces in deltas', () => {
  // Metaspace-like: '▁' marks a space, the first one of a text is dropped.
  const vocab = ['▁the', '▁red', '▁cir', 'cle'];
  const decode = (ids: number[]): string => ids.map((i) => vocab[i]).join('').replaceAll('▁', ' ').replace(/^ /, '');
  const d = new IncrementalDetokenizer(decode);
  const out = [0, 1, 2, 3].map((i) => d.push(i)).join('') + d.flush();
  assert.equal(out, 'the red circle');
});

test('WordLevel tokenizer.json loads and round-trips through TextTokenizer', () => {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '<image>': 3, what: 4, color: 5, is: 6, the: 7, circle: 8, '?': 9, red: 10 };
  const tokenizerJson = {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>', '<image>'].map((c, id) => ({ id, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
  const tok = TextTokenizer.fromJson(tokenizerJson, {
    bos_token: '<s>',
    eos_token: '</s>',
    chat_template: "{{ bos_token }}{% for m in messages %}user: {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} answer:{% endif %}",
  });
  assert.deepEqual(tok.encode('What color is the circle?'), [4, 5, 6, 7, 8, 9]);
  assert.deepEqual(tok.encode('what zebra'), [4, 0]);
  assert.equal(tok.decode([10, 8]), 'red circle');
  const prompt = tok.applyChatTemplate([{ role: 'user', content: 'is it red?' }]);
  // The leading bos is stripped (the sequence already starts with it before the video).
  assert.equal(prompt, 'user: is it red? answer:');
  assert.equal(tok.tokenToId('<image>'), 3);
});

test('stop strings end the text and never leak, even across deltas', () => {
  const m = new StopStringMatcher(['\nQ:', 'END']);
  const parts = ['red ci', 'rcle\n', 'Q: more'];
  let out = '';
  let stopped = false;
  for (const p of parts) {
    const r = m.push(p);
    out += r.text;
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  assert.equal(stopped, true);
  assert.equal(out, 'red circle');
  const n = new StopStringMatcher(['END']);
  assert.deepEqual(n.push('abcE'), { text: 'abc', stopped: false });
  assert.deepEqual(n.push('x'), { text: 'Ex', stopped: false });
  assert.equal(n.flush(), '');
});

test('sampling: greedy is argmax; seeded sampling repeats; top-k 1 is greedy; top-p narrows', () => {
  const logits = Float32Array.from([0.1, 2.5, 2.4, -1, 0]);
  assert.equal(new TokenSampler().sample(logits), 1);
  assert.equal(argmax(logits), 1);
  const draw = (seed: number, o: object = {}): number[] => {
    const s = new TokenSampler({ temperature: 1.5, seed, ...o });
    return Array.from({ length: 50 }, () => s.sample(logits));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
  assert.ok(new Set(draw(7)).size > 2);
  assert.deepEqual(new Set(draw(3, { topK: 2 })), new Set([1, 2]));
  assert.deepEqual(new Set(draw(3, { topK: 1 })), new Set([1]));
  // Token 1 and 2 hold ~0.7 of the mass at T=1.5: top-p 0.5 keeps only them.
  for (const id of draw(5, { topP: 0.5 })) assert.ok(id === 1 || id === 2);
  assert.throws(() => new TokenSampler({ topP: 0 }), { code: 'WINNOW_ERR_INVALID_ARGUMENT' });
});

test('config: frame-shared scheme, marker, eos from both files; missing image token is a typed error', () => {
  const c = parseLanguageModelConfig(
    { image_token_index: 3, eos_token_id: 2, bos_token_id: 1, max_position_embeddings: 2048, winnow: { visual_position_scheme: 'frame-shared', frame_marker: 't={s}s' } },
    { eos_token_id: [2, 5] },
  );
  assert.equal(c.visualPositionScheme, 'frame-shared');
  assert.deepEqual(c.eosTokenIds.sort(), [2, 5]);
  assert.equal(formatFrameMarker(c.frameMarker, 12_999), 't=12s');
  assert.equal(parseLanguageModelConfig({ image_token_id: 9 }, null).visualPositionScheme, 'sequential');
  assert.throws(() => parseLanguageModelConfig({}, null), { code: 'WINNOW_ERR_MODEL_CONFIG' });
  assert.throws(() => parseLanguageModelConfig({ image_token_id: 1, winnow: { visual_position_scheme: 'weird' } }, null), {
    code: 'WINNOW_ERR_MODEL_CONFIG',
  });
});
