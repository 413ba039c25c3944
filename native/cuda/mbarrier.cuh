// Shared-memory barriers for warp-specialized kernels (sm_90): an mbarrier completes a phase once
// its expected number of arrivals came, and a thread waits for a phase by its parity, so a
// producer warpgroup and consumer warpgroups hand ring slots to each other without a block-wide
// __syncthreads. Named barriers (bar.sync id, count) sync a subset of the block's warps; setmaxnreg
// moves registers between warpgroups (sm_90a). Built only where TACHYON_WGMMA (wgmma.cuh).
#pragma once
#include <cstdint>

#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {

// Once, by one thread, before a __syncthreads: a barrier whose phases complete after `count` arrivals.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count) {
#if TACHYON_WGMMA
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
#endif
}

// After mbarrier_init, before the __syncthreads: the initialized barriers visible to the copy
// engine's completions (the async proxy), not only to the block's threads.
__device__ __forceinline__ void mbarrier_init_fence() {
#if TACHYON_WGMMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// This thread's arrival (release: its earlier shared-memory writes are visible to whoever waits).
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if TACHYON_WGMMA
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_address(bar)) : "memory");
#endif
}

// Waits until the phase of this parity has completed (acquire). A fresh barrier is in phase 0, so
// waiting for parity 1 returns at once: producers start there for slots that begin empty.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#if TACHYON_WGMMA
  asm volatile(
      "{\n.reg .pred done;\nwait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(smem_address(bar)),
      "r"(parity)
      : "memory");
#else
  __trap();  // only sm_90a kernels hand slots over this way; elsewhere a wait would be a race
#endif
}

// This thread's arrival, and `bytes` more that the phase waits for (copies completing on it).
__device__ __forceinline__ void mbarrier_expect_bytes(uint64_t* bar, uint32_t bytes) {
#if TACHYON_WGMMA
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes) : "memory");
#endif
}

// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global src to shared dst by the
// copy engine, counted on bar's phase as they land (no tensor map).
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if TACHYON_WGMMA
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_address(dst)),
               "l"(src), "r"(bytes), "r"(smem_address(bar))
               : "memory");
#endif
}

// The `count` threads of the warps that call it with this id (not 0: __syncthreads' barrier).
template <int ID, int COUNT>
__device__ __forceinline__ void named_barrier_sync() {
  static_assert(ID > 0 && ID < 16 && COUNT % 32 == 0, "barrier 1-15, whole warps");
  asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(COUNT) : "memory");
}

// The same with the id in a register (warp-uniform), and its arrive-only half: the calling warps
// count toward the barrier's `count` without waiting for it.
template <int COUNT>
__device__ __forceinline__ void named_barrier_sync(int id) {
  static_assert(COUNT % 32 == 0, "whole warps");
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "n"(COUNT) : "memory");
}
template <int COUNT>
__device__ __forceinline__ void named_barrier_arrive(int id) {
  static_assert(COUNT % 32 == 0, "whole warps");
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "n"(COUNT) : "memory");
}

// Registers a thread of this warpgroup may hold from here on (a multiple of 8 in 24-256); every
// warp of the warpgroup executes it. The block's register file is shared: a producer that gives
// some up lets the consumers take more.
template <int N>
__device__ __forceinline__ void warpgroup_registers_dec() {
#if TACHYON_WGMMA
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N>
__device__ __forceinline__ void warpgroup_registers_inc() {
#if TACHYON_WGMMA
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}

}  // namespace tachyon
