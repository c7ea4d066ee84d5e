// Named ranges on the profiler timeline (NVTX): Nsight Systems shows each layer's forward and
// backward and each phase of a step under these names. Free when no profiler is attached,
// and compiled out in builds without the CUDA toolkit.
#pragma once
#include <string>

#if defined(BRAINPROP_HAVE_NVTX)
#include <nvtx3/nvToolsExt.h>
#endif

namespace bp {

class TraceRange {
 public:
#if defined(BRAINPROP_HAVE_NVTX)
  explicit TraceRange(const char* name) { nvtxRangePushA(name); }
  explicit TraceRange(const std::string& name) { nvtxRangePushA(name.c_str()); }
  ~TraceRange() { nvtxRangePop(); }
#else
  explicit TraceRange(const char*) {}
  explicit TraceRange(const std::string&) {}
#endif
  TraceRange(const TraceRange&) = delete;
  TraceRange& operator=(const TraceRange&) = delete;
};

}  // namespace bp
