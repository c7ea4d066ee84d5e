// Internal state of the emulated runtime, shared by its translation units (memory, streams,
// device, scheduler). One emulated device; the host side is expected to be one thread at a
// time (as the CUDA backend is), guarded by one mutex all the same.
#pragma once
#include <cuda_runtime.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime.h"

struct StreamOp {
  const char* name;
  std::function<void()> run;
};

// cudaStream_t points at one of these (the header only declares the struct).
struct CUstream_st {
  unsigned flags = 0;  // cudaStreamNonBlocking or 0 (synchronises with the legacy stream)
  std::deque<StreamOp> queue;
  bool capturing = false;
  bool capture_invalidated = false;
  cudaStreamCaptureMode capture_mode = cudaStreamCaptureModeGlobal;
  std::vector<StreamOp> captured;
  unsigned long long capture_id = 0;
  bool running = false;  // its queue is being run
};

struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;   // cudaEventRecord was called
  bool completed = false;  // the stream reached the record
  double time_ms = 0;      // host time at completion (steady clock)
  cudaStream_t stream = nullptr;
};

struct CUgraph_st {
  std::vector<StreamOp> ops;
};
struct CUgraphExec_st {
  std::vector<StreamOp> ops;
};
struct CUmemPoolHandle_st {
  unsigned long long release_threshold = 0;
};

namespace bp_emu::detail {

std::recursive_mutex& lock();

// --- errors ---
cudaError_t record(cudaError_t e);  // as the last error (when not success); returns e
cudaError_t sticky();               // cudaSuccess unless the device has faulted
void clear_errors();

// --- streams ---
CUstream_st* resolve(cudaStream_t s);  // null (legacy), cudaStreamLegacy -> the default stream
bool valid_stream(cudaStream_t s);
bool any_capture_active();
// An API call that is illegal while a capture is in progress: invalidates every capture and
// returns cudaErrorStreamCaptureUnsupported; cudaSuccess when nothing is capturing.
cudaError_t refuse_during_capture();
cudaError_t drain_all();
cudaError_t drain_for_legacy();  // the legacy stream's implicit synchronisation
double now_ms();
void reset_streams();

// --- memory ---
void reset_memory();
// A kernel's pointer argument as it starts: null or device memory, else a sticky fault.
bool check_kernel_pointer(const char* kernel, int position, const void* p);

// --- scheduler ---
void reset_scheduler();

}  // namespace bp_emu::detail
