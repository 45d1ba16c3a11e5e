"""Word-level tokenizer of winnow-tiny, written in the Hugging Face tokenizers JSON format.

Pre-tokenization: lowercase, split on whitespace, isolate ASCII punctuation, split digits one by one
(so the frame marker "t=12s" becomes t = 1 2 s). This file mirrors that in Python for training.
"""
import json
import string

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<image>", "<|user|>", "<|assistant|>"]
SHAPES = ["circle", "square", "triangle"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
WORDS = (
    "what color is the how many are there a on left or right did appear was first to appeared "
    "describe picture yes no and nothing t s of in at".split()
)
PUNCT = list(".?=,:!")
DIGITS = list("0123456789")


def vocab_list():
    v = list(SPECIALS)
    for w in WORDS + SHAPES + [s + "s" for s in SHAPES] + COLORS + NUMBERS + PUNCT + DIGITS:
        if w not in v:
            v.append(w)
    return v


class Tokenizer:
    def __init__(self):
        self.vocab = vocab_list()
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad, self.bos, self.eos, self.unk, self.image, self.user, self.assistant = range(7)

    def split(self, text):
        out = []
        for chunk in text.lower().split():
            if chunk in SPECIALS:
                out.append(chunk)
                continue
            cur = ""
            for ch in chunk:
                if ch in string.punctuation or ch.isdigit():
                    if cur:
                        out.append(cur)
                        cur = ""
                    out.append(ch)
                else:
                    cur += ch
            if cur:
                out.append(cur)
        return out

    def encode(self, text):
        return [self.ids.get(w, self.unk) for w in self.split(text)]

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids if i >= len(SPECIALS))

    def marker(self, seconds):
        return self.encode(f"t={int(seconds)}s")

    def question(self, q):
        """Tokens of one user turn followed by the generation prompt (what the chat template renders)."""
        return [self.user] + self.encode(q) + [self.assistant]

    def answer(self, a):
        return self.encode(a) + [self.eos]

    def hf_json(self):
        added = [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for i, t in enumerate(SPECIALS)
        ]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "WhitespaceSplit"},
                    {"type": "Punctuation", "behavior": "Isolated"},
                    {"type": "Digits", "individual_digits": True},
                ],
            },
            "post_processor": None,
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(self.vocab)}, "unk_token": "<unk>"},
        }


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|> {{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %} <|assistant|> {{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %} <|assistant|>{% endif %}"
)


def tokenizer_config():
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 8192,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
    }


if __name__ == "__main__":
    t = Tokenizer()
    print(len(t.vocab), t.split("t=12s what color is the circle?"), t.encode("describe the picture."))
    print(json.dumps(t.hf_json())[:200])
