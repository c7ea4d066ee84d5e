// The safetensors format (https://github.com/huggingface/safetensors), so checkpoints can be
// read by the Python `safetensors` package and vice versa:
//   8 bytes   little-endian u64 N, the header length
//   N bytes   UTF-8 JSON: {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
//             ..., "__metadata__": {"key": "string value", ...}}, padded with spaces so the
//             buffer starts 8-byte aligned
//   rest      the byte buffer; offsets are relative to its start, tensors are row-major,
//             little-endian and together cover the buffer without gaps or overlaps.
// Supported dtypes: F32, F64, I32, U8.
// Integrity: the format checks the header but nothing guards the data, so a flipped bit in a
// tensor's bytes would load silently. We store a CRC-32 (zlib's, as in gzip and PNG) of each
// tensor's bytes as metadata "brainprop.crc32.NAME" = 8 lowercase hex digits; the format allows
// only string metadata, so other readers (the Python package) just see extra strings.
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
  std::map<std::string, std::string> metadata;  // without the "brainprop.crc32." checksums
  // True when every tensor's checksum was stored and matched; false for a file without
  // checksums (another tool's, or an older brainprop's), which loads with a note on stderr.
  bool checksums_verified = false;
  // The tensor called `name`; throws bp::Error naming it if there is none.
  const NamedTensor& get(const std::string& name) const;
};

// Tensor data is laid out in the order of `tensors`; each tensor's checksum is added to the
// metadata. Throws bp::Error for a tensor whose byte count does not match its shape, a duplicate
// or empty name, the reserved "__metadata__", or a metadata key with the checksum prefix.
std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata);
// encode_safetensors, written with write_file_atomic.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata);

// Validates everything, checksums included; each bp::Error names `source_name_for_errors`
// and the reason (for a checksum that fails, the tensor).
SafetensorsFile decode_safetensors(std::string_view bytes,
                                   const std::string& source_name_for_errors);
SafetensorsFile load_safetensors(const std::string& path);

// The checksum stored for `bytes`: zlib's CRC-32 as 8 lowercase hex digits.
std::string safetensors_checksum(const uint8_t* bytes, size_t size);
inline constexpr std::string_view kSafetensorsChecksumPrefix = "brainprop.crc32.";

}  // namespace bp
