// Tensor: a typed, shaped view of a buffer owned by a backend. Memory ownership is
// shared (std::shared_ptr<Storage>); where the bytes live is the Storage's device.
// Row-major, contiguous; views narrow the leading (batch) dimension only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace bp {

enum class DType : uint8_t { F32, F64, I32, U8 };
enum class DeviceKind : uint8_t { CPU, CUDA };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(DeviceKind device);

using Shape = std::vector<int64_t>;
int64_t shape_elements(const Shape& shape);
std::string shape_string(const Shape& shape);

// A block of memory and the function that frees it.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  DeviceKind device = DeviceKind::CPU;
  std::function<void(void*)> release;
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (data && release) release(data);
  }
};

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, size_t byte_offset = 0);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + rank() : i)); }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_elements(shape_); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  DeviceKind device() const { return storage_ ? storage_->device : DeviceKind::CPU; }
  // Elements per leading index: the row length of a [batch, ...] tensor.
  int64_t row_elements() const { return rank() == 0 ? 1 : numel() / shape_[0]; }

  void* raw() const { return static_cast<char*>(storage_->data) + offset_; }
  template <typename T>
  T* data() const {
    BP_CHECK(dtype_ == dtype_of<T>(), "tensor holds " << dtype_name(dtype_) << ", asked for "
                                                      << dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }

  // The first `rows` entries of the leading dimension, sharing memory.
  Tensor rows(int64_t rows) const;
  // The same memory seen with another shape of equal element count.
  Tensor reshaped(Shape shape) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::F32;
  size_t offset_ = 0;
};

}  // namespace bp
