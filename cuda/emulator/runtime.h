// The emulated device's internals, shared by the runtime (cudart), the library fakes (cuBLAS,
// cuDNN) and the emulator's own tests. Nothing here is part of the CUDA API: code under test
// (cuda/, kernels/cuda/) never includes it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

// For the library fakes' inner loops over their own packed copies: not instrumented by the
// sanitizer builds (the device operands are range-checked and read, instrumented, when packed).
#define BP_EMU_UNSANITIZED __attribute__((no_sanitize("address", "undefined", "thread")))

namespace bp_emu {

// The fakes' inner loops come in two builds: AVX2+FMA (fused multiply-adds, as the GPU) where
// the CPU has them, else the baseline.
template <class Fn>
Fn pick_by_cpu(Fn avx2_fma, Fn baseline) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? avx2_fma : baseline;
}

// --- device memory: separate, registered heap allocations (NaN bytes when allocated) ---
// Whether [p, p + bytes) lies inside one live device allocation. bytes == 0 checks p alone.
bool is_device_range(const void* p, size_t bytes);
// As is_device_range; on failure records a sticky cudaErrorIllegalAddress whose message names
// `who` and `what` (e.g. "cublasSgemm", "A: 64 x 32, lda 64") and returns false.
bool check_device_range(const void* p, size_t bytes, const char* who, const std::string& what);
// Fills with 0xFF bytes: a NaN in every float and double lane (as uninitialised memory shows).
void fill_nan_bytes(void* p, size_t bytes);

// --- streams ---
// Runs `op` in stream order: queued now, executed when the stream is drained (a
// synchronisation), or recorded into the graph when the stream is capturing. Returns
// cudaSuccess, or the capture/sticky error that stops it from being queued.
cudaError_t enqueue(cudaStream_t stream, const char* name, std::function<void()> op);
// Runs everything queued on `stream` (the legacy default stream when null) now. Illegal while
// capturing (as cudaStreamSynchronize); returns the first sticky error.
cudaError_t drain(cudaStream_t stream);
bool is_capturing(cudaStream_t stream);

// --- errors ---
// Records a sticky execution error (the device is unusable until cudaDeviceReset, as after a
// faulting kernel) with a message printed to stderr at once, naming what went wrong.
void fail_execution(cudaError_t code, const std::string& message);
// The last sticky error's message ("" if none) — for tests and for bp's error texts.
std::string last_error_message();

// --- emulator settings (environment, or set by tests) ---
enum class BlockOrder { Ascending, Descending, Shuffled };
struct Settings {
  BlockOrder block_order = BlockOrder::Ascending;  // BRAINPROP_EMU_BLOCK_ORDER=asc|desc|shuffle[:SEED]
  uint64_t shuffle_seed = 1;
  size_t device_memory = size_t(143771) << 20;      // BRAINPROP_EMU_DEVICE_MEMORY=bytes[K|M|G]
  int64_t fail_allocation = 0;                      // BRAINPROP_EMU_FAIL_ALLOC=N: the Nth allocation fails
  bool memory_pools = true;                         // BRAINPROP_EMU_NO_MEMPOOLS=1 reports none
  bool abort_on_error = false;                      // BRAINPROP_EMU_ABORT=1: abort() at the fault (gdb)
  bool no_device = false;                           // BRAINPROP_EMU_NO_DEVICE=1: the runtime finds none
  bool synchronous = false;                         // BRAINPROP_EMU_SYNC=1: run each op when issued
};
Settings& settings();
// Clears every allocation, stream, graph and error (cudaDeviceReset) and resets the counters.
void reset_device();
int64_t allocation_count();  // allocations made since the last reset

}  // namespace bp_emu
