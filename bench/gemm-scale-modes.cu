// What cuBLASLt offers for a prompt step's FP8 projections under other scale modes and epilogues
// than the library's. native/cuda/gemm.cc multiplies E4M3 weights (a scale a channel) by E4M3
// activations (a scale a token), both as OUTER_VEC_32F; for that mode the heuristic names one
// kernel from 512 rows up (nvjet 128x128, about 1,550 TFLOP/s at 8,192 rows on the H200), and a
// prompt step of 2048/128 spends 73% of its kernel time there (bench/RESULTS.md, eighteenth
// session). Before any change of scheme, this asks, for Llama-3-8B's four projections at 2,048 and
// 8,192 rows:
//   vec/vec      the library's: a scale a channel and a scale a token, bf16 out
//   scalar       one scale a tensor for each (TensorRT-LLM's and vLLM's static FP8 checkpoints)
//   vec/scalar   a scale a channel, one for the activations
//   scalar/vec   one for the weights, a scale a token
//   +x f32       vec/vec, adding into a float32 residual in place (C = D, beta 1): would let the O
//                and down projections write the residual stream, leaving the next norm a read
//   +x bf16      the same into a bf16 residual
// how many candidates the heuristic gives (split-K ones counted apart), and the fastest's time and
// TFLOP/s. The arithmetic each mode computes is not compared here; a mode worth having would come
// with its own accuracy check.
//
// On the GPU machine: bash bench/gemm-scale-modes.sh
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda/cublas_check.h"
#include "cuda/lt_descs.h"
#include "event-timing.h"

namespace {

constexpr size_t kWorkspace = 64u << 20;

struct Shape {
  const char* name;
  int N, K;
};

struct Mode {
  const char* name;
  bool weight_vec, token_vec;  // OUTER_VEC_32F, else SCALAR_32F
  cudaDataType_t out;          // D's type (and C's, when adding)
  bool add;                    // D = product + D (beta 1, C = D in place)
};

cublasLtHandle_t lt;
void* workspace;

using Descs = tachyon::LtDescs;

// As gemm.cc: D^T[N, M] = W[K, N]^T X^T[K, M], column-major; cuBLASLt's A is the weights.
void describe(Descs& ds, const Shape& s, const Mode& m, int M, const float* sw, const float* sx) {
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  const int8_t fast = 1;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
  const cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, one = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, m.weight_vec ? &vec : &one, sizeof(vec)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, m.token_vec ? &vec : &one, sizeof(vec)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof(sw)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof(sx)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.a, CUDA_R_8F_E4M3, s.K, s.N, s.K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.b, CUDA_R_8F_E4M3, s.K, M, s.K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.d, m.out, s.N, M, s.N));
}

int split_k(const cublasLtMatmulAlgo_t& a) {
  int v = 1;
  size_t w = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &v, sizeof(v), &w);
  return v;
}

// Mean microseconds a call (bench::time_us); -1 if the algorithm does not run.
float time_us(const Descs& ds, const Mode& m, const cublasLtMatmulAlgo_t& algo, const void* W, const void* X, void* D) {
  const float alpha = 1.0f, beta = m.add ? 1.0f : 0.0f;
  return bench::time_us([&](int) {
    return cublasLtMatmul(lt, ds.op, &alpha, W, ds.a, X, ds.b, &beta, D, ds.d, D, ds.d, &algo, workspace, kWorkspace, 0) ==
           CUBLAS_STATUS_SUCCESS;
  }, 0);
}

uint8_t e4m3(float v) {
  __nv_fp8_e4m3 q(v);
  return *reinterpret_cast<uint8_t*>(&q);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time: a run cut short keeps what it printed
  CUBLAS_CHECK(cublasLtCreate(&lt));
  CUDA_CHECK(cudaMalloc(&workspace, kWorkspace));
  std::printf("cuBLASLt %zu\n", cublasLtGetVersion());
  const Shape shapes[] = {{"qkv", 6144, 4096}, {"o_proj", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
  const Mode modes[] = {{"vec/vec", true, true, CUDA_R_16BF, false},    {"scalar", false, false, CUDA_R_16BF, false},
                        {"vec/scalar", true, false, CUDA_R_16BF, false}, {"scalar/vec", false, true, CUDA_R_16BF, false},
                        {"+x f32", true, true, CUDA_R_32F, true},       {"+x bf16", true, true, CUDA_R_16BF, true}};
  const int row_counts[] = {2048, 8192};
  constexpr int kMaxM = 8192;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Scales about 1/64 each, so that sums of 4,096-14,336 products of E4M3 values near 64 stay finite
  // in bf16 over the repeated in-place adds.
  std::vector<float> scales(28672);  // the widest N; more than kMaxM tokens
  for (auto& v : scales) v = (0.5f + 0.5f * std::fabs(normal(rng))) / 4096.0f;
  float* d_scales;
  CUDA_CHECK(cudaMalloc(&d_scales, scales.size() * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(d_scales, scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice));
  std::printf("| shape | rows | mode | candidates (split-K) | best us | TFLOP/s | vs vec/vec |\n");
  std::printf("| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
  for (const Shape& s : shapes) {
    std::vector<uint8_t> hw(static_cast<size_t>(s.N) * s.K), hx(static_cast<size_t>(kMaxM) * s.K);
    for (auto& b : hw) b = e4m3(normal(rng) * 64.0f);
    for (auto& b : hx) b = e4m3(normal(rng) * 64.0f);
    void *W, *X, *D;
    CUDA_CHECK(cudaMalloc(&W, hw.size()));
    CUDA_CHECK(cudaMalloc(&X, hx.size()));
    CUDA_CHECK(cudaMalloc(&D, static_cast<size_t>(kMaxM) * s.N * 4));
    CUDA_CHECK(cudaMemcpy(W, hw.data(), hw.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(X, hx.data(), hx.size(), cudaMemcpyHostToDevice));
    for (const int M : row_counts) {
      float reference = -1.0f;
      for (const Mode& m : modes) {
        CUDA_CHECK(cudaMemset(D, 0, static_cast<size_t>(M) * s.N * 4));
        Descs ds;
        describe(ds, s, m, M, d_scales, d_scales);
        cublasLtMatmulPreference_t pref;
        CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof(kWorkspace)));
        std::vector<cublasLtMatmulHeuristicResult_t> found(32);
        int n = 0;
        if (cublasLtMatmulAlgoGetHeuristic(lt, ds.op, ds.a, ds.b, ds.d, ds.d, pref, static_cast<int>(found.size()), found.data(), &n) !=
            CUBLAS_STATUS_SUCCESS)
          n = 0;
        cublasLtMatmulPreferenceDestroy(pref);
        int splits = 0;
        float best = -1.0f;
        for (int i = 0; i < n; ++i) {
          if (split_k(found[i].algo) > 1) {
            ++splits;
            continue;
          }
          const float us = time_us(ds, m, found[i].algo, W, X, D);
          if (us > 0 && (best < 0 || us < best)) best = us;
        }
        if (m.weight_vec && m.token_vec && !m.add) reference = best;
        const double tflops = best > 0 ? 2.0 * M * s.N * s.K / (best * 1e-6) / 1e12 : 0.0;
        char versus[32] = "-";
        if (best > 0 && reference > 0) std::snprintf(versus, sizeof(versus), "%.3fx", best / reference);
        std::printf("| %s | %d | %s | %d (%d) | %.1f | %.0f | %s |\n", s.name, M, m.name, n - splits, splits, best, tflops, versus);
      }
    }
    cudaFree(W);
    cudaFree(X);
    cudaFree(D);
  }
  return 0;
}
