"""Make the tokenizer and chat-template fixtures, using HF tokenizers and transformers.

Run where Python has tokenizers, transformers and tiktoken (the H100 machine),
with the third-party inputs copied into .carry/ (they stay out of the repo):

    cp ../shared/data/tinyshakespeare.txt .carry/
    cp -r ../shared/data/chat-templates .carry/
    # cl100k_base ranks in tiktoken's file format, written from the tiktoken npm package:
    node -e "..."   (see test/tokenizers/README.md)
    python3 test/tokenizers/make_fixtures.py .carry test/fixtures/tokenizers

Writes, for each tokenizer NAME, NAME/tokenizer.json (+ tokenizer_config.json)
and NAME.expected.json: for every corpus line the ids HF produces with special
tokens parsed (HF's default), with special-token text left as text, and with
the post-processor's special tokens added, plus HF's decode of the ids. And
chat-templates.expected.json: transformers' apply_chat_template renderings.
"""
import datetime
import gzip
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTE_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                 "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|python_tag|>", "<|eom_id|>"]

CORPUS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed\n\n\nthree newlines",
    "                                        forty spaces",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "const x = {a: 1, b: [2, 3]}; // comment\nconsole.log(x?.a ?? 0);",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }",
    "Numbers: 0 1 12 123 1234 12345 123456789 3.14159 -42 1e-10 0x1F 1,000,000",
    "Dates 2024-07-26, times 12:34:56, phone +1 (555) 123-4567",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "CJK: 你好，世界！こんにちは世界。안녕하세요 세계",
    "Combining marks: e\u0301 a\u0308 n\u0303 o\u0302\u0323 Z\u0337\u0335\u0328",
    "Accented: café naïve résumé über Ærøskøbing señor",
    "Mixed scripts: Привет мир, مرحبا بالعالم, שלום עולם, नमस्ते दुनिया",
    "Special tokens in text: <|im_start|>user hello<|im_end|> and <|begin_of_text|> too",
    "Llama 2 markers <s> [INST] hi [/INST] </s> and <unk>",
    "Punctuation!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
    "Contractions: I'm, you're, he's, they've, we'll, I'd, don't, CAN'T, It'S",
    "URL https://example.com/path?query=1&x=y#frag and email a.b@c.org",
    "ALL CAPS SHOUTING AND lower case and MiXeD cAsE",
    "\u00a0non-breaking\u00a0spaces\u2003em space\u200bzero width",
    "Math: ∑_{i=1}^{n} x_i² ≤ ∞ ≠ √2 ± π ≈ 3.14",
    "",
    " ",
    "\n",
    "a",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


def shakespeare_lines(path, n):
    text = open(path, encoding="utf-8").read()
    tail = text[-20000:].split("\n\n")
    return [p for p in tail if p.strip()][:n]


def train_byte_level(text_path):
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=BYTE_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([text_path], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    return tok


def rank_derived(trained):
    """The trained vocabulary with merges regenerated from ranks, the way
    transformers converts a tiktoken encoding: every split of a token into two
    vocabulary tokens is a merge, ordered by the token's rank."""
    j = json.loads(trained.to_str())
    vocab = j["model"]["vocab"]
    merges = []
    for token, rank in sorted(vocab.items(), key=lambda kv: kv[1]):
        local = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in vocab and token[i:] in vocab]
        local.sort(key=lambda p: (vocab[p[0]], vocab[p[1]]))
        merges.extend(local)
    j["model"]["merges"] = [[a, b] for a, b in merges]
    j["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(j))


def gpt2_style(tok):
    j = json.loads(tok.to_str())
    j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    return Tokenizer.from_str(json.dumps(j))


def train_sentencepiece_bpe(text_path):
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
                                  show_progress=False)
    tok.train([text_path], trainer)
    j = json.loads(tok.to_str())
    # As in Llama 2: byte tokens live in the model vocab, not among added tokens.
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] in ("<unk>", "<s>", "</s>")]
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return Tokenizer.from_str(json.dumps(j))


def metaspace_style(sp):
    j = json.loads(sp.to_str())
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}
    return Tokenizer.from_str(json.dumps(j))


def cl100k(carry):
    from transformers.convert_slow_tokenizer import TikTokenConverter
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    import inspect
    params = inspect.signature(TikTokenConverter.__init__).parameters
    print("TikTokenConverter", list(params))
    specials = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"]
    kwargs = {"vocab_file": os.path.join(carry, "cl100k_base.tiktoken"), "pattern": pattern}
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if key in params:
            kwargs[key] = specials
            break
    conv = TikTokenConverter(**kwargs)
    return conv.converted()


def expected(tok, lines):
    out = []
    for text in lines:
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_text = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        with_special = tok.encode(text, add_special_tokens=True).ids
        out.append({"text": text, "ids": ids, "ids_special_as_text": ids_text, "ids_with_special": with_special,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    return out


def save(root, name, tok, lines, config, gz=False):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    text = tok.to_str(pretty=not gz)
    if gz:
        with gzip.open(os.path.join(d, "tokenizer.json.gz"), "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(root, name + ".expected.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizers": tokenizers.__version__, "lines": expected(tok, lines)}, f, ensure_ascii=False, indent=1)
    print(name, "vocab", tok.get_vocab_size(), "lines", len(lines))


CONVERSATIONS = {
    "single-user": [{"role": "user", "content": "Hello there!"}],
    "system-user": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}],
    "multi-turn": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke.\nMake it short."}],
    "tool-call": [{"role": "user", "content": "What is the weather in Paris?"},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "abcDEF123", "type": "function",
                   "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
                  {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather", "content": "{\"temp\": 21}"}],
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}]
TEMPLATES = {"chatml.jinja": ("<|im_start|>", "<|im_end|>"), "llama3.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
             "llama3.1-tools.jinja": ("<|begin_of_text|>", "<|eot_id|>"), "mistral-tools.jinja": ("<s>", "</s>")}


def chat_fixtures(carry, root, byte_tok):
    from transformers import PreTrainedTokenizerFast
    now = datetime.datetime.now()
    cases = []
    for tname, (bos, eos) in TEMPLATES.items():
        template = open(os.path.join(carry, "chat-templates", tname), encoding="utf-8").read()
        hf = PreTrainedTokenizerFast(tokenizer_object=byte_tok, bos_token=bos, eos_token=eos)
        for cname, messages in CONVERSATIONS.items():
            for with_tools in ([False, True] if "tools" in tname else [False]):
                for agp in (False, True):
                    case = {"template": tname, "conversation": cname, "tools": with_tools,
                            "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos}
                    try:
                        case["rendered"] = hf.apply_chat_template(
                            messages, chat_template=template, tools=TOOLS if with_tools else None,
                            add_generation_prompt=agp, tokenize=False)
                    except Exception as e:  # a template may refuse a conversation: record that it raised
                        case["error"] = f"{type(e).__name__}: {e}"
                    cases.append(case)
    with open(os.path.join(root, "chat-templates.expected.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "rendered_at": now.isoformat(), "conversations": CONVERSATIONS,
                   "tools": TOOLS, "cases": cases}, f, ensure_ascii=False, indent=1)
    print("chat cases", len(cases), "errors", sum("error" in c for c in cases))


def main(carry, root):
    os.makedirs(root, exist_ok=True)
    text_path = os.path.join(carry, "tinyshakespeare.txt")
    lines = CORPUS + shakespeare_lines(text_path, 24)
    trained = train_byte_level(text_path)
    llama_cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": True}
    save(root, "bytelevel-trained", trained, lines, llama_cfg)
    derived = rank_derived(trained)
    save(root, "bytelevel-ranked", derived, lines, llama_cfg)
    save(root, "bytelevel-gpt2", gpt2_style(derived), lines, {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"})
    sp = train_sentencepiece_bpe(text_path)
    sp_cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    save(root, "spbpe-legacy", sp, lines, sp_cfg)
    save(root, "spbpe-metaspace", metaspace_style(sp), lines, sp_cfg)
    try:
        save(root, "cl100k", cl100k(carry), lines, {"eos_token": "<|endoftext|>"}, gz=True)
    except Exception as e:
        print("cl100k conversion failed:", type(e).__name__, e)
    chat_fixtures(carry, root, derived)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
