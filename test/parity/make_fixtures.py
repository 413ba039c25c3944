"""Make the parity fixtures the CPU runtime is checked against.

Creates small random-weight Hugging Face checkpoints and records what
transformers computes on them. Run where Python has torch, transformers and
safetensors (the H100 machine has all three):

    python3 test/parity/make_fixtures.py test/fixtures/models [NAME ...]

(names: only those models; each keeps its seed, so the others' files stay as they are)

For each model NAME it writes
  NAME/            config.json + safetensors (F32), hand-written config in the
                   classic HF format (rope_theta / rope_scaling) that real
                   checkpoints ship with
  NAME-bf16/       the same weights rounded to BF16
  NAME.reference.safetensors
                   p{i}.tokens [len] I32, p{i}.logits [len, vocab] F32 (F32 model),
                   p{i}.logits_bf16 [len, vocab] F32 (BF16 model, BF16 compute),
                   p{i}.greedy [32] I32 (greedy continuation, F32 model)

Weights are drawn with a fixed seed, so re-running reproduces the files up to
the torch version's RNG; the tests read only these files.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

GREEDY_TOKENS = 32

MODELS = {
    # GQA Llama, tied embeddings, head_dim given explicitly (head_dim * heads != hidden)
    "llama-gqa-tied": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 384, "hidden_size": 64, "intermediate_size": 160,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": True, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    },
    # Llama 3 with llama3 rope scaling and an untied head
    "llama3-scaled": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 400, "hidden_size": 96, "intermediate_size": 192,
        "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        "tie_word_embeddings": False, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "float32",
    },
    # Qwen2 with QKV bias, sharded over two files with an index
    "qwen2-bias": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 352, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": False, "hidden_act": "silu", "use_sliding_window": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    },
    # Mistral (no sliding window), 8 heads over 4 KV heads of an explicit head_dim: tensor
    # parallelism cuts it 2, 4 (whole KV heads) and 8 ways (KV heads replicated)
    "mistral-tp": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "vocab_size": 320, "hidden_size": 64, "intermediate_size": 192,
        "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 16, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    },
    # GPT-2 (issue 17): learned positions, LayerNorm with bias, tanh GELU, fused c_attn in
    # Conv1D layout ([in, out]), biases everywhere, tied head
    "gpt2-tiny": {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": 384, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256,
        "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    },
    # GPT-J (issue 17): attention and MLP in parallel from one LayerNorm, rotary on the first
    # rotary_dim dimensions with interleaved pairs, untied head with a bias
    "gptj-tiny": {
        "architectures": ["GPTJForCausalLM"], "model_type": "gptj",
        "vocab_size": 352, "n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8, "n_positions": 256,
        "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    },
}

PROMPT_LENGTHS = [1, 7, 23]


def randomize(model, gen):
    # Larger than transformers' init (std 0.02) so logits spread out and the
    # greedy path has clear winners rather than near-ties.
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight") or "layernorm" in name or (".ln_" in name and name.endswith("weight")):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or ".wte." in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)


def state_for_disk(model, cfg, dtype):
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if cfg["tie_word_embeddings"]:
        sd.pop("lm_head.weight", None)  # HF checkpoints omit the tied head
    return sd


def write_checkpoint(out, cfg, sd, shards):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = sorted(sd)
    if shards == 1:
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    per = (len(names) + shards - 1) // shards
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: sd[n] for n in names[i * per:(i + 1) * per]}
        save_file(part, os.path.join(out, fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


def load(path, dtype):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.eval()


@torch.no_grad()
def all_logits(model, tokens):
    out = model(torch.tensor([tokens]), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy(model, tokens, n):
    seq = list(tokens)
    margins = []
    for _ in range(n):
        last = all_logits(model, seq)[-1]
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        seq.append(int(torch.argmax(last)))
    return seq[len(tokens):], min(margins)


def main(root, only):
    torch.set_num_threads(8)
    print("torch", torch.__version__, "transformers", transformers.__version__)
    for i, (name, cfg) in enumerate(MODELS.items()):
        if only and name not in only:
            continue
        gen = torch.Generator().manual_seed(1234 + i)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=torch.float32)
        randomize(model, gen)
        shards = 2 if name == "qwen2-bias" else 1
        f32_dir = os.path.join(root, name)
        bf16_dir = os.path.join(root, name + "-bf16")
        write_checkpoint(f32_dir, cfg, state_for_disk(model, cfg, torch.float32), shards)
        write_checkpoint(bf16_dir, {**cfg, "torch_dtype": "bfloat16"},
                         state_for_disk(model, cfg, torch.bfloat16), shards)
        # Reload from disk so the reference comes from transformers reading our files.
        m32, m16 = load(f32_dir, torch.float32), load(bf16_dir, torch.bfloat16)
        ref = {}
        for p, n in enumerate(PROMPT_LENGTHS):
            tokens = [cfg["bos_token_id"]] + torch.randint(
                3, cfg["vocab_size"], (n - 1,), generator=gen).tolist()
            ref[f"p{p}.tokens"] = torch.tensor(tokens, dtype=torch.int32)
            ref[f"p{p}.logits"] = all_logits(m32, tokens).contiguous()
            ref[f"p{p}.logits_bf16"] = all_logits(m16, tokens).contiguous()
            cont, margin = greedy(m32, tokens, GREEDY_TOKENS)
            ref[f"p{p}.greedy"] = torch.tensor(cont, dtype=torch.int32)
            print(f"{name} p{p}: len {n}, greedy {cont[:8]}..., min top-2 margin {margin:.4g}")
        save_file(ref, os.path.join(root, name + ".reference.safetensors"),
                  metadata={"torch": torch.__version__, "transformers": transformers.__version__})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/models", sys.argv[2:])
