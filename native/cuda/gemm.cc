#include "cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>

#include "cuda/cublas_check.h"
#include "cuda/gemm_rows.h"

namespace tachyon {

namespace {

constexpr int kWideRows = 256;  // candidates for this many rows serve any count (see tune_at)

size_t element_bytes(Output out) { return out == Output::kBf16 ? 2 : 4; }

// Elements where two products (rows_of) of this output type differ.
long differing(const std::vector<unsigned char>& a, const std::vector<unsigned char>& b, Output out) {
  const size_t el = element_bytes(out);
  long n = 0;
  for (size_t i = 0; i < a.size(); i += el) n += std::memcmp(&a[i], &b[i], el) != 0;
  return n;
}

// Mean microseconds of one call, over repeated calls after a warm-up.
float time_us(const std::function<bool()>& call, cudaStream_t s) {
  if (!call()) return -1.0f;
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  constexpr int kReps = 10;
  CUDA_CHECK(cudaEventRecord(start, s));
  for (int r = 0; r < kReps; ++r) call();
  CUDA_CHECK(cudaEventRecord(stop, s));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1000.0f / kReps;
}

// cuBLASLt's alpha = 1 and beta (0, or 1 where the product adds into D), in the product's scale
// type (int32 for IMMA, else float).
struct Scalars {
  float f1 = 1.0f, f0 = 0.0f;
  int32_t i1 = 1, i0 = 0;
  const void *one, *beta;
  Scalars(Operand type, Output out)
      : one(type == Operand::kInt8 ? static_cast<const void*>(&i1) : &f1),
        beta(type == Operand::kInt8 ? static_cast<const void*>(&i0) : out == Output::kF32Add ? &f1 : &f0) {}
  Scalars(const Scalars&) = delete;
};

const char* output_name(Output out) {
  switch (out) {
    case Output::kBf16: return "bf16";
    case Output::kI32: return "i32";
    case Output::kF32Add: return "f32+=";
    default: return "f32";
  }
}

}  // namespace

Gemm::Gemm(size_t workspace_bytes) : workspace_(workspace_bytes, "cuBLASLt workspace") {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
}

Gemm::~Gemm() {
  if (handle_) cublasLtDestroy(handle_);
}

// Column-major view of the row-major product: D^T[N, M] = W[K, N]^T · A^T[K, M]. cuBLASLt's "A" is
// therefore our W (its scale vector has N entries) and its "B" our activations (M entries).
void Gemm::describe(Descs& ds, Operand type, Output out, int M, int N, int K, GemmScales sc) const {
  const bool int8 = type == Operand::kInt8;
  if (int8 != (out == Output::kI32)) fail("an int8 GEMM writes int32 sums, and only it does");
  if (out == Output::kF32Add && type != Operand::kFp8) fail("only an FP8 GEMM adds into its output");
  const cudaDataType_t in = type == Operand::kFp8 ? CUDA_R_8F_E4M3 : int8 ? CUDA_R_8I : CUDA_R_16BF;
  const cudaDataType_t d = out == Output::kBf16 ? CUDA_R_16BF : int8 ? CUDA_R_32I : CUDA_R_32F;
  // IMMA: int32 sums and int32 alpha / beta; it takes A transposed and B not, as here.
  if (int8) CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
  else CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  if (type == Operand::kFp8) {
    // Hopper's FP8 MMA accumulates in reduced precision; without fast accumulation cuBLASLt adds
    // the partial sums into float32 every few k-steps (slower). vLLM's and TensorRT-LLM's FP8
    // GEMMs take the fast mode; so do we (accuracy: test/gpu/fp8.test.ts).
    const int8_t fast = 1;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
#if CUBLAS_VERSION >= 120900
    const cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &vec, sizeof(vec)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &vec, sizeof(vec)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sc.cols, sizeof(sc.cols)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sc.rows, sizeof(sc.rows)));
#else
    (void)sc;
    fail("FP8 needs cuBLASLt 12.9 or newer (per-token and per-channel scales in the GEMM epilogue); this build's is ",
         CUBLAS_VERSION);
#endif
  }
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.a, in, K, N, weight_ld(type, K)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.b, in, K, M, K));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.d, d, N, M, N));
}

int Gemm::bucket(int M) const {
  int b = 1;
  while (b < M) b *= 2;
  return b;
}

Gemm::Choice Gemm::tune_at(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K,
                           GemmScales sc, cudaStream_t s) {
  const char* name = type == Operand::kFp8 ? " fp8" : type == Operand::kInt8 ? " int8" : " bf16";
  Descs ds;
  describe(ds, type, out, M, N, K, sc);
  // cuBLASLt's candidates for this row count, and those for 256 rows (which serve any count; at a few
  // rows the heuristic may offer only split-K kernels).
  std::vector<int> row_counts{M};
  if (M != kWideRows) row_counts.push_back(kWideRows);
  std::vector<cublasLtMatmulHeuristicResult_t> results;
  for (const int rows : row_counts) {
    Descs q;
    describe(q, type, out, rows, N, K, sc);
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = workspace_.bytes();
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    std::vector<cublasLtMatmulHeuristicResult_t> found_here(16);
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(handle_, q.op, q.a, q.b, q.d, q.d, pref, static_cast<int>(found_here.size()),
                                       found_here.data(), &found) != CUBLAS_STATUS_SUCCESS)
      found = 0;
    cublasLtMatmulPreferenceDestroy(pref);
    results.insert(results.end(), found_here.begin(), found_here.begin() + found);
  }
  const int found = static_cast<int>(results.size());
  const size_t ws = workspace_.bytes();
  const Scalars ab(type, out);
  Choice best;
  float best_us = 1e30f;
  int timed = 0;
  for (int i = 0; i < found; ++i) {
    int split_k = 1;
    size_t written = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&results[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split_k, sizeof(split_k), &written);
    // Split-K adds partial sums over K in an order of its own: a row's bits would depend on the kernel
    // chosen for its bucket (and on the shape), and no other candidate's (or gemm_rows.h's) would match
    // it. The heuristic offered none for Llama-3-8B's shapes at 1 to 8,192 rows anyway (bench/RESULTS.md).
    if (split_k > 1) continue;
    const float us = time_us([&] {
      return cublasLtMatmul(handle_, ds.op, ab.one, W, ds.a, A, ds.b, ab.beta, D, ds.d, D, ds.d, &results[i].algo,
                            workspace_.as<void>(), ws, s) == CUBLAS_STATUS_SUCCESS;
    }, s);
    if (us < 0) continue;
    ++timed;
    if (us < best_us) {
      best_us = us;
      best = Choice{results[i].algo};
    }
  }
  if (timed == 0) fail("no GEMM kernel ran for a ", M, "x", N, "x", K, name, " product");
  // gemm_rows.h's kernel, where it gives cuBLASLt's bits (checked here on these random inputs): a
  // row's result must not depend on which kernel its row count's bucket chose. Adding into D, it
  // has two ways to round (RowAdd); the first that matches is the one cuBLASLt's epilogue takes.
  if (M <= kRowGemmMaxRows && row_gemm_available() && row_gemm_supports(type, N, K)) {
    const std::vector<unsigned char> reference = rows_of(best, type, out, A, W, D, M, M, N, K, sc, s);
    std::vector<RowAdd> forms{RowAdd::kNone};
    if (out == Output::kF32Add) forms = {RowAdd::kRounded, RowAdd::kFused};
    long d = -1;
    Choice row{{}, true};
    for (const RowAdd form : forms) {
      row.row_add = form;
      d = differing(reference, rows_of(row, type, out, A, W, D, M, M, N, K, sc, s), out);
      if (d == 0) break;
    }
    if (d > 0) {
      char line[160];
      std::snprintf(line, sizeof(line), "%s %dx%d at %d rows: row-gemm differs from cuBLASLt in %ld elements%s, not used",
                    name + 1, N, K, M, d, out == Output::kF32Add ? " (both ways of adding)" : "");
      report_.push_back(line);
      std::fprintf(stderr, "cuda gemm: %s\n", line);
    } else {
      const float us = time_us([&] {
        launch_row_gemm(type, out, A, W, D, M, N, K, sc, s, row.row_add, 0, {}, row_gemm_stride(type, K));
        return true;
      }, s);
      ++timed;
      if (us < best_us) {
        best_us = us;
        best = row;
      }
    }
  }
  char line[160];
  std::snprintf(line, sizeof(line), "%s %dx%d at %d rows -> %s: %.1f us%s (%d candidates)", name + 1, N, K, M,
                output_name(out), best_us, best.row_gemm ? (best.row_add == RowAdd::kFused ? " row-gemm (fma)" : " row-gemm") : "",
                timed);
  report_.push_back(line);
  return best;
}

// Runs choice c for M rows.
void Gemm::launch(const Choice& c, Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K,
                  GemmScales sc, cudaStream_t s, NextWeights next) {
  if (c.row_gemm) {
    launch_row_gemm(type, out, A, W, D, M, N, K, sc, s, c.row_add, row_prefetch_bytes_, next, row_gemm_stride(type, K));
    return;
  }
  Descs ds;
  describe(ds, type, out, M, N, K, sc);
  const Scalars ab(type, out);
  CUBLAS_CHECK(cublasLtMatmul(handle_, ds.op, ab.one, W, ds.a, A, ds.b, ab.beta, D, ds.d, D, ds.d, &c.algo,
                              workspace_.as<void>(), workspace_.bytes(), s));
}

// The first `rows` rows of choice c's M-row product, as bytes on the host.
std::vector<unsigned char> Gemm::rows_of(const Choice& c, Operand type, Output out, const void* A, const void* W, void* D,
                                         int M, int rows, int N, int K, GemmScales sc, cudaStream_t s) {
  std::vector<unsigned char> host(static_cast<size_t>(rows) * N * element_bytes(out));
  if (out == Output::kF32Add) {
    // A product added into D finds values in (-1, 1) that differ from element to element, so that the
    // addition's rounding is compared and a kernel adding another element's value cannot match.
    std::vector<float> held(static_cast<size_t>(rows) * N);
    uint32_t h = 0x9E3779B9u;
    for (float& v : held) {
      h ^= h << 13, h ^= h >> 17, h ^= h << 5;
      v = static_cast<float>(static_cast<int32_t>(h)) * 0x1p-31f;
    }
    CUDA_CHECK(cudaMemcpyAsync(D, held.data(), host.size(), cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));  // held leaves scope
  } else {
    CUDA_CHECK(cudaMemsetAsync(D, 0xFF, host.size(), s));  // an unwritten element cannot match (NaN)
  }
  launch(c, type, out, A, W, D, M, N, K, sc, s);
  CUDA_CHECK(cudaMemcpyAsync(host.data(), D, host.size(), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return host;
}

void Gemm::tune(Operand type, Output out, const void* A, const void* W, void* D, int max_m, int N, int K, GemmScales sc,
                cudaStream_t s) {
  const int t = static_cast<int>(type), o = static_cast<int>(out);
  if (type == Operand::kInt8) max_m = std::max(max_m, kImmaMinRows);
  bool tuned = false;
  for (int b = type == Operand::kInt8 ? kImmaMinRows : 1;; b *= 2) {
    if (!choices_.count(Key{t, o, N, K, b})) {
      choices_[Key{t, o, N, K, b}] = tune_at(type, out, A, W, D, std::min(b, max_m), N, K, sc, s);
      tuned = true;
    }
    if (b >= max_m) break;
  }
  // Batch invariance rests on every bucket's kernel giving a row the bits the 1-row bucket's gives:
  // measured for cuBLASLt's non-split-K kernels on the H200 (bench/gemm-invariance.cu), checked here
  // for this shape on the tuning inputs (first rows of each bucket's product against the same rows
  // computed alone). A mismatch is reported, not corrected. INT8 sums are exact integers.
  if (!tuned || type == Operand::kInt8) return;
  const Choice first = choices_[Key{t, o, N, K, 1}];
  for (int b = 2; b < 2 * max_m; b *= 2) {
    const int M = std::min(b, max_m), rows = std::min(M, kRowGemmMaxRows);
    const long d = differing(rows_of(choices_[Key{t, o, N, K, b}], type, out, A, W, D, M, rows, N, K, sc, s),
                             rows_of(first, type, out, A, W, D, rows, rows, N, K, sc, s), out);
    if (d == 0) continue;
    char line[200];
    std::snprintf(line, sizeof(line), "%dx%d: the kernel for %d rows gives %ld of its first %d rows' elements other bits "
                  "than the 1-row kernel: batch invariance does not hold for this shape", N, K, M, d, rows);
    report_.push_back(line);
    std::fprintf(stderr, "cuda gemm: %s\n", line);
  }
}

void Gemm::run(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K, GemmScales sc,
               cudaStream_t s, NextWeights next) {
  if (M > 0 && type == Operand::kInt8) M = std::max(M, kImmaMinRows);
  if (M == 0) return;
  auto it = choices_.find(Key{static_cast<int>(type), static_cast<int>(out), N, K, bucket(M)});
  if (it == choices_.end()) fail("GEMM shape ", N, "x", K, " at ", M, " rows was not tuned at load");
  launch(it->second, type, out, A, W, D, M, N, K, sc, s, next);
}

}  // namespace tachyon
