"""The peer for bench/throughput.ts: transformers `generate` in BF16 on the same
shape and GPU, batch 256, 128 random input tokens, 128 output tokens (EOS
ignored), random weights; plus the card's device-to-device copy bandwidth,
for the batch-1 bound.

    python3 bench/transformers_baseline.py [--batch 256] [--input 128] [--output 128]
"""
import argparse
import json
import os
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

LLAMA_3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)


def bandwidth_gbps():
    x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        y.copy_(x)
    torch.cuda.synchronize()
    return 2 * x.numel() * reps / (time.perf_counter() - t0) / 1e9  # bytes read + written


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--output", type=int, default=128)
    a = p.parse_args()
    bw = bandwidth_gbps()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA_3_8B)).to(torch.bfloat16).eval()
    ids = torch.randint(0, LLAMA_3_8B["vocab_size"], (a.batch, a.input), device="cuda")
    kw = dict(max_new_tokens=a.output, min_new_tokens=a.output, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(ids[:8, :16], max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, **kw)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    produced = (out.shape[1] - a.input) * a.batch
    print(json.dumps({"transformers_bf16_output_tok_s": produced / wall, "batch": a.batch, "wall_s": wall,
                      "d2d_bandwidth_gb_s": bw, "gpu": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
