// Device memory of the emulated device: every allocation is its own heap block (so
// AddressSanitizer's redzones catch out-of-bounds device accesses), filled with NaN bytes when
// allocated (unwritten memory shows, as compute-sanitizer's initcheck would flag), and
// registered, so that kernel pointer arguments and copy/set ranges are checked. Out of memory
// is real against settings().device_memory and can be injected (the Nth allocation fails).
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

#include "state.h"

namespace bp_emu {
namespace {

struct Allocation {
  size_t bytes;
};

std::map<uintptr_t, Allocation>& registry() {
  static std::map<uintptr_t, Allocation> live;
  return live;
}
size_t g_used = 0;
int64_t g_allocations = 0;

// The live allocation holding p, or registry().end().
std::map<uintptr_t, Allocation>::const_iterator find_allocation(const void* p) {
  const auto& live = registry();
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  auto it = live.upper_bound(at);
  if (it == live.begin()) return live.end();
  --it;
  return at < it->first + std::max<size_t>(it->second.bytes, 1) ? it : live.end();
}

std::string describe_pointer(const void* p) {
  std::ostringstream out;
  out << p;
  const auto it = find_allocation(p);
  if (it == registry().end()) {
    out << " (not device memory: a host pointer, or device memory already freed)";
  } else {
    out << " (offset " << reinterpret_cast<uintptr_t>(p) - it->first << " in a device allocation of "
        << it->second.bytes << " bytes)";
  }
  return out.str();
}

cudaError_t allocate(void** out, size_t bytes) {
  if (!out) return detail::record(cudaErrorInvalidValue);
  *out = nullptr;
  if (bytes == 0) return cudaSuccess;
  ++g_allocations;
  const Settings& s = settings();
  if ((s.fail_allocation > 0 && g_allocations == s.fail_allocation) ||
      bytes > s.device_memory - std::min(g_used, s.device_memory))
    return detail::record(cudaErrorMemoryAllocation);
  // 256-byte aligned, as cudaMalloc's pointers are.
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) return detail::record(cudaErrorMemoryAllocation);
  fill_nan_bytes(p, bytes);
  registry().emplace(reinterpret_cast<uintptr_t>(p), Allocation{bytes});
  g_used += bytes;
  *out = p;
  return cudaSuccess;
}

void release(const void* p) {
  const auto it = registry().find(reinterpret_cast<uintptr_t>(p));
  if (it == registry().end()) return;
  g_used -= it->second.bytes;
  registry().erase(it);
  std::free(const_cast<void*>(p));
}

bool is_base_of_allocation(const void* p) {
  return registry().count(reinterpret_cast<uintptr_t>(p)) != 0;
}

// The direction a cudaMemcpy may take given where each side really is.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* who) {
  const bool dst_dev = is_device_range(dst, bytes), src_dev = is_device_range(src, bytes);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_dev && !is_device_range(src, 0); break;
    case cudaMemcpyDeviceToHost: ok = src_dev && !is_device_range(dst, 0); break;
    case cudaMemcpyDeviceToDevice: ok = dst_dev && src_dev; break;
    case cudaMemcpyHostToHost: ok = !is_device_range(dst, 0) && !is_device_range(src, 0); break;
    case cudaMemcpyDefault: ok = (is_device_range(dst, 0) ? dst_dev : true) &&
                                 (is_device_range(src, 0) ? src_dev : true);
      break;
    default: return detail::record(cudaErrorInvalidMemcpyDirection);
  }
  if (ok) return cudaSuccess;
  std::ostringstream msg;
  msg << who << " of " << bytes << " bytes (kind " << int(kind) << "): destination "
      << describe_pointer(dst) << ", source " << describe_pointer(src);
  std::fprintf(stderr, "brainprop-emu: invalid copy: %s\n", msg.str().c_str());
  return detail::record(cudaErrorInvalidValue);
}

}  // namespace

bool is_device_range(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(detail::lock());
  const auto it = find_allocation(p);
  if (it == registry().end()) return false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  return at + bytes <= it->first + it->second.bytes;
}

bool check_device_range(const void* p, size_t bytes, const char* who, const std::string& what) {
  if (is_device_range(p, bytes)) return true;
  std::ostringstream msg;
  msg << who << ": " << what << ": " << bytes << " bytes at " << describe_pointer(p);
  const auto it = find_allocation(p);
  if (it != registry().end())
    msg << " run past the end of the allocation by "
        << reinterpret_cast<uintptr_t>(p) + bytes - (it->first + it->second.bytes) << " bytes";
  fail_execution(cudaErrorIllegalAddress, msg.str());
  return false;
}

void fill_nan_bytes(void* p, size_t bytes) { std::memset(p, 0xFF, bytes); }

int64_t allocation_count() { return g_allocations; }

namespace detail {

void reset_memory() {
  for (auto& [base, a] : registry()) std::free(reinterpret_cast<void*>(base));
  registry().clear();
  g_used = 0;
  g_allocations = 0;
}

// A pointer argument of a kernel as it starts: device memory or null, or the launch faults.
bool check_kernel_pointer(const char* kernel, int position, const void* p) {
  if (!p || find_allocation(p) != registry().end()) return true;
  std::ostringstream msg;
  msg << "kernel " << kernel << ": argument " << position << " is " << describe_pointer(p);
  fail_execution(cudaErrorIllegalAddress, msg.str());
  return false;
}

}  // namespace detail
}  // namespace bp_emu

using bp_emu::detail::record;
using bp_emu::detail::lock;

extern "C" {

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (const cudaError_t e = bp_emu::detail::refuse_during_capture()) return e;
  return bp_emu::allocate(ptr, bytes);
}

cudaError_t cudaFree(void* ptr) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::refuse_during_capture()) return e;
  if (!ptr) return cudaSuccess;
  if (!bp_emu::is_base_of_allocation(ptr)) return record(cudaErrorInvalidValue);
  bp_emu::detail::drain_all();  // cudaFree waits for the device
  bp_emu::release(ptr);
  return bp_emu::detail::sticky();
}

cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (!bp_emu::detail::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  if (bp_emu::is_capturing(stream)) {
    // Real CUDA records an allocation node; the emulator does not model them.
    std::fprintf(stderr, "brainprop-emu: cudaMallocAsync inside a stream capture is not emulated\n");
    return record(cudaErrorNotSupported);
  }
  if (!bp_emu::settings().memory_pools) return record(cudaErrorNotSupported);
  return bp_emu::allocate(ptr, bytes);
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!bp_emu::detail::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  if (!ptr) return cudaSuccess;
  if (!bp_emu::is_base_of_allocation(ptr)) return record(cudaErrorInvalidValue);
  if (bp_emu::is_capturing(stream)) {
    std::fprintf(stderr, "brainprop-emu: cudaFreeAsync inside a stream capture is not emulated\n");
    return record(cudaErrorNotSupported);
  }
  // Freed when the stream reaches this point: work queued before it may still use the memory.
  return record(bp_emu::enqueue(stream, "cudaFreeAsync", [ptr] { bp_emu::release(ptr); }));
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!free_bytes || !total_bytes) return record(cudaErrorInvalidValue);
  const size_t total = bp_emu::settings().device_memory;
  *total_bytes = total;
  *free_bytes = total - std::min(bp_emu::g_used, total);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (const cudaError_t e = bp_emu::detail::refuse_during_capture()) return e;
  if (bytes == 0) return cudaSuccess;
  if (const cudaError_t e = bp_emu::check_copy(dst, src, bytes, kind, "cudaMemcpy")) return e;
  if (const cudaError_t e = bp_emu::detail::drain_for_legacy()) return record(e);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (!bp_emu::detail::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (const cudaError_t e = bp_emu::check_copy(dst, src, bytes, kind, "cudaMemcpyAsync")) return e;
  if (!bp_emu::is_device_range(src, 0)) {
    // From pageable host memory the source is read before the call returns (CUDA stages it).
    auto staged = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
    return record(bp_emu::enqueue(stream, "cudaMemcpyAsync", [dst, staged] {
      std::memcpy(dst, staged->data(), staged->size());
    }));
  }
  return record(bp_emu::enqueue(stream, "cudaMemcpyAsync", [dst, src, bytes] {
    if (bp_emu::check_device_range(src, bytes, "cudaMemcpyAsync", "source"))
      std::memmove(dst, src, bytes);
  }));
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (const cudaError_t e = bp_emu::detail::refuse_during_capture()) return e;
  if (bytes == 0) return cudaSuccess;
  if (!bp_emu::is_device_range(dst, bytes)) return record(cudaErrorInvalidValue);
  if (const cudaError_t e = bp_emu::detail::drain_for_legacy()) return record(e);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = bp_emu::detail::sticky()) return record(e);
  if (!bp_emu::detail::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!bp_emu::is_device_range(dst, bytes)) return record(cudaErrorInvalidValue);
  return record(bp_emu::enqueue(stream, "cudaMemsetAsync", [dst, value, bytes] {
    if (bp_emu::check_device_range(dst, bytes, "cudaMemsetAsync", "destination"))
      std::memset(dst, value, bytes);
  }));
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (!pool) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  if (!bp_emu::settings().memory_pools) return record(cudaErrorNotSupported);
  static CUmemPoolHandle_st the_pool;
  *pool = &the_pool;
  return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  if (!pool || !value) return record(cudaErrorInvalidValue);
  if (attr == cudaMemPoolAttrReleaseThreshold) {
    pool->release_threshold = *static_cast<unsigned long long*>(value);
    return cudaSuccess;
  }
  return cudaSuccess;  // the emulator keeps no other pool policy
}

// Used and reserved memory: every live allocation (the emulator has one pool for cudaMalloc and
// cudaMallocAsync alike, and reserves nothing beyond what is allocated).
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!pool || !value) return record(cudaErrorInvalidValue);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold:
      *static_cast<unsigned long long*>(value) = pool->release_threshold;
      return cudaSuccess;
    case cudaMemPoolAttrUsedMemCurrent:
    case cudaMemPoolAttrReservedMemCurrent:
      *static_cast<unsigned long long*>(value) = bp_emu::g_used;
      return cudaSuccess;
    default:
      std::fprintf(stderr, "brainprop-emu: cudaMemPoolGetAttribute(%d) is not emulated\n", int(attr));
      return record(cudaErrorNotSupported);
  }
}

}  // extern "C"
