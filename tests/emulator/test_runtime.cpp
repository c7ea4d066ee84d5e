// The emulated runtime: device memory (registry, NaN fill, range checks, out of memory),
// stream order (deferred execution), events, stream capture and its illegal calls, graphs.
#include <cmath>

#include "cuda/kernel_launch.cuh"
#include "emu_runtime_helpers.h"

namespace bp_emu::test {
namespace {

__global__ void add_one(float* x, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.0f;
}

using EmulatedMemory = EmulatedDevice;

TEST_F(EmulatedMemory, AllocationsAreNaNAndRegistered) {
  DeviceBuffer<float> p(16);
  EXPECT_TRUE(is_device_range(p.ptr, 16 * sizeof(float)));
  EXPECT_FALSE(is_device_range(p.ptr, 17 * sizeof(float)));
  for (float v : p.read()) EXPECT_TRUE(std::isnan(v));
  float* raw = p.ptr;
  cudaFree(raw);
  p.ptr = nullptr;
  EXPECT_FALSE(is_device_range(raw, 4));
}

TEST_F(EmulatedMemory, CopiesPastAnAllocationAreRefused) {
  DeviceBuffer<float> p(8);
  std::vector<float> host(9, 1.f);
  EXPECT_EQ(cudaMemcpy(p.ptr, host.data(), 9 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  // Wrong direction: a host buffer as the device side.
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 1, 4, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(p.ptr + 4, 0, 5 * sizeof(float)), cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST_F(EmulatedMemory, OutOfMemoryAgainstTheDeviceSize) {
  settings().device_memory = 1 << 20;
  void* a = nullptr;
  void* b = nullptr;
  EXPECT_EQ(cudaMalloc(&a, 800 << 10), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&b, 300 << 10), cudaErrorMemoryAllocation);
  EXPECT_EQ(b, nullptr);
  size_t free_bytes = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  EXPECT_EQ(total, size_t(1) << 20);
  EXPECT_EQ(free_bytes, size_t(224) << 10);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&b, 300 << 10), cudaSuccess);  // not sticky
  cudaFree(b);
}

TEST_F(EmulatedMemory, TheNthAllocationCanBeMadeToFail) {
  settings().fail_allocation = 3;
  void* p[4] = {};
  EXPECT_EQ(cudaMalloc(&p[0], 64), cudaSuccess);
  EXPECT_EQ(cudaMallocAsync(&p[1], 64, nullptr), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&p[2], 64), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaMalloc(&p[3], 64), cudaSuccess);
  for (void* q : p) cudaFree(q);
  cudaGetLastError();
}

TEST_F(EmulatedMemory, WithoutMemoryPoolsTheAsyncAllocatorIsRefused) {
  settings().memory_pools = false;
  int supported = -1;
  EXPECT_EQ(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, 0), cudaSuccess);
  EXPECT_EQ(supported, 0);
  void* p = nullptr;
  EXPECT_EQ(cudaMallocAsync(&p, 64, nullptr), cudaErrorNotSupported);
  cudaMemPool_t pool = nullptr;
  EXPECT_EQ(cudaDeviceGetDefaultMemPool(&pool, 0), cudaErrorNotSupported);
  cudaGetLastError();
}

TEST_F(EmulatedMemory, AHostPointerPassedToAKernelFaultsTheDevice) {
  std::vector<float> host(32, 0.f);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  EXPECT_EQ(BP_LAUNCH(add_one, 1, 32, 0, s, host.data(), 32), cudaSuccess);  // faults when it runs
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorIllegalAddress);
  EXPECT_NE(last_error_message().find("argument 0"), std::string::npos) << last_error_message();
  EXPECT_NE(last_error_message().find("not device memory"), std::string::npos);
  EXPECT_EQ(host[0], 0.f);  // the kernel did not run
  // Sticky, as after a real fault: everything fails until the device is reset.
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 4), cudaErrorIllegalAddress);
  EXPECT_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  EXPECT_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  reset_device();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST_F(EmulatedMemory, FreedMemoryIsNoLongerDeviceMemoryForAQueuedKernel) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* p = nullptr;
  ASSERT_EQ(cudaMallocAsync(&p, 32 * sizeof(float), s), cudaSuccess);
  ASSERT_EQ(cudaFreeAsync(p, s), cudaSuccess);
  EXPECT_EQ(BP_LAUNCH(add_one, 1, 32, 0, s, static_cast<float*>(p), 32), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorIllegalAddress);
}

using EmulatedStreams = EmulatedDevice;

TEST_F(EmulatedStreams, WorkRunsInOrderWhenTheHostWaits) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> x(100);
  x.write(std::vector<float>(100, 1.f));
  std::vector<float> host(100, -1.f);
  BP_LAUNCH(add_one, 1, 128, 0, s, x.ptr, 100);
  BP_LAUNCH(add_one, 4, 32, 0, s, x.ptr, 100);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), x.ptr, 100 * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
  // Nothing has run yet: reading without a synchronisation would see stale data.
  EXPECT_EQ(host[0], -1.f);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  for (float v : host) EXPECT_EQ(v, 3.f);
  cudaStreamDestroy(s);
}

TEST_F(EmulatedStreams, AsyncCopiesFromTheHostReadTheSourceWhenIssued) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> x(4);
  std::vector<float> host(4, 5.f);
  ASSERT_EQ(cudaMemcpyAsync(x.ptr, host.data(), 16, cudaMemcpyHostToDevice, s), cudaSuccess);
  host.assign(4, 9.f);  // pageable memory: CUDA staged it before returning
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(x.read(), std::vector<float>(4, 5.f));
}

TEST_F(EmulatedStreams, EventsTimeTheWorkBetweenThem) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  cudaEvent_t a = nullptr, b = nullptr;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  DeviceBuffer<float> x(1 << 16);
  ASSERT_EQ(cudaEventRecord(a, s), cudaSuccess);
  BP_LAUNCH(add_one, 256, 256, 0, s, x.ptr, 1 << 16);
  ASSERT_EQ(cudaEventRecord(b, s), cudaSuccess);
  float ms = -1;
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady);
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GT(ms, 0.f);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGetLastError();
}

using EmulatedCapture = EmulatedDevice;

TEST_F(EmulatedCapture, AGraphReplaysTheCapturedWorkWithItsArguments) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> x(64);
  x.write(std::vector<float>(64, 0.f));
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  int n = 64;
  BP_LAUNCH(add_one, 2, 32, 0, s, x.ptr, n);
  n = 1;  // the graph keeps the value it was launched with
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(x.read(), std::vector<float>(64, 0.f));  // capture records, runs nothing
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(x.read(), std::vector<float>(64, 3.f));
  cudaGraphExecDestroy(exec);
}

// Each call the runtime forbids during a (thread-local or global) capture: it fails with
// cudaErrorStreamCaptureUnsupported and the capture ends invalidated.
class IllegalDuringCapture : public EmulatedDevice,
                             public ::testing::WithParamInterface<const char*> {};

TEST_P(IllegalDuringCapture, FailsAndInvalidatesTheCapture) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> x(8);
  std::vector<float> host(8);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const std::string call = GetParam();
  void* p = nullptr;
  cudaError_t e = cudaSuccess;
  if (call == "cudaStreamSynchronize") e = cudaStreamSynchronize(s);
  if (call == "cudaDeviceSynchronize") e = cudaDeviceSynchronize();
  if (call == "cudaMalloc") e = cudaMalloc(&p, 64);
  if (call == "cudaMemcpy") e = cudaMemcpy(host.data(), x.ptr, 32, cudaMemcpyDeviceToHost);
  if (call == "cudaMemset") e = cudaMemset(x.ptr, 0, 32);
  EXPECT_EQ(e, cudaErrorStreamCaptureUnsupported) << call;
  EXPECT_EQ(BP_LAUNCH(add_one, 1, 8, 0, s, x.ptr, 8), cudaErrorStreamCaptureInvalidated) << call;
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated) << call;
  EXPECT_EQ(graph, nullptr);
  cudaGetLastError();
  // The stream works again after the failed capture.
  EXPECT_EQ(cudaMemsetAsync(x.ptr, 0, 32, s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
}

INSTANTIATE_TEST_SUITE_P(Calls, IllegalDuringCapture,
                         ::testing::Values("cudaStreamSynchronize", "cudaDeviceSynchronize",
                                           "cudaMalloc", "cudaMemcpy", "cudaMemset"));

}  // namespace
}  // namespace bp_emu::test
