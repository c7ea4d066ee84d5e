// Kernel launches and the per-thread built-ins of the emulated device. A launch copies its
// arguments (as CUDA copies kernel parameters), checks every pointer argument against the
// device-memory registry, and queues the grid on the stream; when the stream runs it, every
// thread of every block executes the kernel body on its own fiber, blocks one at a time in
// the configured order, with __syncthreads() a real barrier of the block's threads.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace bp_emu {

// The built-ins of the thread that is running (set by the scheduler at every switch).
struct ThreadCoordinates {
  uint3 thread_idx{0, 0, 0};
  uint3 block_idx{0, 0, 0};
  dim3 block_dim{1, 1, 1};
  dim3 grid_dim{1, 1, 1};
};
extern thread_local ThreadCoordinates current;

// One thread's work: the kernel called with the launch's copy of its arguments.
struct KernelBody {
  virtual ~KernelBody() = default;
  virtual void run_thread() = 0;
};

template <class Fn, class... Args>
struct BoundKernel final : KernelBody {
  Fn fn;
  std::tuple<Args...> args;
  BoundKernel(Fn f, const Args&... a) : fn(f), args(a...) {}
  void run_thread() override { std::apply(fn, args); }
};

struct LaunchSite {
  const char* kernel;
  const char* file;
  int line;
};

// A pointer argument as launched (its position, for the error message).
struct PointerArgument {
  int position;
  const void* value;
};

cudaError_t launch_kernel(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes,
                          cudaStream_t stream, std::shared_ptr<KernelBody> body,
                          const std::vector<PointerArgument>& pointers);

template <class T>
void collect_pointer(std::vector<PointerArgument>& out, int position, const T& value) {
  if constexpr (std::is_pointer_v<T>) out.push_back({position, static_cast<const void*>(value)});
}

template <class Fn, class... Args>
cudaError_t launch(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Fn fn, const Args&... args) {
  std::vector<PointerArgument> pointers;
  int position = 0;
  (collect_pointer(pointers, position++, args), ...);
  auto body = std::make_shared<BoundKernel<Fn, std::decay_t<Args>...>>(fn, args...);
  return launch_kernel(site, grid, block, shared_bytes, stream, std::move(body), pointers);
}

// __syncthreads(): the barrier of the running block; the call site identifies the barrier.
void block_barrier(const char* file, int line);

}  // namespace bp_emu

#define threadIdx (::bp_emu::current.thread_idx)
#define blockIdx (::bp_emu::current.block_idx)
#define blockDim (::bp_emu::current.block_dim)
#define gridDim (::bp_emu::current.grid_dim)
constexpr int warpSize = 32;

#define __syncthreads() ::bp_emu::block_barrier(__FILE__, __LINE__)

// Device-side min/max of integers, which CUDA provides as global functions.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
