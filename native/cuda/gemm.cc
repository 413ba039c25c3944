#include "cuda/gemm.h"

#include <vector>

namespace tachyon {

Gemm::Descs::~Descs() {
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (d) cublasLtMatrixLayoutDestroy(d);
  if (op) cublasLtMatmulDescDestroy(op);
}

Gemm::Gemm(size_t workspace_bytes) : workspace_(workspace_bytes, "cuBLASLt workspace") {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
}

Gemm::~Gemm() {
  if (handle_) cublasLtDestroy(handle_);
}

// Column-major view of the row-major product: D^T[N, M] = W[K, N]^T · A^T[K, M].
void Gemm::describe(Descs& ds, Operand type, int M, int N, int K) const {
  const cudaDataType_t in = type == Operand::kFp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.a, in, K, N, K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.b, in, K, M, K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.d, CUDA_R_32F, N, M, N));
}

void Gemm::tune(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s) {
  const Key key{N, K, static_cast<int>(type)};
  if (algos_.count(key)) return;
  Descs ds;
  describe(ds, type, M, N, K);
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_.bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(16);
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, ds.op, ds.a, ds.b, ds.d, ds.d, pref,
                                                           static_cast<int>(results.size()), results.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  const char* name = type == Operand::kFp8 ? " fp8" : " bf16";
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) fail("cuBLASLt has no algorithm for a ", M, "x", N, "x", K, name, " GEMM");
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  const float one = 1.0f, zero = 0.0f;
  float best_us = 1e30f;
  int best = -1, timed = 0;
  for (int i = 0; i < found; ++i) {
    int split_k = 1;
    size_t written = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&results[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split_k, sizeof(split_k), &written);
    if (split_k > 1) continue;  // split-K reduction order would depend on the shape
    auto launch = [&] {
      return cublasLtMatmul(handle_, ds.op, &one, W, ds.a, A, ds.b, &zero, D, ds.d, D, ds.d, &results[i].algo,
                            workspace_.as<void>(), ws, s);
    };
    if (launch() != CUBLAS_STATUS_SUCCESS) continue;
    constexpr int kReps = 10;
    CUDA_CHECK(cudaEventRecord(start, s));
    for (int r = 0; r < kReps; ++r) launch();
    CUDA_CHECK(cudaEventRecord(stop, s));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    ++timed;
    if (ms * 1000.0f / kReps < best_us) {
      best_us = ms * 1000.0f / kReps;
      best = i;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (best < 0) fail("no cuBLASLt algorithm without split-K ran for a ", M, "x", N, "x", K, name, " GEMM");
  algos_[key] = results[best].algo;
  report_[std::make_pair(N, K)] = {best_us, timed};
}

void Gemm::run(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s) {
  auto it = algos_.find(Key{N, K, static_cast<int>(type)});
  if (it == algos_.end()) fail("GEMM shape ", N, "x", K, " was not tuned at load");
  Descs ds;
  describe(ds, type, M, N, K);
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, ds.op, &one, W, ds.a, A, ds.b, &zero, D, ds.d, D, ds.d, &it->second,
                              workspace_.as<void>(), workspace_.bytes(), s));
}

}  // namespace tachyon
