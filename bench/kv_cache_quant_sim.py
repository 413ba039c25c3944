"""What quantizing the KV cache does to the embedded default model, replayed in numpy.

The model's forward pass in float64 with K and V (after RoPE) rounded as each cache scheme
stores them, teacher-forced over the held-out Shakespeare windows that
test/gpu/kv-cache-quantized.test.ts uses; top-1 agreement and perplexity against the bf16 cache.
It answers a design question (which scheme can reach issue 15's 99% top-1), not a parity one:
the GPU test measures the real kernels.

  TACHYON_SHAKESPEARE=../shared/data/tinyshakespeare.txt node -e "import('./dist/test/helpers/held-out.js').then(m => require('fs').writeFileSync('/tmp/windows.json', JSON.stringify(m.heldOutWindows())))"
  python3 bench/kv_cache_quant_sim.py models/tiny-shakespeare /tmp/windows.json
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        assert t['dtype'] == 'F32', f'{name}: {t["dtype"]} (the default model is float32)'
        b, e = t['data_offsets']
        out[name] = np.frombuffer(data[b:e], dtype=np.float32).reshape(t['shape']).astype(np.float64)
    return out


# Every finite non-negative E4M3 value (bias 7, no infinities, 0x7f is NaN).
E4M3 = np.array(sorted({(m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
                        for e in range(16) for m in range(8) if not (e == 15 and m == 7)}))


def e4m3(x):
    """Round to nearest E4M3, ties to even, saturating at 448."""
    a = np.minimum(np.abs(x), 448.0)
    i = np.clip(np.searchsorted(E4M3, a), 1, len(E4M3) - 1)
    lo, hi = E4M3[i - 1], E4M3[i]
    even_lo = (i - 1) % 2 == 0
    r = np.where(a - lo < hi - a, lo, np.where(a - lo > hi - a, hi, np.where(even_lo, lo, hi)))
    return np.sign(x) * r


def bf16(x):
    b = x.astype(np.float32).view(np.uint32)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return b.view(np.float32).astype(np.float64)


def per_token_head(quantize, top):
    """quantize(x / s) * s with s = the row's absmax / top (one scale per token and head)."""
    def f(x):
        s = np.abs(x).max(-1, keepdims=True) / top + 1e-30
        return quantize(x / s) * s
    return f


def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def rotated(quantize):
    """quantize(x H) H^T: each head's vector turned by the orthonormal Hadamard matrix before it is
    stored (q turned alike keeps q . k; o = P V comes back by H^T)."""
    def f(x):
        h = hadamard(x.shape[-1])
        return quantize(x @ h) @ h.T
    return f


def smoothed(quantize, first=None):
    """quantize(x - mu) + mu, mu the mean of each head's K over the sequence's positions (over its
    first `first` positions where given, as a server would fix it from a prompt's start): q . mu is
    the same for every position a query sees, so softmax does not change, and what is stored is K
    less its per-channel offset (SageAttention's smoothing of K)."""
    def f(x):
        mu = (x if first is None else x[:first]).mean(0, keepdims=True)
        return quantize(x - mu) + mu
    return f


SCHEMES = {
    'bf16': (bf16, bf16),
    'fp8, per-layer scale 1.0 (--kv-cache-dtype fp8)': (e4m3, e4m3),
    'fp8, a scale per token and head': (per_token_head(e4m3, 448.0), per_token_head(e4m3, 448.0)),
    'fp8 V, bf16 K': (bf16, e4m3),
    'fp8, Hadamard-turned K and V, per-layer scale 1.0': (rotated(e4m3), rotated(e4m3)),
    'fp8, Hadamard-turned K, plain V': (rotated(e4m3), e4m3),
    'int8, a scale per token and head': (per_token_head(lambda x: np.clip(np.round(x), -127, 127), 127.0),) * 2,
    'fp8, K less its mean over the sequence': (smoothed(e4m3), e4m3),
    'fp8, K less its mean over the first 16 positions': (smoothed(e4m3, 16), e4m3),
    'fp8, K less its mean over the first 16 positions, a scale per token and head': (smoothed(per_token_head(e4m3, 448.0), 16), e4m3),
}


def main(model_dir, windows_path):
    cfg = json.load(open(f'{model_dir}/config.json'))
    W = read_safetensors(f'{model_dir}/model.safetensors')
    L, H, KV = cfg['num_hidden_layers'], cfg['num_attention_heads'], cfg['num_key_value_heads']
    D = cfg['hidden_size'] // H
    inv_freq = 1.0 / cfg.get('rope_theta', 10000.0) ** (np.arange(0, D, 2) / D)
    windows = json.load(open(windows_path))

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg['rms_norm_eps']) * w

    def rope(x, pos):  # x [T, heads, D], halves rotated (Llama)
        ang = pos[:, None] * inv_freq[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :D // 2], x[..., D // 2:]
        return np.concatenate([a * c - b * s, b * c + a * s], -1)

    def logits(tokens, qk, qv):
        T = len(tokens)
        pos = np.arange(T, dtype=np.float64)
        x = W['model.embed_tokens.weight'][tokens]
        causal = np.triu(np.full((T, T), -np.inf), 1)
        for layer in range(L):
            p = f'model.layers.{layer}.'
            h = rms(x, W[p + 'input_layernorm.weight'])
            q = rope((h @ W[p + 'self_attn.q_proj.weight'].T).reshape(T, H, D), pos)
            k = qk(rope((h @ W[p + 'self_attn.k_proj.weight'].T).reshape(T, KV, D), pos))
            v = qv((h @ W[p + 'self_attn.v_proj.weight'].T).reshape(T, KV, D))
            o = np.zeros((T, H, D))
            for head in range(H):
                g = head // (H // KV)
                s = q[:, head] @ k[:, g].T / np.sqrt(D) + causal
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, g]
            x = x + o.reshape(T, H * D) @ W[p + 'self_attn.o_proj.weight'].T
            h = rms(x, W[p + 'post_attention_layernorm.weight'])
            gate, up = h @ W[p + 'mlp.gate_proj.weight'].T, h @ W[p + 'mlp.up_proj.weight'].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ W[p + 'mlp.down_proj.weight'].T
        head_w = W['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings') else W['lm_head.weight']
        return rms(x, W['model.norm.weight']) @ head_w.T

    def evaluate(qk, qv):
        top1, nll, n = [], 0.0, 0
        for w in windows:
            lg = logits(np.array(w), qk, qv)
            for i in range(len(w) - 1):
                m = lg[i].max()
                top1.append(int(lg[i].argmax()))
                nll -= lg[i][w[i + 1]] - m - np.log(np.exp(lg[i] - m).sum())
                n += 1
        return np.array(top1), float(np.exp(nll / n))

    ref_top1, ref_ppl = evaluate(*SCHEMES['bf16'])
    for name, (qk, qv) in SCHEMES.items():
        top1, ppl = evaluate(qk, qv)
        print(f'{name}: top-1 agreement {np.mean(top1 == ref_top1) * 100:.2f}%, '
              f'perplexity {ppl:.3f} vs {ref_ppl:.3f} ({(ppl / ref_ppl - 1) * 100:+.2f}%)')


if __name__ == '__main__':
    main(*sys.argv[1:3])
