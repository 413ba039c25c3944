// Hopper warpgroup MMA (wgmma.mma_async, sm_90a only) as PTX: the four warps of a warpgroup
// multiply a 64-row A held in their registers (each warp 16 rows, in mma.m16n8k16's A fragment
// layout) by a B the tensor cores read straight from shared memory through a descriptor, into
// float32 accumulators laid out as mma.m16n8k16's C fragments, one 8-column tile after another
// (d[j][e]: tile j, element e); or, for the few-row GEMMs (gemm_rows.cu), an A read from shared
// memory too. Built only where __CUDA_ARCH_FEAT_SM90_ALL is defined (sm_90a); elsewhere the calls
// compile to nothing and wgmma_built() is false, so callers ask wgmma_available() (host) first.
#pragma once
#include <cstdint>
#include <type_traits>

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TACHYON_WGMMA 1
#else
#define TACHYON_WGMMA 0
#endif

namespace tachyon {

// True in code compiled for sm_90a.
__device__ __forceinline__ bool wgmma_built() { return TACHYON_WGMMA != 0; }

// Host: whether the current device is sm_90 and runs this build's sm_90a code (the library was
// built for CMAKE_CUDA_ARCHITECTURES 90a); probed once (wgmma_probe.cu).
bool wgmma_available();

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format") of an operand without
// swizzle (K-major "interleaved" core matrices of 8 rows x 16 bytes, each 128 contiguous bytes):
// start address, leading = the byte offset between core matrices adjacent in K, stride = between
// those adjacent in M or N (16-byte units, 14 bits each); swizzle mode 0. 16-byte alignment suffices.
__device__ __forceinline__ uint64_t interleave_desc(uint32_t smem_addr, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFF) << 16) |
         (static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32);
}

// The same fields for a 128-byte-swizzled operand: swizzle mode 1 (128 bytes) in bits 62-63. The
// tile must start 1024-byte aligned (base offset 0).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t smem_addr, uint32_t leading_bytes, uint32_t stride_bytes) {
  return interleave_desc(smem_addr, leading_bytes, stride_bytes) | (1ull << 62);
}

// Orders this thread's earlier register writes (accumulators, A fragments) before the wgmma after it.
__device__ __forceinline__ void wgmma_fence() {
#if TACHYON_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if TACHYON_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups of this warpgroup's wgmma are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if TACHYON_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Shared-memory writes by ordinary stores and cp.async made visible to the tensor cores' reads
// (the async proxy); each writing thread, then a barrier, then the wgmma.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if TACHYON_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving reads or writes of a running wgmma's registers across it (it does
// not know the instruction is asynchronous): float accumulators, and register A fragments (uint32),
// which then stay put until after the wait.
template <typename T, int J>
__device__ __forceinline__ void wgmma_fence_operands(T (&d)[J][4]) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, uint32_t>, "accumulators or A fragments");
#pragma unroll
  for (int j = 0; j < J; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if constexpr (std::is_same_v<T, float>) asm volatile("" : "+f"(d[j][e])::"memory");
      else asm volatile("" : "+r"(d[j][e])::"memory");
    }
}

// d (64 x N, float32, as N / 8 tiles of mma C fragments) = a (64 x 16) · b (16 x N) (+ d when
// accumulate), for N = 64 and 128 and f16 or bf16 operands. TRANS_B 0: b's smem tile is K-major
// (each of its N columns holds 16 contiguous k values); 1: MN-major (its rows are contiguous). The
// asm's operands: d's N / 2 registers, a's 4, the descriptor, the accumulate flag, TRANS_B.
#define TACHYON_WGMMA_D(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define TACHYON_WGMMA_N64_PRED "%37"
#define TACHYON_WGMMA_N64_OPERANDS \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
  "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
#define TACHYON_WGMMA_N64_D TACHYON_WGMMA_D(0), TACHYON_WGMMA_D(1), TACHYON_WGMMA_D(2), TACHYON_WGMMA_D(3), TACHYON_WGMMA_D(4), TACHYON_WGMMA_D(5), TACHYON_WGMMA_D(6), TACHYON_WGMMA_D(7)
#define TACHYON_WGMMA_N128_PRED "%69"
#define TACHYON_WGMMA_N128_OPERANDS \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
  "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
#define TACHYON_WGMMA_N128_D TACHYON_WGMMA_D(0), TACHYON_WGMMA_D(1), TACHYON_WGMMA_D(2), TACHYON_WGMMA_D(3), TACHYON_WGMMA_D(4), TACHYON_WGMMA_D(5), TACHYON_WGMMA_D(6), TACHYON_WGMMA_D(7), TACHYON_WGMMA_D(8), TACHYON_WGMMA_D(9), TACHYON_WGMMA_D(10), TACHYON_WGMMA_D(11), TACHYON_WGMMA_D(12), TACHYON_WGMMA_D(13), TACHYON_WGMMA_D(14), TACHYON_WGMMA_D(15)
#if TACHYON_WGMMA
#define TACHYON_WGMMA_ASM(N, T)                                                                                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " TACHYON_WGMMA_N##N##_PRED ", 0;\n"                            \
               "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." #T "." #T " " TACHYON_WGMMA_N##N##_OPERANDS        \
               : TACHYON_WGMMA_N##N##_D                                                                             \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(static_cast<int>(accumulate)), "n"(TRANS_B) \
               : "memory");
#else
#define TACHYON_WGMMA_ASM(N, T)
#endif
#define TACHYON_WGMMA_FN(N, T)                                                                                        \
  template <int TRANS_B>                                                                                            \
  __device__ __forceinline__ void wgmma_m64n##N##k16_##T(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t desc, \
                                                         bool accumulate) {                                         \
    TACHYON_WGMMA_ASM(N, T)                                                                                         \
  }
TACHYON_WGMMA_FN(64, f16)
TACHYON_WGMMA_FN(64, bf16)
TACHYON_WGMMA_FN(128, f16)
TACHYON_WGMMA_FN(128, bf16)

template <int N, bool F16, int TRANS_B>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t desc, bool accumulate) {
  static_assert(N == 64 || N == 128, "m64n64k16 and m64n128k16 only");
  if constexpr (N == 64) {
    if constexpr (F16) wgmma_m64n64k16_f16<TRANS_B>(d, a, desc, accumulate);
    else wgmma_m64n64k16_bf16<TRANS_B>(d, a, desc, accumulate);
  } else {
    if constexpr (F16) wgmma_m64n128k16_f16<TRANS_B>(d, a, desc, accumulate);
    else wgmma_m64n128k16_bf16<TRANS_B>(d, a, desc, accumulate);
  }
}

// d (64 x 64, float32) = a (64 x 32, E4M3, in registers) · b (32 x 64, E4M3, K-major in shared
// memory: each of its 64 columns holds 32 contiguous bytes) (+ d when accumulate). A warp's a holds
// its 16 rows as mma.m16n8k32's 8-bit A fragment: register i, row lane / 4 + 8 (i & 1), columns
// 16 (i >> 1) + 4 (lane % 4) + 0-3, lowest byte first. 8-bit operands take no transposes.
__device__ __forceinline__ void wgmma_m64n64k32_e4m3(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc, bool accumulate) {
#if TACHYON_WGMMA
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
               "%24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"
               : TACHYON_WGMMA_N64_D
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(static_cast<int>(accumulate))
               : "memory");
#endif
}

// The same at N = 128 (the prefill kernel's P V with FP8 values: P as E4M3 A fragments, V^T K-major).
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[16][4], const uint32_t (&a)[4], uint64_t desc, bool accumulate) {
#if TACHYON_WGMMA
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
               "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, "
               "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
               : TACHYON_WGMMA_N128_D
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(static_cast<int>(accumulate))
               : "memory");
#endif
}

// d (64 x N, float32, N / 8 tiles of C fragments) = a (64 x K) · b (K x N) (+ d when accumulate),
// both operands read by the tensor cores from shared memory through descriptors, both K-major
// (no transposes): E4M3 with K = 32 a step, or bf16 with K = 16, for N = 8, 16, 32 and 64. The asm's
// operands: d's N / 2 registers, a's and b's descriptors, the accumulate flag.
#define TACHYON_SS_N8_D TACHYON_WGMMA_D(0)
#define TACHYON_SS_N16_D TACHYON_SS_N8_D, TACHYON_WGMMA_D(1)
#define TACHYON_SS_N32_D TACHYON_SS_N16_D, TACHYON_WGMMA_D(2), TACHYON_WGMMA_D(3)
#define TACHYON_SS_N64_D TACHYON_SS_N32_D, TACHYON_WGMMA_D(4), TACHYON_WGMMA_D(5), TACHYON_WGMMA_D(6), TACHYON_WGMMA_D(7)
#define TACHYON_SS_N8_OPERANDS "{%0, %1, %2, %3}, %4, %5, p"
#define TACHYON_SS_N8_PRED "%6"
#define TACHYON_SS_N16_OPERANDS "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p"
#define TACHYON_SS_N16_PRED "%10"
#define TACHYON_SS_N32_OPERANDS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p"
#define TACHYON_SS_N32_PRED "%18"
#define TACHYON_SS_N64_OPERANDS                                                                                           \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, " \
  "%25, %26, %27, %28, %29, %30, %31}, %32, %33, p"
#define TACHYON_SS_N64_PRED "%34"
#if TACHYON_WGMMA
// TAIL: ", 0, 0" for bf16 (imm-trans-a, imm-trans-b: both K-major); FP8 takes no transposes.
#define TACHYON_WGMMA_SS_ASM(N, KSTEP, T, TAIL)                                                                         \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " TACHYON_SS_N##N##_PRED ", 0;\n" \
               "wgmma.mma_async.sync.aligned.m64n" #N "k" #KSTEP ".f32." #T "." #T " "                            \
               TACHYON_SS_N##N##_OPERANDS ", 1, 1" TAIL ";\n}\n"              \
               : TACHYON_SS_N##N##_D                                                                                  \
               : "l"(a_desc), "l"(b_desc), "r"(static_cast<int>(accumulate))                                          \
               : "memory");
#else
#define TACHYON_WGMMA_SS_ASM(N, KSTEP, T, TAIL)
#endif
#define TACHYON_WGMMA_SS_FN(N, KSTEP, T, TAIL)                                                                        \
  __device__ __forceinline__ void wgmma_ss_m64n##N##k##KSTEP##_##T(float (&d)[N / 8][4], uint64_t a_desc, uint64_t b_desc, \
                                                                  bool accumulate) {                                  \
    TACHYON_WGMMA_SS_ASM(N, KSTEP, T, TAIL)                                                                           \
  }
TACHYON_WGMMA_SS_FN(8, 32, e4m3, "")
TACHYON_WGMMA_SS_FN(16, 32, e4m3, "")
TACHYON_WGMMA_SS_FN(32, 32, e4m3, "")
TACHYON_WGMMA_SS_FN(64, 32, e4m3, "")
TACHYON_WGMMA_SS_FN(8, 16, bf16, ", 0, 0")
TACHYON_WGMMA_SS_FN(16, 16, bf16, ", 0, 0")
TACHYON_WGMMA_SS_FN(32, 16, bf16, ", 0, 0")
TACHYON_WGMMA_SS_FN(64, 16, bf16, ", 0, 0")

// The E4M3 products with A from registers instead (the few-row GEMM's TACHYON_ROW_GEMM_A_REGISTERS
// build) at N = 8, 16 and 32 (64 is wgmma_m64n64k32_e4m3 above): a warp's 16 rows of A as there, B
// K-major in shared memory through its descriptor. The asm's operands: d's N / 2 registers, a's 4,
// the descriptor, the accumulate flag.
#define TACHYON_RS_N8_OPERANDS "{%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p"
#define TACHYON_RS_N8_PRED "%9"
#define TACHYON_RS_N16_OPERANDS "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p"
#define TACHYON_RS_N16_PRED "%13"
#define TACHYON_RS_N32_OPERANDS \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p"
#define TACHYON_RS_N32_PRED "%21"
#if TACHYON_WGMMA
#define TACHYON_WGMMA_RS_E4M3_ASM(N)                                                                                    \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " TACHYON_RS_N##N##_PRED ", 0;\n"                                    \
               "wgmma.mma_async.sync.aligned.m64n" #N "k32.f32.e4m3.e4m3 " TACHYON_RS_N##N##_OPERANDS ", 1, 1;\n}\n"   \
               : TACHYON_SS_N##N##_D                                                                                  \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(static_cast<int>(accumulate))           \
               : "memory");
#else
#define TACHYON_WGMMA_RS_E4M3_ASM(N)
#endif
#define TACHYON_WGMMA_RS_E4M3_FN(N)                                                                                     \
  __device__ __forceinline__ void wgmma_rs_m64n##N##k32_e4m3(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b_desc, \
                                                            bool accumulate) {                                        \
    TACHYON_WGMMA_RS_E4M3_ASM(N)                                                                                        \
  }
TACHYON_WGMMA_RS_E4M3_FN(8)
TACHYON_WGMMA_RS_E4M3_FN(16)
TACHYON_WGMMA_RS_E4M3_FN(32)

template <int N>
__device__ __forceinline__ void wgmma_rs_32_bytes_e4m3(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b_desc, bool accumulate) {
  static_assert(N == 8 || N == 16 || N == 32 || N == 64, "m64n8, n16, n32 and n64 only");
  if constexpr (N == 8) wgmma_rs_m64n8k32_e4m3(d, a, b_desc, accumulate);
  else if constexpr (N == 16) wgmma_rs_m64n16k32_e4m3(d, a, b_desc, accumulate);
  else if constexpr (N == 32) wgmma_rs_m64n32k32_e4m3(d, a, b_desc, accumulate);
  else wgmma_m64n64k32_e4m3(d, a, b_desc, accumulate);  // the prefill kernel's, the same instruction
}

// One k-step of 32 bytes of both operands' rows: k32 for E4M3 (FP8), k16 for bf16.
template <int N, bool FP8>
__device__ __forceinline__ void wgmma_ss_32_bytes(float (&d)[N / 8][4], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
  static_assert(N == 8 || N == 16 || N == 32 || N == 64, "m64n8, n16, n32 and n64 only");
  if constexpr (FP8) {
    if constexpr (N == 8) wgmma_ss_m64n8k32_e4m3(d, a_desc, b_desc, accumulate);
    else if constexpr (N == 16) wgmma_ss_m64n16k32_e4m3(d, a_desc, b_desc, accumulate);
    else if constexpr (N == 32) wgmma_ss_m64n32k32_e4m3(d, a_desc, b_desc, accumulate);
    else wgmma_ss_m64n64k32_e4m3(d, a_desc, b_desc, accumulate);
  } else {
    if constexpr (N == 8) wgmma_ss_m64n8k16_bf16(d, a_desc, b_desc, accumulate);
    else if constexpr (N == 16) wgmma_ss_m64n16k16_bf16(d, a_desc, b_desc, accumulate);
    else if constexpr (N == 32) wgmma_ss_m64n32k16_bf16(d, a_desc, b_desc, accumulate);
    else wgmma_ss_m64n64k16_bf16(d, a_desc, b_desc, accumulate);
  }
}

}  // namespace tachyon
