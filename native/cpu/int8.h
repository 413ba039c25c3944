// Weight-only INT8 (--quantization int8): each projection matrix (QKV, O, MLP)
// becomes int8 with one float32 scale per output channel, absmax / 127, values
// rounded to nearest; matmul widens a row and multiplies by its scale.
// Embeddings, the LM head and norms keep their dtype. Checkpoints that are
// already INT8 (compressed-tensors: I8 weights with weight_scale) load as they are.
#pragma once
#include "cpu/weights.h"

namespace tachyon {

void quantize_int8(ModelWeights& weights);

}  // namespace tachyon
