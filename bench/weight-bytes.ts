/**
 * Bytes one decode token must read from GPU memory at batch 1, for the
 * memory-bandwidth bound beside the batch-1 latency: every projection once
 * (FP8: one byte per weight plus a float32 scale per output channel; BF16: two
 * bytes per weight), the norm weights (float32), and the LM head (BF16 in both
 * dtypes, as the CUDA backend keeps it). The one embedding row is left out.
 */
export function weightBytesPerToken(config: Record<string, unknown>, dtype: 'fp8' | 'bf16'): number {
  const n = (key: string) => Number(config[key]);
  const hidden = n('hidden_size'), inter = n('intermediate_size'), layers = n('num_hidden_layers');
  const heads = n('num_attention_heads'), kvHeads = n('num_key_value_heads') || heads;
  const headDim = config.head_dim ? n('head_dim') : hidden / heads;
  const projections: [number, number][] = [
    [(heads + 2 * kvHeads) * headDim, hidden], // QKV
    [hidden, heads * headDim], // O
    [2 * inter, hidden], // gate/up
    [hidden, inter], // down
  ];
  const perLayer = projections.reduce((sum, [out, inp]) => sum + (dtype === 'fp8' ? out * inp + 4 * out : 2 * out * inp), 0);
  const norms = (2 * layers + 1) * hidden * 4;
  const lmHead = 2 * n('vocab_size') * hidden;
  return layers * perLayer + norms + lmHead;
}
