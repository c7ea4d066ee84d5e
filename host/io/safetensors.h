// The safetensors format (https://github.com/huggingface/safetensors), so checkpoints can be
// read by the Python `safetensors` package and vice versa:
//   8 bytes   little-endian u64 N, the header length
//   N bytes   UTF-8 JSON: {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
//             ..., "__metadata__": {"key": "string value", ...}}, padded with spaces so the
//             buffer starts 8-byte aligned
//   rest      the byte buffer; offsets are relative to its start, tensors are row-major,
//             little-endian and together cover the buffer without gaps or overlaps.
// Supported dtypes: F32, F64, I32, U8.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace bp {

struct NamedTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;  // row-major, little-endian; shape_elements(shape) * dtype_size
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // in the order their data appears in the buffer
  std::map<std::string, std::string> metadata;
  // The tensor called `name`; throws bp::Error naming it if there is none.
  const NamedTensor& get(const std::string& name) const;
};

// Tensor data is laid out in the order of `tensors`. Throws bp::Error for a tensor whose byte
// count does not match its shape, a duplicate or empty name, or the reserved "__metadata__".
std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata);
// encode_safetensors, written with write_file_atomic.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata);

// Validates everything; each bp::Error names `source_name_for_errors` and the reason.
SafetensorsFile decode_safetensors(std::string_view bytes,
                                   const std::string& source_name_for_errors);
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace bp
