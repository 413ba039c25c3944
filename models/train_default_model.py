"""Train Tachyon's embedded default model: a small Llama on tinyshakespeare.

Run where Python has torch, transformers and tokenizers (the H100 machine),
with the corpus copied to .carry/ (it stays out of the repo):

    cp ../shared/data/tinyshakespeare.txt .carry/
    python3 models/train_default_model.py .carry/tinyshakespeare.txt models/tiny-shakespeare

Writes an HF-format directory (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json with a ChatML template, generation_config.json), plus
training.json with the validation loss and a reference greedy continuation
computed by transformers, which the test suite checks the runtime against.

Options, for models other than the embedded one (the embedded model is trained without them):
--heads N and --kv-heads M (head_dim = 256 / N: `--heads 2 --kv-heads 1` gives head_dim 128, which
bench/fp8-scores-accuracy.ts needs) and --steps S (3,000 by default).

Data: speeches (paragraphs) of the first 90% of the text; half are plain
text ending in <|end_of_text|>, half ChatML exchanges where the user says one
speech and the assistant answers with the next. The last 10% is held out.
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F
import tokenizers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
VOCAB = 1024
DROPOUT = 0.2
SEQ = 256
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB, "hidden_size": 256,
    "intermediate_size": 768, "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": [1, 3], "torch_dtype": "float32",
}


def train_tokenizer(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer)
    # Regenerate merges from ranks so the vocabulary runs on tiktoken (see tokenizers/tiktoken-ranks.ts).
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    merges = []
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        local = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in vocab and token[i:] in vocab]
        local.sort(key=lambda p: (vocab[p[0]], vocab[p[1]]))
        merges.extend(local)
    j["model"]["merges"] = [[a, b] for a, b in merges]
    j["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(j))


def speeches(text):
    return [p.strip() + "\n" for p in text.split("\n\n") if p.strip()]


def stream(tok, parts, rng):
    eot, ims, ime = (tok.token_to_id(t) for t in ("<|end_of_text|>", "<|im_start|>", "<|im_end|>"))
    ids = []
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    for i, p in enumerate(parts):
        if rng.random() < 0.5 or i + 1 == len(parts):
            ids += enc(p) + [eot]
        else:
            ids += [ims] + enc("user\n" + p) + [ime] + enc("\n") + [ims] + enc("assistant\n" + parts[i + 1]) + [ime] + enc("\n")
    return torch.tensor(ids, dtype=torch.long)


def add_dropout(model):
    """Residual dropout for training only (the data set is small); the saved
    weights are a plain Llama."""
    def drop(module, args, out):
        if isinstance(out, tuple):
            return (F.dropout(out[0], DROPOUT, module.training),) + out[1:]
        return F.dropout(out, DROPOUT, module.training)
    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(drop)
        layer.mlp.register_forward_hook(drop)
    model.model.embed_tokens.register_forward_hook(drop)


@torch.no_grad()
def evaluate(model, data, batches=40):
    model.eval()
    losses = []
    g = torch.Generator().manual_seed(0)
    for _ in range(batches):
        idx = torch.randint(0, len(data) - SEQ - 1, (32,), generator=g)
        x = torch.stack([data[i:i + SEQ] for i in idx]).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


def main(corpus, out, steps=3000):
    torch.manual_seed(1337)
    rng = random.Random(1337)
    text = open(corpus, encoding="utf-8").read()
    split = int(len(text) * 0.9)
    split = text.rfind("\n\n", 0, split)
    train_text, val_text = text[:split], text[split:]
    tok = train_tokenizer(train_text)
    train = stream(tok, speeches(train_text), rng)
    val = torch.tensor([i for p in speeches(val_text) for i in tok.encode(p, add_special_tokens=False).ids + [1]])
    val_chars = sum(len(p) + 1 for p in speeches(val_text))
    print(f"tokens: train {len(train)}, val {len(val)}")

    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).cuda()
    add_dropout(model)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")
    warmup, lr = 100, 1e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    best = (float("inf"), None, 0)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(train) - SEQ - 1, (64,))
        x = torch.stack([train[i:i + SEQ] for i in idx]).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            v = evaluate(model, val)
            print(f"step {step} train {loss.item():.3f} val {v:.3f} ({time.time() - t0:.0f}s)", flush=True)
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()}, step)
    model.load_state_dict(best[1])
    model = model.float().cpu().eval()
    val_loss = best[0]

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT_TEMPLATE,
                   "model_max_length": CONFIG["max_position_embeddings"]}, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": [1, 3]}, f, indent=2)

    prompt = tok.encode("ROMEO:\nBut soft, what light", add_special_tokens=False).ids
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(48):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    sample = tok.decode(seq, skip_special_tokens=False)
    print("greedy sample:\n" + sample)
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump({"val_loss_nats_per_token": val_loss, "val_bits_per_char": val_loss * len(val) / val_chars / math.log(2),
                   "best_step": best[2], "steps": steps, "dropout": DROPOUT,
                   "val_tokens": len(val), "train_tokens": len(train), "torch": torch.__version__,
                   "reference_prompt": prompt, "reference_greedy": seq[len(prompt):], "reference_text": sample},
                  f, indent=2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--heads", type=int, default=CONFIG["num_attention_heads"])
    ap.add_argument("--kv-heads", type=int, default=CONFIG["num_key_value_heads"])
    ap.add_argument("--steps", type=int, default=3000)
    a = ap.parse_args()
    CONFIG.update(num_attention_heads=a.heads, num_key_value_heads=a.kv_heads)
    main(a.corpus, a.out, a.steps)
