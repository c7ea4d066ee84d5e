#include "core/tensor.h"

#include <sstream>

namespace bp {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::U8: return "uint8";
  }
  return "?";
}

const char* device_name(DeviceKind device) { return device == DeviceKind::CPU ? "cpu" : "cuda"; }

int64_t shape_elements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, size_t byte_offset)
    : storage_(std::move(storage)), shape_(std::move(shape)), dtype_(dtype), offset_(byte_offset) {
  for (int64_t d : shape_) BP_CHECK(d >= 0, "negative dimension in shape " << shape_string(shape_));
  BP_CHECK(offset_ + bytes() <= storage_->bytes,
           "tensor of shape " << shape_string(shape_) << " exceeds its storage");
}

Tensor Tensor::rows(int64_t count) const {
  BP_CHECK(rank() >= 1 && count >= 0 && count <= shape_[0],
           "cannot take " << count << " rows of a tensor of shape " << shape_string(shape_));
  Shape s = shape_;
  s[0] = count;
  return Tensor(storage_, s, dtype_, offset_);
}

Tensor Tensor::reshaped(Shape shape) const {
  BP_CHECK(shape_elements(shape) == numel(), "cannot reshape " << shape_string(shape_) << " to "
                                                                << shape_string(shape));
  return Tensor(storage_, std::move(shape), dtype_, offset_);
}

}  // namespace bp
