// The emulated device itself: one sm_90 GPU with the H200's launch limits and memory size
// (settings().device_memory), its properties and attributes, versions, device-wide
// synchronisation and reset; and the emulator's settings, read from the environment.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "state.h"

namespace bp_emu {
namespace {

size_t parse_bytes(const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  double scale = 1;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': scale = 1024.0; break;
      case 'm': case 'M': scale = 1024.0 * 1024; break;
      case 'g': case 'G': scale = 1024.0 * 1024 * 1024; break;
      default: scale = 0;
    }
  }
  if (!(value > 0) || scale == 0) {
    std::fprintf(stderr, "brainprop-emu: BRAINPROP_EMU_DEVICE_MEMORY=%s is not a size (e.g. 512M)\n", text);
    std::exit(2);
  }
  return size_t(value * scale);
}

Settings from_environment() {
  Settings s;
  if (const char* order = std::getenv("BRAINPROP_EMU_BLOCK_ORDER")) {
    const std::string o = order;
    if (o == "asc" || o == "ascending") {
      s.block_order = BlockOrder::Ascending;
    } else if (o == "desc" || o == "descending") {
      s.block_order = BlockOrder::Descending;
    } else if (o.rfind("shuffle", 0) == 0) {
      s.block_order = BlockOrder::Shuffled;
      if (o.size() > 8 && o[7] == ':') s.shuffle_seed = std::strtoull(o.c_str() + 8, nullptr, 10);
    } else {
      std::fprintf(stderr, "brainprop-emu: BRAINPROP_EMU_BLOCK_ORDER=%s: use asc, desc or shuffle[:SEED]\n",
                   order);
      std::exit(2);
    }
  }
  if (const char* mem = std::getenv("BRAINPROP_EMU_DEVICE_MEMORY")) s.device_memory = parse_bytes(mem);
  if (const char* n = std::getenv("BRAINPROP_EMU_FAIL_ALLOC")) s.fail_allocation = std::atoll(n);
  if (const char* v = std::getenv("BRAINPROP_EMU_NO_MEMPOOLS")) s.memory_pools = std::strcmp(v, "1") != 0;
  if (const char* v = std::getenv("BRAINPROP_EMU_ABORT")) s.abort_on_error = std::strcmp(v, "1") == 0;
  if (const char* v = std::getenv("BRAINPROP_EMU_NO_DEVICE")) s.no_device = std::strcmp(v, "1") == 0;
  if (const char* v = std::getenv("BRAINPROP_EMU_SYNC")) s.synchronous = std::strcmp(v, "1") == 0;
  return s;
}

}  // namespace

Settings& settings() {
  static Settings s = from_environment();
  return s;
}

void reset_device() {
  std::lock_guard<std::recursive_mutex> guard(detail::lock());
  detail::reset_streams();
  detail::reset_memory();
  detail::reset_scheduler();
  detail::clear_errors();
}

}  // namespace bp_emu

using bp_emu::detail::record;

namespace {

constexpr int kSmCount = 132;                 // H200 SXM
constexpr size_t kSharedPerBlock = 48 << 10;  // without the opt-in attribute
constexpr size_t kSharedPerBlockOptin = 227 << 10;

cudaError_t check_device(int device) {
  return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice);
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return record(cudaErrorInvalidValue);
  *count = 0;
  if (bp_emu::settings().no_device) return record(cudaErrorNoDevice);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return check_device(device); }

cudaError_t cudaGetDevice(int* device) {
  if (!device) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return record(cudaErrorInvalidValue);
  if (check_device(device) != cudaSuccess) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "brainprop emulated device (H200 limits, sm_90)");
  prop->totalGlobalMem = bp_emu::settings().device_memory;
  prop->sharedMemPerBlock = kSharedPerBlock;
  prop->sharedMemPerBlockOptin = kSharedPerBlockOptin;
  prop->sharedMemPerMultiprocessor = 228 << 10;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 64 << 10;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = kSmCount;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->l2CacheSize = 50 << 20;
  prop->memoryBusWidth = 6144;
  prop->concurrentKernels = 1;
  prop->asyncEngineCount = 2;
  prop->unifiedAddressing = 1;
  prop->managedMemory = 1;
  prop->memoryPoolsSupported = bp_emu::settings().memory_pools ? 1 : 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return record(cudaErrorInvalidValue);
  if (check_device(device) != cudaSuccess) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxBlockDimX: *value = 1024; break;
    case cudaDevAttrMaxBlockDimY: *value = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *value = 64; break;
    case cudaDevAttrMaxGridDimX: *value = 0x7fffffff; break;
    case cudaDevAttrMaxGridDimY: *value = 65535; break;
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = int(kSharedPerBlock); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(kSharedPerBlockOptin); break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = kSmCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMemoryPoolsSupported: *value = bp_emu::settings().memory_pools ? 1 : 0; break;
    case cudaDevAttrUnifiedAddressing: *value = 1; break;
    default: return record(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (!version) return record(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return record(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard<std::recursive_mutex> guard(bp_emu::detail::lock());
  if (const cudaError_t e = bp_emu::detail::refuse_during_capture()) return e;
  return record(bp_emu::detail::drain_all());
}

cudaError_t cudaDeviceReset(void) {
  bp_emu::reset_device();
  return cudaSuccess;
}

}  // extern "C"
