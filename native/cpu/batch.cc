#include "cpu/batch.h"

#include <cmath>

#include "backend.h"
#include "cpu/error.h"

namespace tachyon {

static void validate_params(const SamplingParams& p, int seq) {
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    fail("sequence ", seq, ": temperature must be a finite number >= 0, got ", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("sequence ", seq, ": top_p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail("sequence ", seq, ": min_p must be in [0, 1], got ", p.min_p);
  if (p.num_logprobs < 0 || p.num_logprobs > kMaxLogprobs)
    fail("sequence ", seq, ": number of top logprobs must be in [0, ", kMaxLogprobs, "], got ", p.num_logprobs);
  if (!std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty))
    fail("sequence ", seq, ": presence and frequency penalties must be finite");
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    fail("sequence ", seq, ": repetition penalty must be a finite number > 0, got ", p.repetition_penalty);
}

// Penalty slots: distinct within a step, inside the pool (one slot per sequence a step may
// carry), and a penalized sequence must have one; the history CSR covers token ids in the vocabulary.
static void validate_penalties(const StepBatch& b, int vocab_size, int num_slots) {
  const int S = b.num_seqs();
  std::vector<uint8_t> seen(num_slots, 0);
  for (int s = 0; s < S; ++s) {
    const SamplingParams& p = b.params[s];
    if (p.penalty_slot == -1) {
      if (p.penalized()) fail("sequence ", s, ": penalties need a penalty slot");
      continue;
    }
    if (p.penalty_slot < 0 || p.penalty_slot >= num_slots) fail("sequence ", s, ": penalty slot ", p.penalty_slot, " is outside the pool of ", num_slots);
    if (seen[p.penalty_slot]++) fail("penalty slot ", p.penalty_slot, " is given to two sequences");
  }
  if (b.history_start.empty()) {
    if (!b.history_tokens.empty() || !b.history_prompt.empty()) fail("penalty history given without history_start");
    return;
  }
  if (b.history_start.size() != static_cast<size_t>(S) + 1 || b.history_prompt.size() != static_cast<size_t>(S))
    fail("history_start must have ", S + 1, " entries and history_prompt ", S);
  if (b.history_start[0] != 0 || b.history_start[S] != static_cast<int32_t>(b.history_tokens.size()))
    fail("history_start must run from 0 to the number of history tokens, ", b.history_tokens.size());
  for (int s = 0; s < S; ++s) {
    const int n = b.history_start[s + 1] - b.history_start[s];
    if (n < 0) fail("history_start must not decrease (sequence ", s, ")");
    if (n > 0 && b.params[s].penalty_slot < 0) fail("sequence ", s, ": penalty history without a penalty slot");
    if (b.history_prompt[s] < 0 || b.history_prompt[s] > n) fail("sequence ", s, ": history_prompt must be in [0, ", n, "]");
  }
  for (int32_t id : b.history_tokens)
    if (id < 0 || id >= vocab_size) fail("penalty history token ", id, " is outside the vocabulary of ", vocab_size);
}

static void validate_masks(const StepBatch& b) {
  if (b.num_mask_rows < 0) fail("num_mask_rows must be >= 0");
  if (b.num_mask_rows > 0 && !b.await_masks) fail("grammar mask rows given without a way to receive the masks");
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int r = b.params[s].mask_row;
    if (r == -1) continue;
    if (r < 0 || r >= b.num_mask_rows) fail("sequence ", s, ": mask row ", r, " is outside the ", b.num_mask_rows, " rows given");
    if (!b.sample[s]) fail("sequence ", s, ": a mask row on a sequence that does not sample");
  }
}

// A fed token is a sampling sequence's last one: the previous step had a row for it (checked
// against that step when the token is resolved).
static void validate_feed(const StepBatch& b, int max_num_seqs) {
  if (b.feed.empty()) return;
  if (b.feed.size() != b.token_ids.size()) fail("feed has ", b.feed.size(), " entries but token_ids has ", b.token_ids.size());
  for (int t = 0; t < b.num_tokens(); ++t) {
    const int f = b.feed[t];
    if (f < -1 || f >= max_num_seqs) fail("feed entry ", f, " at index ", t, " is outside [-1, ", max_num_seqs, ")");
  }
}

void resolve_feed(StepBatch& b, const StepOutput* prev) {
  for (int t = 0; t < static_cast<int>(b.feed.size()); ++t) {
    const int f = b.feed[t];
    if (f < 0) continue;
    // The step it feeds from failed: the engine has ended every sequence that step carried, so
    // this row's result is never read; token 0 keeps the rest of the step (new sequences) going.
    if (!prev) {
      b.token_ids[t] = 0;
      continue;
    }
    if (f >= static_cast<int>(prev->tokens.size()) || prev->tokens[f] < 0)
      fail("token ", t, " takes the previous step's token of its sequence ", f, ", which that step did not sample");
    b.token_ids[t] = prev->tokens[f];
  }
}

static void validate_bias(const StepBatch& b, int vocab_size) {
  const int S = b.num_seqs();
  if (b.bias_start.empty()) {
    if (!b.bias_ids.empty() || !b.bias_values.empty()) fail("logit bias ids or values given without bias_start");
    return;
  }
  if (b.bias_start.size() != static_cast<size_t>(S) + 1) fail("bias_start has ", b.bias_start.size(), " entries, expected ", S + 1);
  if (b.bias_ids.size() != b.bias_values.size()) fail("bias_ids and bias_values differ in length");
  if (b.bias_start[0] != 0 || b.bias_start[S] != static_cast<int32_t>(b.bias_ids.size()))
    fail("bias_start must run from 0 to the number of biases, ", b.bias_ids.size());
  for (int s = 0; s < S; ++s)
    if (b.bias_start[s + 1] < b.bias_start[s]) fail("bias_start must not decrease (sequence ", s, ")");
  for (size_t k = 0; k < b.bias_ids.size(); ++k) {
    if (b.bias_ids[k] < 0 || b.bias_ids[k] >= vocab_size) fail("logit bias token ", b.bias_ids[k], " is outside the vocabulary of ", vocab_size);
    if (!std::isfinite(b.bias_values[k])) fail("logit bias for token ", b.bias_ids[k], " is not a finite number");
  }
}

void validate_batch(StepBatch& b, const ModelConfig& c, const BatchLimits& lim) {
  const int T = b.num_tokens(), S = b.num_seqs();
  if (T < 1) fail("batch has no tokens");
  if (T > lim.max_num_tokens) fail("batch has ", T, " tokens, more than the runtime's max_num_tokens of ", lim.max_num_tokens);
  if (b.positions.size() != static_cast<size_t>(T))
    fail("positions has ", b.positions.size(), " entries but token_ids has ", T);
  if (S < 1) fail("batch has no sequences");
  if (S > lim.max_num_seqs) fail("batch has ", S, " sequences, more than the runtime's max_num_seqs of ", lim.max_num_seqs);
  if (b.sample.size() != static_cast<size_t>(S) || b.params.size() != static_cast<size_t>(S))
    fail("per-sequence arrays must each have ", S, " entries (one per query_lens entry)");
  if (!b.prompt_lens.empty() && b.prompt_lens.size() != static_cast<size_t>(S))
    fail("prompt_lens has ", b.prompt_lens.size(), " entries, expected ", S, " (one per query_lens entry)");
  for (const int32_t n : b.prompt_lens)
    if (n < 0) fail("prompt length ", n, " is negative");
  if (b.table_stride < 1) fail("block table stride must be >= 1, got ", b.table_stride);
  if (b.block_tables.size() != static_cast<size_t>(S) * b.table_stride)
    fail("block_tables has ", b.block_tables.size(), " entries, expected ", S, " x ", b.table_stride);

  b.token_seq.resize(T);
  b.seq_start.resize(S);
  b.max_logprobs = 0;
  int t = 0;
  for (int s = 0; s < S; ++s) {
    const int len = b.query_lens[s];
    if (len < 1) fail("sequence ", s, ": query length must be >= 1, got ", len);
    if (len > T - t) fail("query lengths add up to more than the ", T, " tokens in the batch");
    b.seq_start[s] = t;
    const int first = b.positions[t];
    if (first < 0) fail("sequence ", s, ": position ", first, " is negative");
    for (int i = 0; i < len; ++i, ++t) {
      b.token_seq[t] = s;
      const int id = b.token_ids[t];
      const bool fed = !b.feed.empty() && b.feed[t] >= 0;
      if (!fed && (id < 0 || id >= c.vocab_size)) fail("token id ", id, " at index ", t, " is outside the vocabulary of ", c.vocab_size);
      if (b.positions[t] != first + i)
        fail("sequence ", s, ": positions must be consecutive, got ", b.positions[t], " after ", first + i - 1);
    }
    const int last = first + len - 1;
    if (last >= c.max_positions)
      fail("sequence ", s, ": position ", last, " is past the model's context of ", c.max_positions, " tokens");
    const int blocks_needed = last / lim.block_size + 1;
    if (blocks_needed > b.table_stride)
      fail("sequence ", s, ": position ", last, " needs ", blocks_needed, " blocks but its block table has ", b.table_stride);
    const int32_t* table = b.table(s);
    for (int j = 0; j < blocks_needed; ++j)
      if (table[j] < 0 || table[j] >= lim.num_blocks)
        fail("sequence ", s, ": block id ", table[j], " is outside the pool of ", lim.num_blocks, " blocks");
    validate_params(b.params[s], s);
    if (b.sample[s] && b.params[s].num_logprobs > b.max_logprobs) b.max_logprobs = b.params[s].num_logprobs;
  }
  validate_feed(b, lim.max_num_seqs);
  validate_bias(b, c.vocab_size);
  validate_penalties(b, c.vocab_size, lim.max_num_seqs);
  validate_masks(b);
  if (t != T) fail("query lengths add up to ", t, " but the batch has ", T, " tokens");
}

}  // namespace tachyon
