// Prefill attention for a step's prompt rows: attention.cu's row layout
// (16 query rows a warp: tokens of one sequence times the query heads of one
// KV head) with wide tiles. A block of 8 warps holds 128 query rows, so each
// K/V byte brought in from L2 serves twice attention.cu's 64, and a tile is 64
// positions (32 at head_dim 256), so the online softmax (max, exponentials,
// rescaling of the accumulators) runs once per 64 positions instead of once per
// 16, with no split folds. Its rounding is not attention.cu's, but a row's still
// depends only on its own position and cache, so batch-invariant mode takes it
// for every prompt row (and attention_decode.cu for every generated token).
//
// One-byte caches (E4M3, INT8) arrive as bytes and are widened to f16 (INT8
// times its scales) once per tile into a shared f16 tile, which every warp
// then reads as attention.cu reads a bf16 cache: widening inside each warp's
// fragments, as the decode kernels do, would widen each byte 8 times.
//
// A step with prompts and generated tokens together runs this kernel over its
// prompt tiles and attention_decode.cu over its generated tokens, one a tile
// (CudaModel::make_tiles puts them in that order).
#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"

namespace tachyon {

namespace {

constexpr int kWarps = 8;                  // 16 query rows each
constexpr int kRows = 16;                  // query rows per warp

template <int D, KvType KV>
struct PrefillSmem {
  // Positions per K/V tile. D = 256: 32, since a lane holds q (64 registers) and its accumulators
  // (128) throughout: 64-position tiles' scores (32 more) spilled 64-220 bytes a thread (sm_90a),
  // 32-position ones spill 20-40; 16 would spill none but double the barriers and the accumulators'
  // rescaling per position.
  static constexpr int kTile = D > 128 ? 32 : 64;
  static constexpr bool kBytes1 = KV != KvType::kBf16;                   // one-byte elements, widened to f16
  static constexpr int kRawRowBytes = D * (kBytes1 ? 1 : 2) + 16;         // rows 16 bytes apart in banks
  static constexpr int kRawTileBytes = kTile * kRawRowBytes;
  static constexpr int kStageBytes = 2 * kRawTileBytes + (KV == KvType::kInt8 ? 2 * kTile * 4 : 0);  // K, V (INT8: their scales)
  static constexpr int kStages = kBytes1 ? 3 : 2;                         // tiles in flight (bf16, D = 128 or 256: 68 KB)
  static constexpr int kRowBytes = D * 2 + 16;                            // the tile warps read: bf16 or f16
  static constexpr int kTileBytes = kTile * kRowBytes;
  static constexpr int kWideBytes = kBytes1 ? 2 * kTileBytes : 0;        // one-byte caches: K and V widened
  static constexpr int kBytes = kStages * kStageBytes + kWideBytes;
};

// Widens a staged tile of one-byte K and V (rows raw_row apart, V raw_tile after K, INT8 scales
// after V) into f16 rows row_bytes apart, V tile_bytes after K; INT8 values times their position's
// scale. Threads tid of n, 16 bytes in and 32 out at a time.
template <int D, KvType KV>
__device__ __forceinline__ void widen_tile(const unsigned char* raw, unsigned char* wide, int tid, int n) {
  using S = PrefillSmem<D, KV>;
  constexpr int kTile = S::kTile;
  constexpr int pieces = D / 16;  // 16-byte pieces of a raw row
  const float* scales = reinterpret_cast<const float*>(raw + 2 * S::kRawTileBytes);  // INT8: K's kTile, then V's
  for (int c = tid; c < 2 * kTile * pieces; c += n) {
    const int kv = c / (kTile * pieces), r = (c / pieces) % kTile, p = c % pieces;
    const uint4 x = *reinterpret_cast<const uint4*>(raw + kv * S::kRawTileBytes + r * S::kRawRowBytes + p * 16);
    uint32_t h[8];
    widen_piece<KV>(x, KV == KvType::kInt8 ? scales[kv * kTile + r] : 1.0f, h);
    uint4* out = reinterpret_cast<uint4*>(wide + kv * S::kTileBytes + r * S::kRowBytes + p * 32);
    out[0] = make_uint4(h[0], h[1], h[2], h[3]);
    out[1] = make_uint4(h[4], h[5], h[6], h[7]);
  }
}

// grid: (tile, KV head); kWarps warps, each with up to 16 / group tokens of the tile.
template <int D, KvType KV>
__global__ void __launch_bounds__(32 * kWarps, 1) prefill_attention_kernel(AttentionArgs a, float scale_log2) {
  using S = PrefillSmem<D, KV>;
  constexpr bool F16 = S::kBytes1;  // one-byte caches widen to f16; bf16 stays bf16
  constexpr int kTile = S::kTile;
  constexpr int kChunks = kTile / 16;  // 16-position chunks of a tile (one mma k-step of P · V)
  constexpr int KC = D / 16;        // k-chunks of the QK^T product
  constexpr int DN = D / 8;         // 8-wide output column tiles
  constexpr int NT = kTile / 8;     // 8-position score tiles
  constexpr int STAGES = S::kStages;
  extern __shared__ __align__(16) unsigned char smem[];
  pdl_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kvh = blockIdx.y;
  const int2 tile = a.tiles[blockIdx.x];
  const int group = a.heads / a.kv_heads;
  const WarpQueries wq = warp_queries<kRows>(a, tile, group, warp);
  const int first = wq.first, count = wq.count, block_last = wq.block_last, warp_last = wq.warp_last;
  const int32_t* table = wq.table;
  const int tiles_total = block_last / kTile + 1;
  unsigned char* wide = smem + STAGES * S::kStageBytes;  // one-byte caches: the widened K and V tiles

  int row_pos[2];
  uint32_t qf[KC][4];
  load_query_rows<D, F16, false>(a, first, count, group, kvh, lane, row_pos, qf);

  // Online-softmax state: the running maximum of the raw scores (m, times scale_log2 for the
  // exponent), and this lane's part of each row's sum (its quad's four lanes add up at the end).
  float acc[DN][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  // One tile of kTile positions: scores, online softmax, P · V.
  auto attend = [&](int i, const unsigned char* ks, const unsigned char* vs) {
    float s[NT][4] = {};
    // k-chunk outer: the tile's NT (8; D = 256: 4) score accumulators are independent, so NT mma are
    // in flight between two that depend on each other (chunk outer leaves 2: latency-bound at 8 warps an SM).
#pragma unroll
    for (int kc = 0; kc < KC; ++kc)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        uint32_t b[4];
        // Matrices: positions 16c + 0-7 / 8-15 (lane / 16) x columns kc*16 + 0-7 / 8-15 ((lane / 8) % 2).
        ldmatrix_x4(b, ks + (c * 16 + (lane >> 4) * 8 + (lane & 7)) * S::kRowBytes + (kc * 16 + ((lane >> 3) & 1) * 8) * 2);
        mma16816<F16>(s[2 * c], qf[kc], b[0], b[1]);
        mma16816<F16>(s[2 * c + 1], qf[kc], b[2], b[3]);
      }
    // Causal mask on the raw scores, then the online softmax.
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int q = j * 8 + (lane & 3) * 2 + (e & 1);
        s[j][e] = i * kTile + q <= row_pos[e >> 1] ? s[j][e] : -INFINITY;
      }
    float corr[2];
    online_softmax_tile(s, m, l, scale_log2, corr);
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[dn][c] *= corr[c >> 1];
    // The score accumulators of chunk c (tiles 2c, 2c + 1) are the A operand of P · V over its 16 positions.
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const uint32_t pf[4] = {pack16<F16>(s[2 * c][0], s[2 * c][1]), pack16<F16>(s[2 * c][2], s[2 * c][3]),
                              pack16<F16>(s[2 * c + 1][0], s[2 * c + 1][1]), pack16<F16>(s[2 * c + 1][2], s[2 * c + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        // Matrices: positions 16c + 0-7 / 8-15 ((lane / 8) % 2) x columns (2dp + lane / 16) * 8, transposed.
        ldmatrix_x4_trans(b, vs + (c * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * S::kRowBytes + (dp * 2 + (lane >> 4)) * 16);
        mma16816<F16>(acc[2 * dp], pf, b[0], b[1]);
        mma16816<F16>(acc[2 * dp + 1], pf, b[2], b[3]);
      }
    }
  };

  auto load_tile = [&](int i, int stage) {
    stage_kv_tile<D, KV, kTile>(smem + stage * S::kStageBytes, S::kRawRowBytes, S::kRawTileBytes, a, table, kvh, i, block_last,
                                threadIdx.x, 32 * kWarps);
  };
  // A ring of STAGES tiles, one commit group per tile (empty past the end) so the wait count is
  // fixed. One barrier a tile (two with a one-byte cache): after it every warp is done with the
  // stage the next load refills, and with the widened tile.
  for (int k = 0; k < STAGES - 1; ++k) {
    if (k < tiles_total) load_tile(k, k);
    else cp_async_commit();
  }
  for (int i = 0; i < tiles_total; ++i) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    if (i + STAGES - 1 < tiles_total) load_tile(i + STAGES - 1, (i + STAGES - 1) % STAGES);
    else cp_async_commit();
    const unsigned char* ks = smem + (i % STAGES) * S::kStageBytes;
    if constexpr (F16) {
      widen_tile<D, KV>(ks, wide, threadIdx.x, 32 * kWarps);
      __syncthreads();
      ks = wide;
    }
    // Tiles wholly past this warp's last position would change nothing; skip them.
    if (i * kTile <= warp_last) attend(i, ks, ks + S::kTileBytes);
  }
  if (count == 0) return;
  store_prefill_rows<D, KV>(a, acc, l, first, count, group, kvh, lane);
}

template <int D, KvType KV>
void launch(const AttentionArgs& a, float scale_log2, cudaStream_t s) {
  constexpr size_t shared = PrefillSmem<D, KV>::kBytes;
  allow_dynamic_shared<prefill_attention_kernel<D, KV>>(shared);
  launch_pdl("prefill_attention_kernel", prefill_attention_kernel<D, KV>, dim3(a.num_tiles, a.kv_heads), 32 * kWarps, shared,
             s, a, scale_log2);
}

}  // namespace

bool prefill_attention_supports(int heads, int kv_heads, int head_dim) {
  return kv_heads > 0 && heads % kv_heads == 0 && heads / kv_heads <= kRows && head_dim % 16 == 0 &&
         (head_dim <= 128 || head_dim == 256);
}

int prefill_attention_tile_tokens(int heads, int kv_heads) { return kWarps * (kRows / (heads / kv_heads)); }

void launch_prefill_attention(const AttentionArgs& a, cudaStream_t s) {
  if (a.num_tiles == 0) return;
  if (!prefill_attention_supports(a.heads, a.kv_heads, a.head_dim))
    fail("prefill attention: ", a.heads, " heads over ", a.kv_heads, " KV heads of ", a.head_dim, " dims is not supported");
  const float scale_log2 = attention_score_scale_log2(a);
  with_head_dim(a.head_dim, [&](auto d) {
    constexpr int D = decltype(d)::value;
    if (a.kv.type == KvType::kBf16) launch<D, KvType::kBf16>(a, scale_log2, s);
    else if (a.kv.type == KvType::kE4M3) launch<D, KvType::kE4M3>(a, scale_log2, s);
    else launch<D, KvType::kInt8>(a, scale_log2, s);
  });
}

}  // namespace tachyon
