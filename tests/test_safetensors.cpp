// safetensors checkpoints and the atomic file writer under them: round trips, the layout the
// format demands, rejection of corrupt files, and interoperability with the Python package.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_helpers.h"

namespace {

namespace fs = std::filesystem;
using bp::DType;
using bp::NamedTensor;

template <typename T>
NamedTensor make_tensor(const std::string& name, bp::Shape shape, const std::vector<T>& values) {
  NamedTensor t{name, bp::dtype_of<T>(), std::move(shape), {}};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

// One tensor of each supported dtype, plus a 0-d scalar and an empty tensor.
std::vector<NamedTensor> sample_tensors() {
  return {make_tensor<float>("layer0.weight", {2, 3}, {0.5f, -1.0f, 2.25f, 3.0f, -4.5f, 1e-7f}),
          make_tensor<uint8_t>("mask", {3}, {0, 1, 255}),  // 3 bytes: later data is unaligned
          make_tensor<double>("layer0.bias", {3}, {1.0, -2.5, 1e300}),
          make_tensor<int32_t>("labels", {2, 2}, {-1, 0, 7, 2147483647}),
          make_tensor<float>("scale", {}, {3.5f}),
          make_tensor<float>("empty", {0, 4}, {})};
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  return n;
}

// A file made of a header length, header text and buffer, for hand-made corrupt inputs.
std::string raw_file(const std::string& header, const std::string& buffer, uint64_t length) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  return out + header + buffer;
}
std::string raw_file(const std::string& header, const std::string& buffer = "") {
  return raw_file(header, buffer, header.size());
}

// Each test works in its own fresh directory.
class TempDirTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_raw(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename());
    return names;
  }

  const bp::test::TempDir tmp_{"bp_safetensors_test"};
  const fs::path dir_ = tmp_.path();
};

class SafetensorsFormat : public TempDirTest {};
class SafetensorsCorrupt : public TempDirTest {
 protected:
  // Loading `bytes` from a file must fail with a message naming the file and the reason.
  void expect_rejected(const std::string& name, const std::string& bytes, const std::string& reason) {
    write_raw(name, bytes);
    SCOPED_TRACE(name);
    bp::test::expect_error_all([&] { bp::load_safetensors(path(name)); }, {path(name), reason});
  }
};
class SafetensorsPython : public TempDirTest {
 protected:
  void SetUp() override {
    if (std::system("python3 -c 'import safetensors, numpy' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3 with the safetensors and numpy packages is not available";
    }
  }
  int run_python(const std::string& script, const std::string& arg) const {
    std::ofstream(path("check.py")) << script;
    return std::system(("python3 '" + path("check.py") + "' '" + arg + "'").c_str());
  }
};
class SafetensorsChecksum : public SafetensorsCorrupt {};
class AtomicFile : public TempDirTest {};

const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"step", "1200"},
                                                      {"note", "unicode \xc3\xa9 ok"}};

// ---- round trip and layout ----

TEST_F(SafetensorsFormat, RoundTripKeepsNamesOrderShapesBytesAndMetadata) {
  const auto tensors = sample_tensors();
  bp::save_safetensors(path("model.safetensors"), tensors, kMetadata);
  const bp::SafetensorsFile file = bp::load_safetensors(path("model.safetensors"));
  EXPECT_EQ(file.metadata, kMetadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(file.tensors[i].name, tensors[i].name);  // data order follows the input order
    EXPECT_EQ(file.tensors[i].dtype, tensors[i].dtype);
    EXPECT_EQ(file.tensors[i].shape, tensors[i].shape);
    EXPECT_EQ(file.tensors[i].bytes, tensors[i].bytes);
  }
  EXPECT_EQ(file.get("scale").shape, bp::Shape{});
  EXPECT_EQ(file.get("scale").bytes.size(), 4u);
  EXPECT_TRUE(file.get("empty").bytes.empty());
}

TEST_F(SafetensorsFormat, EmptyMetadataAndNoTensorsRoundTrip) {
  const bp::SafetensorsFile file = bp::decode_safetensors(bp::encode_safetensors({}, {}), "mem");
  EXPECT_TRUE(file.tensors.empty());
  EXPECT_TRUE(file.metadata.empty());
}

TEST_F(SafetensorsFormat, DataStartsEightByteAlignedWithSpacePadding) {
  // Names of every length mod 8 exercise every amount of padding.
  for (int len = 1; len <= 8; ++len) {
    const std::string bytes =
        bp::encode_safetensors({make_tensor<float>(std::string(len, 'w'), {1}, {1.0f})}, {});
    const uint64_t n = header_length(bytes);
    EXPECT_EQ((8 + n) % 8, 0u) << "name length " << len;
    ASSERT_EQ(bytes.size(), 8 + n + 4);
    const std::string header = bytes.substr(8, n);
    EXPECT_EQ(header.front(), '{');
    EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
  }
}

TEST_F(SafetensorsFormat, GetNamesTheMissingTensor) {
  const bp::SafetensorsFile file = bp::decode_safetensors(bp::encode_safetensors(sample_tensors(), {}), "mem");
  bp::test::expect_error([&] { file.get("layer9.weight"); }, "layer9.weight");
}

TEST_F(SafetensorsFormat, EncodeRejectsBadTensors) {
  NamedTensor short_bytes = make_tensor<float>("w", {2, 2}, {1, 2, 3});
  EXPECT_THROW(bp::encode_safetensors({short_bytes}, {}), bp::Error);
  const NamedTensor a = make_tensor<float>("a", {1}, {1});
  EXPECT_THROW(bp::encode_safetensors({a, a}, {}), bp::Error);
  EXPECT_THROW(bp::encode_safetensors({make_tensor<float>("__metadata__", {1}, {1})}, {}), bp::Error);
  EXPECT_THROW(bp::encode_safetensors({make_tensor<float>("", {1}, {1})}, {}), bp::Error);
}

TEST_F(SafetensorsFormat, FailedSaveKeepsThePreviousFile) {
  bp::save_safetensors(path("ckpt.safetensors"), sample_tensors(), kMetadata);
  const NamedTensor bad = make_tensor<float>("w", {5}, {1});
  EXPECT_THROW(bp::save_safetensors(path("ckpt.safetensors"), {bad}, {}), bp::Error);
  EXPECT_EQ(bp::load_safetensors(path("ckpt.safetensors")).tensors.size(), sample_tensors().size());
}

// ---- corrupt inputs ----

TEST_F(SafetensorsCorrupt, TruncatedFile) {
  expect_rejected("short.safetensors", std::string("\x10\x00\x00", 3), "shorter than");
}

TEST_F(SafetensorsCorrupt, HeaderLengthLargerThanFile) {
  expect_rejected("long.safetensors", raw_file("{}", "", 1000), "header length 1000");
  expect_rejected("huge.safetensors", raw_file("{}", "", ~uint64_t{0}), "larger than");
}

TEST_F(SafetensorsCorrupt, HeaderNotJson) {
  expect_rejected("badjson.safetensors", raw_file("{\"w\": {\"dtype\": "), "not valid JSON");
  expect_rejected("array.safetensors", raw_file("[1, 2]"), "not a JSON object");
}

TEST_F(SafetensorsCorrupt, TruncatedDataBuffer) {
  // A valid file cut short: the header now points past the end of the data.
  const std::string bytes = bp::encode_safetensors(sample_tensors(), {});
  expect_rejected("cut.safetensors", bytes.substr(0, bytes.size() - 5), "past the end");
}

TEST_F(SafetensorsCorrupt, OffsetsPastTheEnd) {
  expect_rejected("past.safetensors",
                  raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')),
                  "past the end");
}

TEST_F(SafetensorsCorrupt, ByteCountDoesNotMatchShape) {
  expect_rejected("count.safetensors",
                  raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", std::string(16, '\0')),
                  "needs 12");
}

TEST_F(SafetensorsCorrupt, UnknownDtype) {
  expect_rejected("dtype.safetensors",
                  raw_file(R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')),
                  "unsupported dtype 'BF16'");
}

TEST_F(SafetensorsCorrupt, MissingFieldsAndBadMetadata) {
  expect_rejected("nooffsets.safetensors", raw_file(R"({"w":{"dtype":"U8","shape":[2]}})", "ab"),
                  "missing data_offsets");
  expect_rejected("noshape.safetensors", raw_file(R"({"w":{"dtype":"U8","data_offsets":[0,2]}})", "ab"),
                  "missing shape");
  expect_rejected("negshape.safetensors",
                  raw_file(R"({"w":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}})", "ab"),
                  "non-negative");
  expect_rejected("meta.safetensors", raw_file(R"({"__metadata__":{"step":12}})"), "not a string");
}

TEST_F(SafetensorsCorrupt, GapsAndOverlapsInData) {
  expect_rejected("overlap.safetensors",
                  raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                           R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "abc"),
                  "contiguous");
  expect_rejected("trailing.safetensors",
                  raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abcd"),
                  "data buffer has 4");
}

TEST_F(SafetensorsCorrupt, MissingFileNamesThePath) {
  bp::test::expect_error([&] { bp::load_safetensors(path("absent.safetensors")); }, path("absent.safetensors"));
}

// ---- checksums ----

nlohmann::json header_json(const std::string& bytes) {
  return nlohmann::json::parse(bytes.substr(8, header_length(bytes)));
}

// One tensor's bytes inside an encoded file: where its data_offsets put them after the header.
std::pair<size_t, size_t> payload_range(const std::string& bytes, const std::string& name) {
  const auto offsets = header_json(bytes)[name]["data_offsets"];
  const size_t start = 8 + header_length(bytes);
  return {start + offsets[0].get<size_t>(), start + offsets[1].get<size_t>()};
}

TEST_F(SafetensorsChecksum, RoundTripStoresAndVerifiesAChecksumPerTensor) {
  auto tensors = sample_tensors();
  // The check value every CRC-32 (zlib, gzip, PNG) gives for "123456789".
  tensors.push_back(make_tensor<uint8_t>("check", {9}, {'1', '2', '3', '4', '5', '6', '7', '8', '9'}));
  bp::save_safetensors(path("model.safetensors"), tensors, kMetadata);

  const auto stored = header_json(bp::read_file(path("model.safetensors")))["__metadata__"];
  for (const NamedTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    const std::string key = "brainprop.crc32." + t.name;
    ASSERT_TRUE(stored.contains(key));
    EXPECT_EQ(stored[key].get<std::string>(), bp::safetensors_checksum(t.bytes.data(), t.bytes.size()));
  }
  EXPECT_EQ(stored["brainprop.crc32.check"], "cbf43926");
  EXPECT_EQ(stored["brainprop.crc32.empty"], "00000000");
  EXPECT_EQ(stored.size(), kMetadata.size() + tensors.size()) << stored.dump();

  // The reader verifies them and hands back only the caller's metadata.
  const bp::SafetensorsFile file = bp::load_safetensors(path("model.safetensors"));
  EXPECT_TRUE(file.checksums_verified);
  EXPECT_EQ(file.metadata, kMetadata);
  EXPECT_EQ(file.get("check").bytes, tensors.back().bytes);
}

TEST_F(SafetensorsChecksum, FlippedBitInATensorIsRefusedNamingThatTensor) {
  const std::string good = bp::encode_safetensors(sample_tensors(), kMetadata);
  for (const NamedTensor& t : sample_tensors()) {
    if (t.bytes.empty()) continue;
    SCOPED_TRACE(t.name);
    const auto [begin, end] = payload_range(good, t.name);
    ASSERT_EQ(end - begin, t.bytes.size());
    for (size_t at : {begin, begin + (end - begin) / 2, end - 1}) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << (at % 8)));
      expect_rejected("flip.safetensors", bad, "tensor '" + t.name + "' fails its CRC-32 checksum");
    }
  }
}

TEST_F(SafetensorsChecksum, FileWithoutChecksumsLoadsWithANote) {
  // As another tool (or an older brainprop) writes it: tensors, metadata, no checksums.
  write_raw("plain.safetensors",
            raw_file(R"({"__metadata__":{"origin":"elsewhere"},)"
                     R"("w":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", "abc"));
  ::testing::internal::CaptureStderr();
  const bp::SafetensorsFile file = bp::load_safetensors(path("plain.safetensors"));
  const std::string note = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(file.checksums_verified);
  EXPECT_EQ(file.get("w").bytes, (std::vector<uint8_t>{'a', 'b', 'c'}));
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"origin", "elsewhere"}}));
  EXPECT_NE(note.find(path("plain.safetensors")), std::string::npos) << note;
  EXPECT_NE(note.find("no tensor checksums"), std::string::npos) << note;
  EXPECT_EQ(std::count(note.begin(), note.end(), '\n'), 1) << "one line: " << note;

  // Our own files say nothing.
  bp::save_safetensors(path("ours.safetensors"), sample_tensors(), {});
  ::testing::internal::CaptureStderr();
  bp::load_safetensors(path("ours.safetensors"));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST_F(SafetensorsChecksum, MalformedOrMismatchedChecksumMetadataIsRefused) {
  const std::string tensor = R"("w":{"dtype":"U8","shape":[9],"data_offsets":[0,9]})";
  auto with_checksums = [&](const std::string& entries) {
    return raw_file(R"({"__metadata__":{)" + entries + "}," + tensor + "}", "123456789");
  };
  // The right value loads, in either case.
  EXPECT_TRUE(bp::decode_safetensors(with_checksums(R"("brainprop.crc32.w":"CBF43926")"), "mem").checksums_verified);
  for (const char* bad : {"cbf4392", "cbf439260", "0xcbf439", "cbf4392g", "", " cbf4392"}) {
    SCOPED_TRACE(bad);
    expect_rejected("malformed.safetensors",
                    with_checksums(std::string(R"("brainprop.crc32.w":")") + bad + "\""),
                    "tensor 'w': checksum \"" + std::string(bad) + "\" in metadata \"brainprop.crc32.w\" "
                    "is not 8 hexadecimal digits");
  }
  expect_rejected("wrong.safetensors", with_checksums(R"("brainprop.crc32.w":"cbf43927")"),
                  "tensor 'w' fails its CRC-32 checksum (stored cbf43927, its data gives cbf43926)");
  // brainprop writes all checksums or none: a partial or stray set means the header was damaged.
  expect_rejected("stray.safetensors",
                  with_checksums(R"("brainprop.crc32.w":"cbf43926","brainprop.crc32.v":"00000000")"),
                  "\"brainprop.crc32.v\" is a checksum for a tensor the file does not have");
  expect_rejected("partial.safetensors",
                  raw_file(R"({"__metadata__":{"brainprop.crc32.w":"cbf43926"},)" + tensor + "," +
                           R"("v":{"dtype":"U8","shape":[1],"data_offsets":[9,10]}})", "123456789x"),
                  "tensor 'v' has no checksum, though other tensors do");
}

TEST_F(SafetensorsChecksum, CallersCannotWriteTheReservedChecksumKeys) {
  bp::test::expect_error([&] { bp::encode_safetensors(sample_tensors(), {{"brainprop.crc32.mask", "00000000"}}); },
                         "reserved for the tensor checksums");
}

// ---- the Python reference implementation ----

TEST_F(SafetensorsPython, ReferenceReaderLoadsOurFile) {
  bp::save_safetensors(path("model.safetensors"), sample_tensors(), kMetadata);
  const std::string script = R"PY(
import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
assert sorted(t) == sorted(["layer0.weight", "mask", "layer0.bias", "labels", "scale", "empty"]), sorted(t)
expected = {
    "layer0.weight": np.array([[0.5, -1.0, 2.25], [3.0, -4.5, 1e-7]], dtype=np.float32),
    "mask": np.array([0, 1, 255], dtype=np.uint8),
    "layer0.bias": np.array([1.0, -2.5, 1e300], dtype=np.float64),
    "labels": np.array([[-1, 0], [7, 2147483647]], dtype=np.int32),
    "scale": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
for name, want in expected.items():
    got = t[name]
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
    assert np.array_equal(got, want), (name, got, want)
with safe_open(sys.argv[1], framework="numpy") as f:
    meta = f.metadata()
# Our checksums are plain string metadata: zlib's CRC-32 of each tensor's bytes.
import zlib
sums = {k[len("brainprop.crc32."):]: v for k, v in meta.items() if k.startswith("brainprop.crc32.")}
assert sums == {name: "%08x" % zlib.crc32(t[name].tobytes()) for name in expected}, sums
meta = {k: v for k, v in meta.items() if not k.startswith("brainprop.crc32.")}
assert meta == {"format": "pt", "step": "1200", "note": "unicode \u00e9 ok"}, meta
)PY";
  EXPECT_EQ(run_python(script, path("model.safetensors")), 0);
}

TEST_F(SafetensorsPython, WeLoadTheReferenceWritersFile) {
  const std::string script = R"PY(
import sys
import numpy as np
from safetensors.numpy import save_file
save_file({"b": np.arange(6, dtype=np.float64).reshape(3, 2), "a": np.array([1, 2, 3], dtype=np.uint8),
           "s": np.array(-7, dtype=np.int32)}, sys.argv[1], metadata={"origin": "python"})
)PY";
  ASSERT_EQ(run_python(script, path("ref.safetensors")), 0);
  const bp::SafetensorsFile file = bp::load_safetensors(path("ref.safetensors"));
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"origin", "python"}}));
  const NamedTensor& b = file.get("b");
  EXPECT_EQ(b.dtype, DType::F64);
  EXPECT_EQ(b.shape, (bp::Shape{3, 2}));
  ASSERT_EQ(b.bytes.size(), 48u);
  double values[6];
  std::memcpy(values, b.bytes.data(), sizeof values);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], i);
  EXPECT_EQ(file.get("a").bytes, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(file.get("s").shape, bp::Shape{});
  EXPECT_EQ(file.get("s").dtype, DType::I32);
}

// ---- atomic writes ----

TEST_F(AtomicFile, ReplacesExistingFileAndLeavesNoTemporary) {
  const std::string target = path("out.bin");
  bp::write_file_atomic(target, "first version, longer than the second");
  bp::write_file_atomic(target, std::string("second\0v", 8));
  EXPECT_EQ(bp::read_file(target), std::string("second\0v", 8));
  EXPECT_EQ(files(), std::vector<std::string>{"out.bin"});
}

TEST_F(AtomicFile, MissingDirectoryThrowsNamingThePath) {
  const std::string target = path("no/such/dir/out.bin");
  bp::test::expect_error_all([&] { bp::write_file_atomic(target, "x"); }, {target, std::strerror(ENOENT)});
}

TEST_F(AtomicFile, FailedRenameRemovesTheTemporary) {
  // Renaming a file over a non-empty directory fails after the temporary is written.
  fs::create_directories(path("target"));
  write_raw("target/keep", "k");
  EXPECT_THROW(bp::write_file_atomic(path("target"), "data"), bp::Error);
  EXPECT_EQ(files(), std::vector<std::string>{"target"});
}

TEST_F(AtomicFile, ReadMissingFileNamesThePath) {
  bp::test::expect_error([&] { bp::read_file(path("missing.txt")); }, path("missing.txt"));
}

}  // namespace
