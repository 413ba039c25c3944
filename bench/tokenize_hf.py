"""HF tokenizers' encode throughput on the corpus bench/tokenize.ts uses.

    python3 bench/tokenize_hf.py
"""
import gzip
import json
import os
import time

from tokenizers import Tokenizer

DIR = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "tokenizers")
TARGET_BYTES = 2_000_000


def corpus_lines():
    lines = [l["text"] for l in json.load(open(os.path.join(DIR, "cl100k.expected.json"), encoding="utf-8"))["lines"]]
    size = sum(len(l.encode()) for l in lines)
    return lines * -(-TARGET_BYTES // size)


def load(name):
    d = os.path.join(DIR, name)
    if os.path.exists(os.path.join(d, "tokenizer.json.gz")):
        return Tokenizer.from_str(gzip.open(os.path.join(d, "tokenizer.json.gz"), "rt", encoding="utf-8").read())
    return Tokenizer.from_file(os.path.join(d, "tokenizer.json"))


def mb_per_s(nbytes, run):
    run()
    t0 = time.perf_counter()
    run()
    return nbytes / 1e6 / (time.perf_counter() - t0)


lines = corpus_lines()
text = "\n".join(lines)
nbytes = len(text.encode())
print(f"corpus: {len(lines)} lines, {nbytes / 1e6:.2f} MB; one thread (encode, not encode_batch)")
print("| tokenizer | per line MB/s | whole text MB/s |")
for name in ["cl100k", "bytelevel-ranked", "bytelevel-trained", "spbpe-legacy"]:
    tok = load(name)
    per_line = mb_per_s(nbytes, lambda: [tok.encode(l, add_special_tokens=False) for l in lines])
    whole = mb_per_s(nbytes, lambda: tok.encode(text, add_special_tokens=False))
    print(f"| {name} | {per_line:.2f} | {whole:.2f} |")
