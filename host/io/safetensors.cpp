#include "io/safetensors.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"

// Tensor bytes are copied to and from the file as they lie in memory, and the format is
// little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O needs a little-endian host");

// Every decode error names the source and says why.
#define BP_ST_CHECK(cond, stream_expr) \
  BP_CHECK(cond, "invalid safetensors file " << source << ": " << stream_expr)

namespace bp {
namespace {

using json = nlohmann::json;

constexpr size_t kLengthBytes = 8;
constexpr size_t kAlignment = 8;
constexpr const char* kMetadataKey = "__metadata__";

const char* format_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

bool parse_dtype(const std::string& text, DType* dtype) {
  for (DType d : {DType::F32, DType::F64, DType::I32, DType::U8}) {
    if (text == format_dtype(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// Bytes needed for `shape` of `dtype`, or false if that overflows (a hostile header can ask).
bool byte_count(const Shape& shape, DType dtype, uint64_t* bytes) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto dim = static_cast<uint64_t>(d);
    if (dim != 0 && n > std::numeric_limits<uint64_t>::max() / dim) return false;
    n *= dim;
  }
  *bytes = n;
  return true;
}

void append_u64_le(std::string& out, uint64_t value) {
  for (size_t i = 0; i < kLengthBytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t read_u64_le(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < kLengthBytes; ++i) value |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  return value;
}

// ---- writing ----

uint64_t checked_tensor_bytes(const NamedTensor& t, std::set<std::string>& seen) {
  BP_CHECK(!t.name.empty(), "cannot save a safetensors tensor with an empty name");
  BP_CHECK(t.name != kMetadataKey, "cannot save a tensor named " << kMetadataKey << " (reserved)");
  BP_CHECK(seen.insert(t.name).second, "cannot save two tensors named '" << t.name << "'");
  uint64_t expected = 0;
  BP_CHECK(byte_count(t.shape, t.dtype, &expected),
           "tensor '" << t.name << "' has an invalid shape " << shape_string(t.shape));
  BP_CHECK(t.bytes.size() == expected, "tensor '" << t.name << "' has " << t.bytes.size()
                                                  << " bytes, but shape " << shape_string(t.shape)
                                                  << " of " << dtype_name(t.dtype) << " needs "
                                                  << expected);
  return expected;
}

// The JSON text padded with spaces, as the reference writer does, so data starts aligned.
std::string padded_header_text(const json& header) {
  std::string text;
  try {
    text = header.dump();
  } catch (const json::type_error& e) {  // invalid UTF-8 in a name or metadata
    BP_FAIL("cannot encode safetensors header: " << e.what());
  }
  const size_t pad = (kAlignment - (kLengthBytes + text.size()) % kAlignment) % kAlignment;
  text.append(pad, ' ');
  return text;
}

// ---- checksums ----

bool is_checksum_key(const std::string& key) {
  return key.compare(0, kSafetensorsChecksumPrefix.size(), kSafetensorsChecksumPrefix) == 0;
}

// Exactly 8 hex digits, as we write them (either case accepted); anything else is refused
// rather than guessed at, since a damaged checksum cannot vouch for the data.
bool parse_checksum(const std::string& text, uint32_t* value) {
  if (text.size() != 8) return false;
  uint32_t v = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else return false;
    v = (v << 4) | static_cast<uint32_t>(digit);
  }
  *value = v;
  return true;
}

// Takes the checksum entries out of `metadata` (callers see only their own), by tensor name.
std::map<std::string, uint32_t> take_checksums(std::map<std::string, std::string>& metadata,
                                               const std::string& source) {
  std::map<std::string, uint32_t> checksums;
  for (auto it = metadata.begin(); it != metadata.end();) {
    if (!is_checksum_key(it->first)) {
      ++it;
      continue;
    }
    const std::string name = it->first.substr(kSafetensorsChecksumPrefix.size());
    uint32_t value = 0;
    BP_ST_CHECK(parse_checksum(it->second, &value),
                "tensor '" << name << "': checksum \"" << it->second << "\" in metadata \""
                           << it->first << "\" is not 8 hexadecimal digits");
    checksums[name] = value;
    it = metadata.erase(it);
  }
  return checksums;
}

// Every tensor must carry a matching checksum once any does: brainprop writes all or none,
// so a missing or extra one means the header itself was damaged or edited.
void verify_checksums(const std::vector<NamedTensor>& tensors,
                      std::map<std::string, uint32_t> checksums, const std::string& source) {
  for (const NamedTensor& t : tensors) {
    auto it = checksums.find(t.name);
    BP_ST_CHECK(it != checksums.end(), "tensor '" << t.name
                                                  << "' has no checksum, though other tensors do");
    char stored[9];
    std::snprintf(stored, sizeof stored, "%08x", it->second);
    const std::string computed = safetensors_checksum(t.bytes.data(), t.bytes.size());
    BP_ST_CHECK(computed == stored, "tensor '" << t.name << "' fails its CRC-32 checksum (stored "
                                               << stored << ", its data gives " << computed
                                               << "): the data is corrupt");
    checksums.erase(it);
  }
  BP_ST_CHECK(checksums.empty(), "metadata \"" << kSafetensorsChecksumPrefix
                                                << checksums.begin()->first
                                                << "\" is a checksum for a tensor the file does not have");
}

// ---- reading ----

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

json parse_header(std::string_view text, const std::string& source) {
  json header;
  try {
    header = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // Not only parse_error: a number too large for a double (1e999) is an out_of_range.
    BP_ST_CHECK(false, "header is not valid JSON (" << e.what() << ")");
  }
  BP_ST_CHECK(header.is_object(), "header is not a JSON object");
  return header;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  BP_ST_CHECK(value.is_object(), kMetadataKey << " is not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    BP_ST_CHECK(v.is_string(), kMetadataKey << " value for '" << key << "' is not a string");
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

// JSON non-negative integers parse as unsigned; anything else (negative, float) is rejected.
bool is_index(const json& v) { return v.is_number_unsigned(); }

Shape parse_shape(const std::string& name, const json& value, const std::string& source) {
  BP_ST_CHECK(value.is_array(), "tensor '" << name << "': shape is not an array");
  Shape shape;
  for (const json& d : value) {
    BP_ST_CHECK(is_index(d) && d.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()},
                "tensor '" << name << "': shape " << value.dump()
                           << " has an entry that is not a non-negative integer");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

Entry parse_entry(const std::string& name, const json& value, const std::string& source) {
  BP_ST_CHECK(value.is_object(), "tensor '" << name << "': entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    BP_ST_CHECK(value.contains(field), "tensor '" << name << "': missing " << field);
  }
  Entry e;
  e.name = name;
  const json& dtype = value["dtype"];
  BP_ST_CHECK(dtype.is_string(), "tensor '" << name << "': dtype is not a string");
  BP_ST_CHECK(parse_dtype(dtype.get<std::string>(), &e.dtype),
              "tensor '" << name << "': unknown or unsupported dtype '" << dtype.get<std::string>()
                         << "' (supported: F32, F64, I32, U8)");
  e.shape = parse_shape(name, value["shape"], source);
  const json& offsets = value["data_offsets"];
  BP_ST_CHECK(offsets.is_array() && offsets.size() == 2 && is_index(offsets[0]) && is_index(offsets[1]),
              "tensor '" << name << "': data_offsets " << offsets.dump()
                         << " is not a pair of non-negative integers");
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  return e;
}

void check_entry_range(const Entry& e, uint64_t buffer_bytes, const std::string& source) {
  BP_ST_CHECK(e.begin <= e.end, "tensor '" << e.name << "': data_offsets [" << e.begin << ", "
                                           << e.end << "] end before they begin");
  BP_ST_CHECK(e.end <= buffer_bytes, "tensor '" << e.name << "': data_offsets [" << e.begin
                                                << ", " << e.end << "] run past the end of the "
                                                << buffer_bytes << "-byte data buffer");
  uint64_t expected = 0;
  BP_ST_CHECK(byte_count(e.shape, e.dtype, &expected),
              "tensor '" << e.name << "': shape " << shape_string(e.shape) << " is too large");
  BP_ST_CHECK(e.end - e.begin == expected,
              "tensor '" << e.name << "': data_offsets [" << e.begin << ", " << e.end << "] hold "
                         << e.end - e.begin << " bytes, but shape " << shape_string(e.shape)
                         << " of " << format_dtype(e.dtype) << " needs " << expected);
}

// Like the reference reader: sorted by offset, tensors must tile the buffer exactly.
void check_contiguous(const std::vector<Entry>& sorted, uint64_t buffer_bytes,
                      const std::string& source) {
  uint64_t next = 0;
  for (const Entry& e : sorted) {
    BP_ST_CHECK(e.begin == next, "tensor '" << e.name << "' starts at byte " << e.begin
                                            << " of the data buffer, expected " << next
                                            << " (data must be contiguous, without gaps or overlaps)");
    next = e.end;
  }
  BP_ST_CHECK(next == buffer_bytes, "tensors cover " << next << " bytes but the data buffer has "
                                                     << buffer_bytes);
}

}  // namespace

const NamedTensor& SafetensorsFile::get(const std::string& name) const {
  for (const NamedTensor& t : tensors) {
    if (t.name == name) return t;
  }
  std::string names;
  for (size_t i = 0; i < tensors.size() && i < 8; ++i) names += (i ? ", " : "") + tensors[i].name;
  if (tensors.size() > 8) names += ", ...";
  BP_FAIL("no tensor named '" << name << "' (have: " << names << ")");
}

std::string safetensors_checksum(const uint8_t* bytes, size_t size) {
  // zlib's crc32 takes a uInt length; feed large tensors in pieces.
  uLong crc = crc32(0L, Z_NULL, 0);
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t done = 0; done < size; done += kPiece)
    crc = crc32(crc, bytes + done, static_cast<uInt>(std::min(kPiece, size - done)));
  char text[9];
  std::snprintf(text, sizeof text, "%08lx", crc & 0xffffffffUL);
  return text;
}

std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> all_metadata = metadata;
  for (const auto& [key, value] : metadata) {
    BP_CHECK(!is_checksum_key(key), "cannot save safetensors metadata \"" << key << "\": the prefix \""
                                        << kSafetensorsChecksumPrefix
                                        << "\" is reserved for the tensor checksums");
  }
  json header = json::object();
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const uint64_t bytes = checked_tensor_bytes(t, seen);
    header[t.name] = {{"dtype", format_dtype(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", json::array({offset, offset + bytes})}};
    all_metadata[std::string(kSafetensorsChecksumPrefix) + t.name] =
        safetensors_checksum(t.bytes.data(), t.bytes.size());
    offset += bytes;
  }
  // The reference writer omits an empty metadata block.
  if (!all_metadata.empty()) header[kMetadataKey] = all_metadata;
  const std::string text = padded_header_text(header);
  std::string out;
  out.reserve(kLengthBytes + text.size() + offset);
  append_u64_le(out, text.size());
  out += text;
  for (const NamedTensor& t : tensors) out.append(t.bytes.begin(), t.bytes.end());
  return out;
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

SafetensorsFile decode_safetensors(std::string_view bytes, const std::string& source) {
  BP_ST_CHECK(bytes.size() >= kLengthBytes, "file is shorter than the 8-byte header length ("
                                                << bytes.size() << " bytes)");
  const uint64_t header_bytes = read_u64_le(bytes);
  BP_ST_CHECK(header_bytes <= bytes.size() - kLengthBytes,
              "header length " << header_bytes << " is larger than the " << bytes.size()
                               << "-byte file");
  const json header = parse_header(bytes.substr(kLengthBytes, header_bytes), source);
  const std::string_view buffer = bytes.substr(kLengthBytes + header_bytes);

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      file.metadata = parse_metadata(value, source);
      continue;
    }
    entries.push_back(parse_entry(name, value, source));
    check_entry_range(entries.back(), buffer.size(), source);
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_contiguous(entries, buffer.size(), source);

  for (Entry& e : entries) {
    const auto* data = reinterpret_cast<const uint8_t*>(buffer.data()) + e.begin;
    file.tensors.push_back({std::move(e.name), e.dtype, std::move(e.shape),
                            std::vector<uint8_t>(data, data + (e.end - e.begin))});
  }

  std::map<std::string, uint32_t> checksums = take_checksums(file.metadata, source);
  if (checksums.empty() && !file.tensors.empty()) {
    // Another tool's file, or an older brainprop's: still usable, but say it went unchecked.
    std::fprintf(stderr, "brainprop: note: %s has no tensor checksums (written by another tool or "
                         "an older brainprop); its data is not verified\n", source.c_str());
  } else {
    verify_checksums(file.tensors, std::move(checksums), source);
    file.checksums_verified = true;
  }
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  return decode_safetensors(read_file(path), path);
}

}  // namespace bp

#undef BP_ST_CHECK
