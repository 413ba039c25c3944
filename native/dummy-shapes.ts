/** Named model shapes for random-weight (dummy) runtimes, as their HF config.json would say. */
export const DUMMY_SHAPES: Record<string, Record<string, unknown>> = {
  'llama-3-8b': {
    architectures: ['LlamaForCausalLM'], vocab_size: 128256, hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 8192,
    rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: false, bos_token_id: 128000, eos_token_id: [128001, 128009],
  },
  'llama-2-7b': {
    architectures: ['LlamaForCausalLM'], vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 4096,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  },
  // EleutherAI/gpt-j-6b: head_dim 256 (4096 / 16), rotary on each head's first 64 dims.
  'gpt-j-6b': {
    architectures: ['GPTJForCausalLM'], model_type: 'gptj', vocab_size: 50400, n_embd: 4096, n_layer: 28, n_head: 16,
    rotary_dim: 64, n_positions: 2048, n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5,
    tie_word_embeddings: false, bos_token_id: 50256, eos_token_id: 50256,
  },
};
