// Does a row of a cuBLASLt product depend on the rows beside it, or on the algorithm? And can a
// kernel of our own (Hopper wgmma, FP8, fast accumulation) give the same bits? Issue 15 item 2
// (batch invariance by default) rests on the answers: if every non-split-K algorithm computes a row
// the same way at every row count, the GEMMs can keep per-bucket tuning and stay invariant, and a
// few-row kernel that matches them can replace the GEMVs, whose arithmetic differs.
//
// Llama-3-8B's projections (FP8 weights and per-token E4M3 activations, per-channel and per-token
// scales, as native/cuda/gemm.cc describes them) and its lm_head (bf16 in, float32 out). For each
// shape: cuBLASLt's heuristic candidates at several row counts, without split-K; each candidate at
// each row count, its rows compared bit for bit with the first candidate at the largest count. Then
// own_fp8_kernel (64 features x up to 8 tokens a block, wgmma m64n8k32 over all of K in order from
// zero) at 1-8 rows, with three orders of the epilogue's scale multiplies. Then the library's own
// few-row GEMM (native/cuda/gemm_rows.cu, launch_row_gemm) at 1 to 64 rows, compared bit for bit
// with the same reference, and timed against the fastest non-split cuBLASLt candidate at 1 to 64
// rows (two extra shapes whose N is not a multiple of 64 check its masking of the last block).
//
// On the GPU machine: bash bench/gemm-invariance.sh [--rows]
// --rows: only the library's row GEMM against the reference and its timings (skips every candidate's
// sweep over 18 row counts and own_fp8_kernel, the long part), for checking a change to gemm_rows.cu.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "cuda/cublas_check.h"
#include "cuda/lt_descs.h"
#include "event-timing.h"
#include "cuda/gemm_rows.h"

// gemm_rows.cu launches through pdl.cuh, whose switch the backend (kernels.cu) otherwise owns; off
// here (main) except where the row GEMM is timed with it.
#include "pdl-switch.h"

// CUDA_CHECK / CUBLAS_CHECK (cuda/cublas_check.h) throw; uncaught, the probe stops
// with the failing call named.

namespace {

using bench::time_us;

// ---- our own FP8 kernel: one warpgroup, 64 weight rows (features) in wgmma's M, tokens in its N.
// Both operands K-major in 128-byte swizzle atoms (8 rows x 128 bytes; 16-byte chunk c of row r at
// c ^ (r % 8)); a k32 step is 32 bytes further along the atom.
__device__ __forceinline__ uint64_t desc128(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) |
         (static_cast<uint64_t>(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_n8_e4m3(float (&d)[4], uint64_t da, uint64_t db, int acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0, %1, %2, %3}, %4, %5, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "l"(da), "l"(db), "r"(acc)
      : "memory");
}

// w [N, K] E4M3, x [M <= 8, K] E4M3, out [M, N] bf16 = (sum_k w x) with scales sw [N], sx [M].
// order 0: (acc * sw) * sx; 1: acc * (sw * sx); 2: (acc * sx) * sw.
__global__ void own_fp8_kernel(const uint8_t* w, const uint8_t* x, const float* sw, const float* sx,
                               __nv_bfloat16* out, int M, int N, int K, int order) {
  __shared__ __align__(1024) uint8_t a[64 * 128];
  __shared__ __align__(1024) uint8_t b[8 * 128];
  const int t = threadIdx.x, n0 = blockIdx.x * 64;
  float d[4] = {0, 0, 0, 0};
  for (int k0 = 0; k0 < K; k0 += 128) {
    for (int i = t; i < 64 * 8; i += 128) {  // 16-byte chunks of the weight tile
      const int r = i / 8, c = i % 8;
      *reinterpret_cast<uint4*>(a + r * 128 + ((c ^ (r & 7)) << 4)) =
          *reinterpret_cast<const uint4*>(w + static_cast<size_t>(n0 + r) * K + k0 + c * 16);
    }
    if (t < 64) {
      const int r = t / 8, c = t % 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (r < M) v = *reinterpret_cast<const uint4*>(x + static_cast<size_t>(r) * K + k0 + c * 16);
      *reinterpret_cast<uint4*>(b + r * 128 + ((c ^ (r & 7)) << 4)) = v;
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    const uint32_t sa = static_cast<uint32_t>(__cvta_generic_to_shared(a));
    const uint32_t sb = static_cast<uint32_t>(__cvta_generic_to_shared(b));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_n8_e4m3(d, desc128(sa + kk * 32), desc128(sb + kk * 32), k0 > 0 || kk > 0);
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    __syncthreads();
  }
  const int warp = t / 32, lane = t % 32;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const int f = n0 + warp * 16 + lane / 4 + (e >= 2 ? 8 : 0);
    const int tok = (lane % 4) * 2 + (e & 1);
    if (tok >= M) continue;
    float v;
    if (order == 0) v = (d[e] * sw[f]) * sx[tok];
    else if (order == 1) v = d[e] * (sw[f] * sx[tok]);
    else v = (d[e] * sx[tok]) * sw[f];
    out[static_cast<size_t>(tok) * N + f] = __float2bfloat16(v);
  }
}

struct Shape {
  const char* name;
  int N, K;
  bool fp8;  // else bf16 in, float32 out (lm_head)
  int max_m;
};

cublasLtHandle_t lt;
void* workspace;
constexpr size_t kWorkspace = 64u << 20;

using Descs = tachyon::LtDescs;

// As gemm.cc: D^T[N, M] = W[K, N]^T A^T[K, M], column-major.
void describe(Descs& ds, const Shape& s, int M, const float* sw, const float* sx) {
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  const cudaDataType_t in = s.fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF, out = s.fp8 ? CUDA_R_16BF : CUDA_R_32F;
  if (s.fp8) {
    const int8_t fast = 1;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
    const cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &vec, sizeof(vec)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &vec, sizeof(vec)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof(sw)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof(sx)));
  }
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.a, in, s.K, s.N, s.K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.b, in, s.K, M, s.K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.d, out, s.N, M, s.N));
}

std::vector<cublasLtMatmulHeuristicResult_t> candidates(const Shape& s, int M, const float* sw, const float* sx) {
  Descs ds;
  describe(ds, s, M, sw, sx);
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof(kWorkspace)));
  std::vector<cublasLtMatmulHeuristicResult_t> r(16);
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt, ds.op, ds.a, ds.b, ds.d, ds.d, pref, 16, r.data(), &found) != CUBLAS_STATUS_SUCCESS)
    found = 0;
  cublasLtMatmulPreferenceDestroy(pref);
  r.resize(found);
  return r;
}

int algo_attr(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr) {
  int v = 0;
  size_t w = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, sizeof(v), &w);
  return v;
}

bool run_lt(const Shape& s, const cublasLtMatmulAlgo_t& algo, int M, const void* W, const void* X, void* D, const float* sw,
            const float* sx) {
  Descs ds;
  describe(ds, s, M, sw, sx);
  const float one = 1.0f, zero = 0.0f;
  if (cublasLtMatmul(lt, ds.op, &one, W, ds.a, X, ds.b, &zero, D, ds.d, D, ds.d, &algo, workspace, kWorkspace, 0) !=
      CUBLAS_STATUS_SUCCESS)
    return false;
  CUDA_CHECK(cudaDeviceSynchronize());
  return true;
}

// A cuBLASLt candidate at M rows without a sync a call: false if it does not run at M.
bool lt_async(const cublasLtMatmulAlgo_t& algo, const Descs& ds, const void* W, const void* X, void* D, cudaStream_t st) {
  const float one = 1.0f, zero = 0.0f;
  return cublasLtMatmul(lt, ds.op, &one, W, ds.a, X, ds.b, &zero, D, ds.d, D, ds.d, &algo, workspace, kWorkspace, st) ==
         CUBLAS_STATUS_SUCCESS;
}

struct TimingRow {
  const char* shape;
  int m;
  float lt_us, row_us, row_pdl_us;  // -1: did not run
  double weight_bytes;
};

uint8_t e4m3(float v) {
  __nv_fp8_e4m3 q(v);
  return *reinterpret_cast<uint8_t*>(&q);
}

}  // namespace

int main(int argc, char** argv) {
  tachyon::pdl_enabled() = false;
  const bool rows_only = argc > 1 && std::strcmp(argv[1], "--rows") == 0;
  // A line at a time even into a file or pipe: a run cut short by a device call's time limit keeps
  // what it printed (fully buffered, two runs under `timeout 70` came back empty).
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CUBLAS_CHECK(cublasLtCreate(&lt));
  CUDA_CHECK(cudaMalloc(&workspace, kWorkspace));
  std::printf("cuBLASLt %zu\n", cublasLtGetVersion());
  // The last four: N not a multiple of 64 (the row GEMM's last block masks weight rows); 1,040 and
  // 8,208 are multiples of 16, as cuBLASLt's FP8 kernels want. K = 1,152: with
  // TACHYON_ROW_GEMM_BULK=1024, a burst of eight stages and a last one of a single stage. N = 8,208:
  // 64 features a block, one block an SM (129 on 132 SMs), which Llama-3-8B's shapes never take.
  const Shape shapes[] = {{"qkv", 6144, 4096, true, 8192},   {"o_proj", 4096, 4096, true, 8192},
                          {"gate_up", 28672, 4096, true, 8192}, {"down", 4096, 14336, true, 8192},
                          {"lm_head", 128256, 4096, false, 512}, {"fp8_n1040", 1040, 512, true, 512},
                          {"fp8_n1040_k1152", 1040, 1152, true, 512}, {"fp8_n8208", 8208, 1024, true, 512},
                          {"gpt2_lm_head", 50257, 768, false, 512}};
  const bool row_gemm = tachyon::row_gemm_available();
  if (!row_gemm) std::printf("row GEMM unavailable (needs an sm_90 device and this sm_90a build): skipped\n");
  cudaStream_t ts;
  CUDA_CHECK(cudaStreamCreateWithFlags(&ts, cudaStreamNonBlocking));
  std::vector<TimingRow> timings;
  const int counts[] = {1, 2, 3, 4, 5, 8, 16, 24, 32, 64, 100, 128, 256, 512, 1024, 2048, 4096, 8192};
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.5f, 2.0f);
  for (const Shape& s : shapes) {
    const size_t el = s.fp8 ? 1 : 2, out_el = s.fp8 ? 2 : 4;
    std::vector<uint8_t> hw(static_cast<size_t>(s.N) * s.K * el), hx(static_cast<size_t>(s.max_m) * s.K * el);
    auto fill = [&](std::vector<uint8_t>& v) {
      if (s.fp8) for (auto& b : v) b = e4m3(normal(rng) * 64.0f);
      else {
        auto* p = reinterpret_cast<__nv_bfloat16*>(v.data());
        for (size_t i = 0; i < v.size() / 2; ++i) p[i] = __float2bfloat16(normal(rng));
      }
    };
    fill(hw);
    fill(hx);
    std::vector<float> hsw(s.N), hsx(s.max_m);
    for (auto& v : hsw) v = unit(rng) / 448.0f;
    for (auto& v : hsx) v = unit(rng) / 448.0f;
    void *W, *X, *D, *R;
    float *sw, *sx;
    const size_t out_bytes = static_cast<size_t>(s.max_m) * s.N * out_el;
    CUDA_CHECK(cudaMalloc(&W, hw.size()));
    CUDA_CHECK(cudaMalloc(&X, hx.size()));
    CUDA_CHECK(cudaMalloc(&D, out_bytes));
    CUDA_CHECK(cudaMalloc(&R, out_bytes));
    CUDA_CHECK(cudaMalloc(&sw, s.N * 4));
    CUDA_CHECK(cudaMalloc(&sx, s.max_m * 4));
    CUDA_CHECK(cudaMemcpy(W, hw.data(), hw.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(X, hx.data(), hx.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(sw, hsw.data(), s.N * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(sx, hsx.data(), s.max_m * 4, cudaMemcpyHostToDevice));

    // Distinct non-split-K candidates over all row counts.
    std::vector<cublasLtMatmulAlgo_t> algos;
    int split_seen = 0;
    for (int m : counts) {
      if (m > s.max_m) continue;
      for (const auto& r : candidates(s, m, sw, sx)) {
        if (algo_attr(r.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM) > 1) {
          ++split_seen;
          continue;
        }
        bool dup = false;
        for (const auto& a : algos) dup |= std::memcmp(&a, &r.algo, sizeof(a)) == 0;
        if (!dup) algos.push_back(r.algo);
      }
    }
    std::printf("\n== %s %dx%d %s: %zu non-split candidates (%d split-K offers skipped)\n", s.name, s.N, s.K,
                s.fp8 ? "fp8" : "bf16->f32", algos.size(), split_seen);
    // Reference: the first candidate that runs at the largest count.
    int ref = -1;
    for (size_t i = 0; i < algos.size() && ref < 0; ++i)
      if (run_lt(s, algos[i], s.max_m, W, X, R, sw, sx)) ref = static_cast<int>(i);
    if (ref < 0) {
      std::printf("no candidate runs at %d rows\n", s.max_m);
      continue;
    }
    std::vector<uint8_t> href(out_bytes), hd(out_bytes);
    CUDA_CHECK(cudaMemcpy(href.data(), R, out_bytes, cudaMemcpyDeviceToHost));
    auto differing = [&](int m) {  // elements of the first m rows that differ from the reference
      CUDA_CHECK(cudaMemcpy(hd.data(), D, static_cast<size_t>(m) * s.N * out_el, cudaMemcpyDeviceToHost));
      long bad = 0;
      for (size_t i = 0; i < static_cast<size_t>(m) * s.N; ++i) bad += std::memcmp(&hd[i * out_el], &href[i * out_el], out_el) != 0;
      return bad;
    };
    // One row count's check, printed as " m:=" (every element as the reference), " m:<count>" or
    // " m:-" (run(m) says the kernel does not run at m rows): D poisoned, run, compared.
    auto check_rows = [&](int m, const std::function<bool(int)>& run) {
      CUDA_CHECK(cudaMemset(D, 0xFF, static_cast<size_t>(m) * s.N * out_el));
      if (!run(m)) {
        std::printf(" %d:-", m);
        return;
      }
      CUDA_CHECK(cudaGetLastError());
      CUDA_CHECK(cudaDeviceSynchronize());
      const long bad = differing(m);
      if (bad == 0) std::printf(" %d:=", m);
      else std::printf(" %d:%ld", m, bad);
    };
    for (size_t i = 0; i < algos.size() && !rows_only; ++i) {
      const auto& a = algos[i];
      std::printf("algo %2zu id %3d tile %3d stages %3d swizzle %d custom %d cluster %d:", i,
                  algo_attr(a, CUBLASLT_ALGO_CONFIG_ID), algo_attr(a, CUBLASLT_ALGO_CONFIG_TILE_ID),
                  algo_attr(a, CUBLASLT_ALGO_CONFIG_STAGES_ID), algo_attr(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
                  algo_attr(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION), algo_attr(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
      for (int m : counts)
        if (m <= s.max_m) check_rows(m, [&](int rows) { return run_lt(s, a, rows, W, X, D, sw, sx); });
      std::printf("\n");
    }
    if (s.fp8 && s.N % 64 == 0 && !rows_only) {  // own_fp8_kernel reads whole 64-row weight tiles
      std::printf("own wgmma m64n8k32 kernel, epilogue orders (acc*sw)*sx | acc*(sw*sx) | (acc*sx)*sw:");
      for (int order = 0; order < 3; ++order) {
        std::printf(" [");
        for (int m = 1; m <= 8; ++m)
          check_rows(m, [&](int rows) {
            own_fp8_kernel<<<s.N / 64, 128>>>(static_cast<uint8_t*>(W), static_cast<uint8_t*>(X), sw, sx,
                                               static_cast<__nv_bfloat16*>(D), rows, s.N, s.K, order);
            return true;
          });
        std::printf(" ]");
      }
      // How far off, when off: the largest difference in bf16 units of the last place (order 0, 8 rows).
      own_fp8_kernel<<<s.N / 64, 128>>>(static_cast<uint8_t*>(W), static_cast<uint8_t*>(X), sw, sx,
                                         static_cast<__nv_bfloat16*>(D), 8, s.N, s.K, 0);
      CUDA_CHECK(cudaDeviceSynchronize());
      CUDA_CHECK(cudaMemcpy(hd.data(), D, static_cast<size_t>(8) * s.N * 2, cudaMemcpyDeviceToHost));
      int worst = 0;
      for (size_t i = 0; i < static_cast<size_t>(8) * s.N; ++i) {
        int16_t p, q;
        std::memcpy(&p, &hd[i * 2], 2);
        std::memcpy(&q, &href[i * 2], 2);
        worst = std::max(worst, std::abs(int(p) - int(q)));
      }
      std::printf("\n  worst bf16 ulp difference at 8 rows: %d\n", worst);
    }
    if (row_gemm) {
      const tachyon::Operand type = s.fp8 ? tachyon::Operand::kFp8 : tachyon::Operand::kBf16;
      const tachyon::Output out = s.fp8 ? tachyon::Output::kBf16 : tachyon::Output::kF32;
      const tachyon::GemmScales sc{sx, sw};  // rows: per token; cols: per weight row
      std::printf("row GEMM (launch_row_gemm) vs the reference:");
      for (int m : {1, 2, 3, 4, 5, 8, 16, 24, 32, 48, 64})
        check_rows(m, [&](int rows) {
          tachyon::launch_row_gemm(type, out, X, W, D, rows, s.N, s.K, sc, 0);
          return true;
        });
      std::printf("\n");

      // Timing: three copies of the weights where they would fit in the L2 otherwise, called in turn.
      const double wbytes = static_cast<double>(hw.size());
      std::vector<void*> copies{W};
      while (wbytes < 60e6 && copies.size() < 3) {
        void* c;
        CUDA_CHECK(cudaMalloc(&c, hw.size()));
        CUDA_CHECK(cudaMemcpy(c, W, hw.size(), cudaMemcpyDeviceToDevice));
        copies.push_back(c);
      }
      const size_t n = copies.size();
      for (int m : {1, 4, 8, 16, 32, 64}) {
        Descs ds;
        describe(ds, s, m, sw, sx);
        float lt_best = -1.0f;
        for (const auto& a : algos) {
          const float us = time_us([&](int i) { return lt_async(a, ds, copies[i % n], X, D, ts); }, ts);
          if (us >= 0 && (lt_best < 0 || us < lt_best)) lt_best = us;
        }
        float row_us[2];
        for (int pdl = 0; pdl < 2; ++pdl) {
          tachyon::pdl_enabled() = pdl == 1;
          row_us[pdl] = time_us([&](int i) {
            tachyon::launch_row_gemm(type, out, X, copies[i % n], D, m, s.N, s.K, sc, ts);
            return true;
          }, ts);
        }
        tachyon::pdl_enabled() = false;
        timings.push_back({s.name, m, lt_best, row_us[0], row_us[1], wbytes});
        const TimingRow& r = timings.back();
        std::printf("  %d rows: cuBLASLt %.1f us (%.0f GB/s), row GEMM %.1f us (%.0f GB/s), with PDL %.1f us (%.0f GB/s)\n", m,
                    r.lt_us, wbytes / (r.lt_us * 1e3), r.row_us, wbytes / (r.row_us * 1e3), r.row_pdl_us,
                    wbytes / (r.row_pdl_us * 1e3));
      }
      for (size_t i = 1; i < n; ++i) cudaFree(copies[i]);
    }
    cudaFree(W); cudaFree(X); cudaFree(D); cudaFree(R); cudaFree(sw); cudaFree(sx);
  }
  if (!timings.empty()) {
    // GB/s: weight bytes over time (the activations and outputs are small beside them). PDL: each call
    // may start its first weight copies while the previous call runs, as after another kernel in a step.
    std::printf("\n%-13s %5s %12s %12s %12s %9s %9s %9s %8s\n", "shape", "rows", "cuBLASLt us", "row us", "row+PDL us",
                "LtGB/s", "rowGB/s", "+PDLGB/s", "speedup");
    for (const TimingRow& r : timings)
      std::printf("%-13s %5d %12.1f %12.1f %12.1f %9.0f %9.0f %9.0f %7.2fx\n", r.shape, r.m, r.lt_us, r.row_us, r.row_pdl_us,
                  r.weight_bytes / (r.lt_us * 1e3), r.weight_bytes / (r.row_us * 1e3), r.weight_bytes / (r.row_pdl_us * 1e3),
                  r.lt_us / r.row_us);
  }
  cudaStreamDestroy(ts);
  return 0;
}
