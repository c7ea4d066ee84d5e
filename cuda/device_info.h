// What the CUDA side of this build can do: compiled architectures and the devices present.
#pragma once
#include <algorithm>
#include <cctype>
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

// Bytes this process has allocated from device `device`'s default memory pool and not freed
// (cudaMemPoolAttrUsedMemCurrent: what the CUDA backend's tensors and workspaces hold, without
// other processes' memory), or -1 where the device has no memory pools or the query fails.
long long pool_used_bytes(int device);

// Whether code compiled for `archs` (CMake's list: "80-real;90-real;90-virtual", "86", ...) runs
// on compute capability major.minor: machine code for sm_XY runs on X.Y and later minors of the
// same major; PTX for compute_XY is compiled by the driver for any X.Y or newer. Decided from
// the list alone, so no CUDA context is made on devices this process will not use.
inline bool archs_cover(const std::string& archs, int major, int minor) {
  const int device = major * 10 + minor;
  size_t start = 0;
  while (start <= archs.size()) {
    const size_t end = std::min(archs.find_first_of(";,", start), archs.size());
    const std::string token = archs.substr(start, end - start);
    start = end + 1;
    if (token.empty()) continue;
    size_t digits = 0;
    while (digits < token.size() && std::isdigit(static_cast<unsigned char>(token[digits]))) ++digits;
    if (digits == 0) return true;  // "native", "all", "all-major": built for what is there
    const int arch = std::stoi(token.substr(0, digits));
    const bool real = token.find("-virtual") == std::string::npos;
    const bool virt = token.find("-real") == std::string::npos;
    if (real && arch / 10 == major && arch % 10 <= minor) return true;
    if (virt && arch <= device) return true;
  }
  return false;
}


}  // namespace bp::cuda
