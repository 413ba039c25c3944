// One step's input as the engine describes it: a flat mixed batch of
// sequences, each contributing a chunk of consecutive tokens, attending to its
// earlier tokens through its block table.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/model_config.h"
#include "cpu/sampling_columns.h"

namespace tachyon {

struct StepBatch {
  std::vector<int32_t> token_ids;     // [T]
  // Tokens the host does not know yet (async scheduling): feed[t] >= 0 makes token t the one
  // the previous step sampled for its sequence feed[t]; -1 keeps token_ids[t]. Empty: none.
  std::vector<int32_t> feed;          // [T] or empty
  std::vector<int32_t> positions;     // [T]
  std::vector<int32_t> query_lens;    // [S] tokens each sequence contributes
  std::vector<int32_t> block_tables;  // [S, table_stride]
  int table_stride = 0;
  std::vector<uint8_t> sample;        // [S] 1 where this chunk ends the sequence's known tokens
  // [S] or empty: positions below prompt_lens[s] hold sequence s's prompt, the rest tokens it
  // generated. The CUDA backend gives each kind of row its own attention kernel whatever the step
  // (batch invariance); empty: a sequence's one-token query counts as generated.
  std::vector<int32_t> prompt_lens;
  std::vector<SamplingParams> params; // [S]
  bool return_logits = false;

  // Filled by validate_batch:
  std::vector<int32_t> token_seq;  // [T] which sequence each token belongs to
  std::vector<int32_t> seq_start;  // [S] index of the sequence's first token
  int max_logprobs = 0;

  // logit_bias as CSR: sequence s adds bias_values[k] to logit bias_ids[k] for k in
  // [bias_start[s], bias_start[s + 1]). Empty bias_start: no biases anywhere.
  std::vector<int32_t> bias_start;    // [S + 1] or empty
  std::vector<int32_t> bias_ids;      // [B]
  std::vector<float> bias_values;     // [B]

  // Penalty history as CSR: a sequence whose row here is non-empty (re)starts its penalty
  // slot this step from these tokens; the first history_prompt[s] of them are prompt tokens.
  // Later sampled tokens are counted by the runtime itself. Empty history_start: none.
  std::vector<int32_t> history_start;   // [S + 1] or empty
  std::vector<int32_t> history_tokens;  // [H]
  std::vector<int32_t> history_prompt;  // [S]

  // Grammar bitmasks: num_mask_rows rows of ceil(vocab / 32) words (bit set = allowed),
  // handed over while the forward pass runs; a backend calls await_masks() once, just
  // before sampling, and reads row params[s].mask_row for sequence s.
  int num_mask_rows = 0;
  std::function<const int32_t*()> await_masks;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(query_lens.size()); }
  const int32_t* table(int seq) const { return block_tables.data() + static_cast<size_t>(seq) * table_stride; }
  // Whether token i of sequence s's query is one the sequence generated, not a prompt token
  // (prompt_lens; without them, a one-token query counts as generated). After validate_batch.
  bool generated(int s, int i) const {
    return prompt_lens.empty() ? query_lens[s] == 1 : positions[seq_start[s] + i] >= prompt_lens[s];
  }
};

struct BatchLimits {
  int max_num_tokens;
  int max_num_seqs;
  int num_blocks;
  int block_size;
};

// Checks everything the forward pass relies on and fills the derived fields;
// throws tachyon::Error naming the first problem.
void validate_batch(StepBatch& batch, const ModelConfig& config, const BatchLimits& limits);

// Host-side feed (backends without their own): token_ids[t] = prev.tokens[feed[t]] where
// feed[t] >= 0. prev is the previous step's output; nullptr when that step failed, and then fed
// tokens are 0 (their sequences ended with that step; the rest of this step runs as usual).
struct StepOutput;
void resolve_feed(StepBatch& batch, const StepOutput* prev);

}  // namespace tachyon
