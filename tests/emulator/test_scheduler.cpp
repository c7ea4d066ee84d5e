// The emulated device's execution model: every thread of a block runs, __syncthreads() is a
// real barrier (and a divergent one is reported), shared memory starts as NaN in every block,
// blocks run in the selected order, and sm_90's launch limits are enforced.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda/kernel_launch.cuh"
#include "emu_runtime_helpers.h"

namespace bp_emu::test {
namespace {

constexpr int kBlock = 128;

// out[t] = shared value written by thread t + 1 (mod block): needs the barrier between.
__global__ void rotate_through_shared(float* out, bool with_barrier) {
  __shared__ float cells[kBlock];
  const int t = int(threadIdx.x);
  cells[t] = float(blockIdx.x * 1000 + t);
  if (with_barrier) __syncthreads();
  out[blockIdx.x * kBlock + t] = cells[(t + 1) % kBlock];
}

// A tree sum in shared memory over a 2-D block (16 x 8): many barriers, every thread reaches each.
__global__ void block_sum_2d(const float* in, float* out) {
  __shared__ float cells[128];
  const int t = int(threadIdx.y * blockDim.x + threadIdx.x);
  cells[t] = in[blockIdx.x * 128 + t];
  __syncthreads();
  for (int width = 64; width > 0; width /= 2) {
    if (t < width) cells[t] += cells[t + width];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = cells[0];
}

__global__ void early_exit_then_barrier(float* out) {
  if (threadIdx.x < 5) return;
  __syncthreads();
  out[threadIdx.x] = 1.f;
}

__global__ void two_barriers(float* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.f;
}

__global__ void read_unwritten_shared(float* out) {
  __shared__ float cells[32];
  if (blockIdx.x == 0) cells[threadIdx.x] = 7.f;  // only the first block writes
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = cells[threadIdx.x];
}

// Each block records when it ran: thread 0 takes a ticket from a counter in device memory.
__global__ void take_ticket(int* counter, int* ticket) {
  if (threadIdx.x == 0) ticket[blockIdx.x] = (*counter)++;
}

__global__ void write_coordinates(int* out) {
  const int block = int(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
  const int thread = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
  out[block * int(blockDim.x * blockDim.y * blockDim.z) + thread] = block * 100000 + thread;
}

__global__ void noop(int*) {}

using EmulatedScheduler = EmulatedDevice;

TEST_F(EmulatedScheduler, EveryThreadOfEveryBlockRunsOnce) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const int blocks = 12, threads = 24;
  DeviceBuffer<int> out(blocks * threads);
  BP_LAUNCH(write_coordinates, grid, block, 0, nullptr, out.ptr);
  const std::vector<int> v = out.read();
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) ASSERT_EQ(v[size_t(b * threads + t)], b * 100000 + t);
}

TEST_F(EmulatedScheduler, SyncthreadsIsARealBarrier) {
  DeviceBuffer<float> out(3 * kBlock);
  BP_LAUNCH(rotate_through_shared, 3, kBlock, 0, nullptr, out.ptr, true);
  const std::vector<float> v = out.read();
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < kBlock; ++t)
      ASSERT_EQ(v[size_t(b * kBlock + t)], float(b * 1000 + (t + 1) % kBlock)) << b << " " << t;
}

TEST_F(EmulatedScheduler, WithoutTheBarrierUnwrittenSharedMemoryShowsAsNaN) {
  DeviceBuffer<float> out(kBlock);
  BP_LAUNCH(rotate_through_shared, 1, kBlock, 0, nullptr, out.ptr, false);
  const std::vector<float> v = out.read();
  // Thread 0 reads cell 1 before thread 1 has written it (threads run in order between barriers).
  EXPECT_TRUE(std::isnan(v[0]));
}

TEST_F(EmulatedScheduler, ManyBarriersInATwoDimensionalBlock) {
  std::vector<float> in(4 * 128);
  std::iota(in.begin(), in.end(), 0.f);
  DeviceBuffer<float> din(in.size()), out(4);
  din.write(in);
  BP_LAUNCH(block_sum_2d, 4, dim3(16, 8), 0, nullptr, din.ptr, out.ptr);
  const std::vector<float> v = out.read();
  for (int b = 0; b < 4; ++b) {
    double sum = 0;
    for (int i = 0; i < 128; ++i) sum += in[size_t(b * 128 + i)];
    EXPECT_EQ(v[size_t(b)], float(sum));
  }
}

TEST_F(EmulatedScheduler, SharedMemoryIsNaNAtTheStartOfEveryBlock) {
  DeviceBuffer<float> out(2 * 32);
  BP_LAUNCH(read_unwritten_shared, 2, 32, 0, nullptr, out.ptr);
  const std::vector<float> v = out.read();
  EXPECT_EQ(v[0], 7.f);
  EXPECT_TRUE(std::isnan(v[32]));  // the second block did not inherit the first's values
}

TEST_F(EmulatedScheduler, ABarrierSomeThreadsLeftIsDivergent) {
  DeviceBuffer<float> out(32);
  BP_LAUNCH(early_exit_then_barrier, 1, 32, 0, nullptr, out.ptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  EXPECT_NE(last_error_message().find("divergent __syncthreads()"), std::string::npos)
      << last_error_message();
  EXPECT_NE(last_error_message().find("27 of 32 threads wait"), std::string::npos)
      << last_error_message();
  reset_device();
  out.ptr = nullptr;
}

TEST_F(EmulatedScheduler, BarriersAtDifferentCallSitesAreDivergent) {
  DeviceBuffer<float> out(32);
  BP_LAUNCH(two_barriers, 1, 32, 0, nullptr, out.ptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  EXPECT_NE(last_error_message().find("different barriers"), std::string::npos) << last_error_message();
  reset_device();
  out.ptr = nullptr;
  // The device works again after the reset (the stuck fibers were retired).
  DeviceBuffer<float> again(kBlock);
  BP_LAUNCH(rotate_through_shared, 1, kBlock, 0, nullptr, again.ptr, true);
  EXPECT_EQ(again.read()[0], 1.f);
}

std::vector<int> tickets(BlockOrder order, int blocks) {
  settings().block_order = order;
  DeviceBuffer<int> counter(1), ticket{size_t(blocks)};
  counter.write({0});
  BP_LAUNCH(take_ticket, blocks, 32, 0, nullptr, counter.ptr, ticket.ptr);
  return ticket.read();
}

TEST_F(EmulatedScheduler, BlocksRunInTheSelectedOrder) {
  const int n = 50;
  std::vector<int> ascending(n), descending(n);
  std::iota(ascending.begin(), ascending.end(), 0);
  std::iota(descending.rbegin(), descending.rend(), 0);
  EXPECT_EQ(tickets(BlockOrder::Ascending, n), ascending);
  EXPECT_EQ(tickets(BlockOrder::Descending, n), descending);
  settings().shuffle_seed = 7;
  std::vector<int> shuffled = tickets(BlockOrder::Shuffled, n);
  EXPECT_NE(shuffled, ascending);
  EXPECT_NE(shuffled, descending);
  std::sort(shuffled.begin(), shuffled.end());
  EXPECT_EQ(shuffled, ascending);  // a permutation: every block ran once
}

TEST_F(EmulatedScheduler, Sm90LaunchLimits) {
  DeviceBuffer<int> p(1);
  EXPECT_EQ(BP_LAUNCH(noop, 1, 1025, 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // launch errors are not sticky
  EXPECT_EQ(BP_LAUNCH(noop, 1, dim3(32, 32, 2), 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(BP_LAUNCH(noop, 1, dim3(1, 1, 65), 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(BP_LAUNCH(noop, dim3(1, 65536), 32, 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(BP_LAUNCH(noop, dim3(1, 1, 65536), 32, 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(BP_LAUNCH(noop, 0, 32, 0, nullptr, p.ptr), cudaErrorInvalidConfiguration);
  EXPECT_EQ(BP_LAUNCH(noop, 1, 32, 49 << 10, nullptr, p.ptr), cudaErrorInvalidValue);
  EXPECT_EQ(BP_LAUNCH(noop, dim3(0x7fffffffu, 1, 1), 1, 0, nullptr, p.ptr), cudaSuccess);
  cudaGetLastError();
  reset_device();  // the 2^31 - 1 blocks stay queued: drop them
  p.ptr = nullptr;
  EXPECT_EQ(BP_LAUNCH(noop, dim3(64, 65535, 1), dim3(32, 32), 0, nullptr, nullptr), cudaSuccess);
  reset_device();
}

#if defined(__has_feature)
#if !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer)
// A wild pointer inside a struct argument (not checked at launch) faults the process; the
// emulator names the kernel, block and thread first. (Sanitizer builds report it themselves.)
struct WildTarget {
  float* p;
};
__global__ void write_through(WildTarget target) {
  if (blockIdx.x == 2 && threadIdx.x == 5) target.p[0] = 1.f;
}
void run_wild_write() {
  BP_LAUNCH(write_through, 3, 32, 0, nullptr, WildTarget{reinterpret_cast<float*>(uintptr_t(16))});
  cudaDeviceSynchronize();
}
TEST(EmulatedFaults, AWildAccessNamesTheKernelBlockAndThread) {
  EXPECT_DEATH(run_wild_write(), "segmentation fault in kernel write_through, block \\(2, 0, 0\\), thread \\(5, 0, 0\\)");
}
#endif
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
}  // namespace
}  // namespace bp_emu::test
// A race report ends the process (the death test below relies on it), whatever TSAN_OPTIONS says.
extern "C" const char* __tsan_default_options() { return "halt_on_error=1"; }
namespace bp_emu::test {
namespace {

// Under ThreadSanitizer the threads of a block are concurrent to TSan: a shared-memory read of
// another thread's write without a barrier between them is reported (and halts the process).
__global__ void tree_sum_without_loop_barrier(const float* in, float* out) {
  __shared__ float cells[128];
  const int t = int(threadIdx.x);
  cells[t] = in[t];
  __syncthreads();
  for (int width = 64; width > 0; width /= 2)
    if (t < width) cells[t] += cells[t + width];  // the barrier after each level is missing
  if (t == 0) out[0] = cells[0];
}

void run_tree_sum_without_loop_barrier() {
  DeviceBuffer<float> in(128), out(1);
  in.write(std::vector<float>(128, 1.f));
  BP_LAUNCH(tree_sum_without_loop_barrier, 1, 128, 0, nullptr, in.ptr, out.ptr);
  out.read();
}

TEST(TsanSeesAMissingBarrier, InATreeReduction) {
  EXPECT_DEATH(run_tree_sum_without_loop_barrier(), "ThreadSanitizer: data race");
}

TEST(TsanSeesAMissingBarrier, BetweenAWriteAndAnotherThreadsRead) {
  EXPECT_DEATH(
      {
        DeviceBuffer<float> out(kBlock);
        BP_LAUNCH(rotate_through_shared, 1, kBlock, 0, nullptr, out.ptr, false);
        out.read();
      },
      "ThreadSanitizer: data race");
}
#endif
#endif

}  // namespace
}  // namespace bp_emu::test
