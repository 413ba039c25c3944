// How the row kernels (kernels.cu's norms and activations, quantize_rows.cuh's token rows) split a
// row over a block: 16-byte pieces of 8 values, at most kRowPieces a thread held in registers.
#pragma once
#include <algorithm>

namespace tachyon {

constexpr int kPiece = 8;      // values a piece: 8 bf16 (16 bytes), or 8 floats as two float4
constexpr int kRowPieces = 4;  // pieces a thread: rows of up to kRowPieces * 8 * 1,024 values

// Whether a row of n values fits: whole pieces, at most kRowPieces a thread of 1,024.
inline bool row_fits_pieces(int n) { return n % kPiece == 0 && n <= kRowPieces * kPiece * 1024; }

// Threads for a row kernel over n values: enough that each holds at most kRowPieces pieces, in
// whole warps. By n alone, so a row's arithmetic never depends on the batch.
inline int row_threads(int n) {
  const int pieces = n / kPiece;
  return std::min(1024, std::max(32, ((pieces + kRowPieces - 1) / kRowPieces + 31) / 32 * 32));
}

}  // namespace tachyon
