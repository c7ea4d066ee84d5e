// Error state of the emulated runtime: the last error (cudaGetLastError), the sticky error of
// a faulted device, and the error names and strings.
#include <cstdio>
#include <cstdlib>

#include "state.h"

namespace bp_emu::detail {
namespace {
cudaError_t g_last = cudaSuccess;
cudaError_t g_sticky = cudaSuccess;
std::string g_sticky_message;
}  // namespace

std::recursive_mutex& lock() {
  static std::recursive_mutex m;
  return m;
}

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}
cudaError_t sticky() { return g_sticky; }
void clear_errors() {
  g_last = cudaSuccess;
  g_sticky = cudaSuccess;
  g_sticky_message.clear();
}

}  // namespace bp_emu::detail

namespace bp_emu {

void fail_execution(cudaError_t code, const std::string& message) {
  using namespace detail;
  std::fprintf(stderr, "brainprop-emu: %s: %s\n", cudaGetErrorName(code), message.c_str());
  std::fflush(stderr);
  if (settings().abort_on_error) std::abort();
  if (g_sticky == cudaSuccess) {
    g_sticky = code;
    g_sticky_message = message;
  }
  g_last = code;
}

std::string last_error_message() { return detail::g_sticky_message; }

}  // namespace bp_emu

using bp_emu::detail::record;

extern "C" {

cudaError_t cudaGetLastError(void) {
  std::lock_guard<std::recursive_mutex> guard(bp_emu::detail::lock());
  if (bp_emu::detail::g_sticky != cudaSuccess) return bp_emu::detail::g_sticky;
  const cudaError_t e = bp_emu::detail::g_last;
  bp_emu::detail::g_last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  std::lock_guard<std::recursive_mutex> guard(bp_emu::detail::lock());
  if (bp_emu::detail::g_sticky != cudaSuccess) return bp_emu::detail::g_sticky;
  return bp_emu::detail::g_last;
}

#define BP_EMU_ERRORS(X)                                                                        \
  X(cudaSuccess, "no error")                                                                  \
  X(cudaErrorInvalidValue, "invalid argument")                                                \
  X(cudaErrorMemoryAllocation, "out of memory")                                               \
  X(cudaErrorInitializationError, "initialization error")                                     \
  X(cudaErrorInvalidConfiguration, "invalid configuration argument")                          \
  X(cudaErrorInvalidPitchValue, "invalid pitch argument")                                     \
  X(cudaErrorInvalidDevicePointer, "invalid device pointer")                                  \
  X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                     \
  X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                  \
  X(cudaErrorInvalidDevice, "invalid device ordinal")                                         \
  X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                \
  X(cudaErrorNotReady, "device not ready")                                                    \
  X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                      \
  X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")                 \
  X(cudaErrorLaunchFailure, "unspecified launch failure")                                     \
  X(cudaErrorNotSupported, "operation not supported")                                         \
  X(cudaErrorIllegalState, "the operation cannot be performed in the present state")          \
  X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")    \
  X(cudaErrorStreamCaptureInvalidated,                                                        \
    "operation failed due to a previous error during capture")                                \
  X(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream")              \
  X(cudaErrorStreamCaptureImplicit,                                                           \
    "operation would make the legacy stream depend on a capturing blocking stream")           \
  X(cudaErrorStreamCaptureWrongThread,                                                        \
    "attempt to terminate a thread-local capture sequence from another thread")               \
  X(cudaErrorUnknown, "unknown error")

const char* cudaGetErrorName(cudaError_t error) {
#define BP_EMU_NAME(code, text) \
  case code:                    \
    return #code;
  switch (error) { BP_EMU_ERRORS(BP_EMU_NAME) default: return "cudaErrorUnknown"; }
#undef BP_EMU_NAME
}

const char* cudaGetErrorString(cudaError_t error) {
#define BP_EMU_TEXT(code, text) \
  case code:                    \
    return text;
  switch (error) { BP_EMU_ERRORS(BP_EMU_TEXT) default: return "unrecognized error code"; }
#undef BP_EMU_TEXT
}

}  // extern "C"
