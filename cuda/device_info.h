// What the CUDA side of this build can do: compiled architectures and the devices present.
#pragma once
#include <string>
#include <vector>

namespace bp::cuda {

struct DeviceDescription {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  size_t total_memory = 0;   // bytes
  int multiprocessors = 0;
  // Whether this build's kernels run on it (a compiled architecture or PTX it can JIT), and
  // why not when they don't.
  bool usable = false;
  std::string why_unusable;
};

struct CudaInventory {
  bool compiled = false;            // the build includes CUDA code
  std::string compiled_archs;       // e.g. "80-real;90-real;90-virtual"
  int runtime_version = 0;          // CUDA runtime linked in
  int driver_version = 0;           // 0 where no driver is installed
  std::vector<DeviceDescription> devices;
  std::string why_no_device;        // the runtime's message when devices is empty
};

CudaInventory query_cuda();

}  // namespace bp::cuda
