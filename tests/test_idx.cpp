// IDX reader and MNIST-style data-set loading, on small synthetic files written here
// (plain and gzipped), plus the real Fashion-MNIST when its Debian package is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "test_helpers.h"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

using bp::test::expect_error;

// An unsigned-byte IDX file image: magic 0 0 0x08 ndims, big-endian dims, then the data.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes out = {0, 0, type, uint8_t(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(d >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes iota_bytes(size_t n, int start = 0) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = uint8_t((start + int(i)) % 256);
  return out;
}

void write_plain(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const fs::path& path, const Bytes& bytes) {
  gzFile file = gzopen(path.string().c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(file, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  }
  ASSERT_EQ(gzclose(file), Z_OK);
}

// A fresh directory under the system temp dir, removed when the test ends.
class IdxTest : public ::testing::Test {
 protected:
  fs::path file(const std::string& name) const { return dir_ / name; }

  // An MNIST-style directory: n_train / n_test images of h x w, labels i % 10.
  void write_mnist_dir(uint32_t n_train, uint32_t n_test, uint32_t h = 4, uint32_t w = 3, bool gz = true) {
    write_split("train", n_train, h, w, gz);
    write_split("t10k", n_test, h, w, gz);
  }
  void write_split(const std::string& split, uint32_t n, uint32_t h, uint32_t w, bool gz) {
    Bytes labels(n);
    for (uint32_t i = 0; i < n; ++i) labels[i] = uint8_t(i % 10);
    const std::string suffix = gz ? ".gz" : "";
    const auto write = gz ? write_gzip : write_plain;
    write(file(split + "-images-idx3-ubyte" + suffix), idx_bytes({n, h, w}, iota_bytes(size_t(n) * h * w)));
    write(file(split + "-labels-idx1-ubyte" + suffix), idx_bytes({n}, labels));
  }
  std::string spec(const std::string& prefix) const { return prefix + ":" + dir_.string(); }

  const bp::test::TempDir tmp_{"bp_idx_test"};
  const fs::path dir_ = tmp_.path();
};

using DatasetTest = IdxTest;

// ---- read_idx ----------------------------------------------------------------------------

TEST_F(IdxTest, ReadsPlainFile) {
  const Bytes data = iota_bytes(2 * 3 * 4, 7);
  write_plain(file("a-idx3-ubyte"), idx_bytes({2, 3, 4}, data));
  const bp::IdxArray array = bp::read_idx(file("a-idx3-ubyte").string());
  EXPECT_EQ(array.dims, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(array.data, data);
}

TEST_F(IdxTest, GzipReadMatchesPlainRead) {
  const Bytes bytes = idx_bytes({5, 2, 2}, iota_bytes(20, 100));
  write_plain(file("plain"), bytes);
  write_gzip(file("packed"), bytes);  // no .gz suffix: detection goes by the magic bytes
  const bp::IdxArray plain = bp::read_idx(file("plain").string());
  const bp::IdxArray packed = bp::read_idx(file("packed").string());
  EXPECT_EQ(plain.dims, packed.dims);
  EXPECT_EQ(plain.data, packed.data);
}

TEST_F(IdxTest, LargeDimensionsAreBigEndian) {
  write_plain(file("labels"), idx_bytes({300}, iota_bytes(300)));
  EXPECT_EQ(bp::read_idx(file("labels").string()).dims, (std::vector<int64_t>{300}));
}

TEST_F(IdxTest, TruncatedPayloadFails) {
  Bytes bytes = idx_bytes({10, 28, 28}, iota_bytes(1000));
  write_gzip(file("short.gz"), bytes);
  const std::string path = file("short.gz").string();
  expect_error([&] { bp::read_idx(path); }, path + ": truncated: header says 7840 bytes");
  expect_error([&] { bp::read_idx(path); }, "file holds 1000");
}

TEST_F(IdxTest, TruncatedHeaderFails) {
  Bytes bytes = idx_bytes({10, 28, 28}, {});
  bytes.resize(9);  // magic plus one and a quarter dimensions
  write_plain(file("hdr"), bytes);
  expect_error([&] { bp::read_idx(file("hdr").string()); }, "truncated header");
  write_plain(file("tiny"), {0, 0});
  expect_error([&] { bp::read_idx(file("tiny").string()); }, "truncated header");
  write_plain(file("empty"), {});
  expect_error([&] { bp::read_idx(file("empty").string()); }, file("empty").string());
  expect_error([] { bp::parse_idx({}, "in memory"); }, "in memory: truncated header: 0 bytes");
}

TEST_F(IdxTest, WrongMagicFails) {
  Bytes bytes = idx_bytes({4}, iota_bytes(4));
  bytes[1] = 3;
  write_plain(file("magic"), bytes);
  expect_error([&] { bp::read_idx(file("magic").string()); }, "bad magic");
}

TEST_F(IdxTest, BadTypeCodeFails) {
  write_gzip(file("float.gz"), idx_bytes({4}, iota_bytes(16), 0x0D));
  expect_error([&] { bp::read_idx(file("float.gz").string()); }, "type code 0xd");
}

TEST_F(IdxTest, BadDimensionCountFails) {
  write_plain(file("zero"), idx_bytes({}, {}));
  expect_error([&] { bp::read_idx(file("zero").string()); }, "dimension count 0");
  write_plain(file("five"), idx_bytes({1, 1, 1, 1, 1}, {7}));
  expect_error([&] { bp::read_idx(file("five").string()); }, "dimension count 5");
}

TEST_F(IdxTest, AbsurdSizeFails) {
  write_plain(file("huge"), idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {}));
  expect_error([&] { bp::read_idx(file("huge").string()); }, "implausibly large");
}

TEST_F(IdxTest, TrailingGarbageFails) {
  Bytes bytes = idx_bytes({2, 2}, iota_bytes(4));
  bytes.push_back(0);
  write_plain(file("extra"), bytes);
  expect_error([&] { bp::read_idx(file("extra").string()); }, "trailing garbage");
}

TEST_F(IdxTest, GzipBombStopsAtTheHeaderSize) {
  // A 2x2 array (12 header bytes, 4 data bytes), then 64 MiB of zeros: about 64 KiB of gzip.
  // Decompression must stop just past the 16 bytes the header implies instead of inflating
  // it all before the size check.
  const std::string path = file("bomb.gz").string();
  gzFile out = gzopen(path.c_str(), "wb9");
  ASSERT_NE(out, nullptr);
  const Bytes head = idx_bytes({2, 2}, iota_bytes(4));
  ASSERT_EQ(gzwrite(out, head.data(), unsigned(head.size())), int(head.size()));
  const Bytes zeros(1 << 20, 0);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(gzwrite(out, zeros.data(), unsigned(zeros.size())), int(zeros.size()));
  ASSERT_EQ(gzclose(out), Z_OK);
  ASSERT_LT(fs::file_size(path), 1u << 20);
  expect_error([&] { bp::read_idx(path); },
               path + ": trailing garbage: the decompressed data runs past the 16 bytes");
}

TEST_F(IdxTest, CorruptGzipFails) {
  write_gzip(file("cut.gz"), idx_bytes({64, 64}, iota_bytes(64 * 64)));
  const auto size = fs::file_size(file("cut.gz"));
  fs::resize_file(file("cut.gz"), size - 12);  // lose the trailer and some of the stream
  expect_error([&] { bp::read_idx(file("cut.gz").string()); }, file("cut.gz").string());
}

// With a limit, only the first items are read: a file whose tail is cut loads as long as the
// kept items are whole, plain or gzipped, and the header's count stays known.
TEST_F(IdxTest, ReadsOnlyTheFirstItems) {
  const Bytes whole = idx_bytes({10, 2, 3}, iota_bytes(60, 5));
  Bytes cut = whole;
  cut.resize(16 + 3 * 6);  // header, then 3 of the 10 items
  for (const bool gz : {false, true}) {
    const std::string path = file(gz ? "cut.gz" : "cut").string();
    (gz ? write_gzip : write_plain)(path, cut);
    for (const int64_t n : {0, 2, 3}) {
      const bp::IdxArray array = bp::read_idx(path, n);
      EXPECT_EQ(array.dims, (std::vector<int64_t>{n, 2, 3})) << path << " n=" << n;
      EXPECT_EQ(array.file_items, 10);
      EXPECT_EQ(array.data, Bytes(whole.begin() + 16, whole.begin() + 16 + n * 6)) << path;
    }
    expect_error([&] { bp::read_idx(path, 4); }, path + ": truncated: header says 60 bytes");
    expect_error([&] { bp::read_idx(path); }, path + ": truncated");
  }
  // A limit at or past the count reads everything, checks included.
  Bytes extra = whole;
  extra.push_back(0);
  write_plain(file("extra"), extra);
  EXPECT_EQ(bp::read_idx(file("extra").string(), 3).dims[0], 3);
  expect_error([&] { bp::read_idx(file("extra").string(), 10); }, "trailing garbage");
  expect_error([&] { bp::read_idx(file("extra").string(), 11); }, "trailing garbage");
}

TEST_F(IdxTest, MissingFileNamesPath) {
  const std::string path = file("nope").string();
  expect_error([&] { bp::read_idx(path); }, path);
}

// ---- load_dataset ------------------------------------------------------------------------

TEST_F(DatasetTest, LoadsMnistDirectory) {
  write_mnist_dir(12, 5, 4, 3);
  const bp::Dataset data = bp::load_dataset(spec("mnist"));
  EXPECT_EQ(data.name, "mnist");
  EXPECT_EQ(data.source, dir_.string());
  EXPECT_EQ(data.classes, 10);
  ASSERT_EQ(data.class_names.size(), 10u);
  EXPECT_EQ(data.class_names[0], "0");
  EXPECT_EQ(data.class_names[9], "9");
  EXPECT_EQ(data.train.count, 12);
  EXPECT_EQ(data.test.count, 5);
  EXPECT_EQ(data.train.height, 4);
  EXPECT_EQ(data.train.width, 3);
  EXPECT_EQ(data.train.channels, 1);
  EXPECT_EQ(data.train.pixels, iota_bytes(12 * 12));
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{0, 1, 2, 3, 4}));
}

TEST_F(DatasetTest, AcceptsPlainAndDottedFileNames) {
  write_mnist_dir(3, 2, 2, 2, /*gz=*/false);
  fs::rename(file("t10k-images-idx3-ubyte"), file("t10k-images.idx3-ubyte"));
  const bp::Dataset data = bp::load_dataset(spec("mnist"));
  EXPECT_EQ(data.train.count, 3);
  EXPECT_EQ(data.test.count, 2);
}

TEST_F(DatasetTest, CountMismatchNamesBothFiles) {
  write_mnist_dir(6, 4);
  write_gzip(file("train-labels-idx1-ubyte.gz"), idx_bytes({5}, Bytes(5, 1)));
  expect_error([&] { bp::load_dataset(spec("mnist")); }, "image/label count mismatch");
  expect_error([&] { bp::load_dataset(spec("mnist")); },
               file("train-images-idx3-ubyte.gz").string());
  expect_error([&] { bp::load_dataset(spec("mnist")); },
               file("train-labels-idx1-ubyte.gz").string());
}

TEST_F(DatasetTest, LabelOutOfRangeFails) {
  write_mnist_dir(3, 2);
  write_gzip(file("t10k-labels-idx1-ubyte.gz"), idx_bytes({2}, {3, 10}));
  expect_error([&] { bp::load_dataset(spec("mnist")); }, "label 10 at index 1");
}

TEST_F(DatasetTest, ImagesMustBeThreeDimensional) {
  write_mnist_dir(3, 2);
  write_gzip(file("train-images-idx3-ubyte.gz"), idx_bytes({3, 4}, iota_bytes(12)));
  expect_error([&] { bp::load_dataset(spec("mnist")); }, "expected 3-D images");
}

TEST_F(DatasetTest, MissingFileNamesPath) {
  write_mnist_dir(3, 2);
  fs::remove(file("t10k-labels-idx1-ubyte.gz"));
  expect_error([&] { bp::load_dataset(spec("mnist")); },
               file("t10k-labels-idx1-ubyte").string());
}

TEST_F(DatasetTest, MissingDirectoryNamesPath) {
  const std::string missing = file("absent").string();
  expect_error([&] { bp::load_dataset("fashion-mnist:" + missing); }, missing);
}

TEST_F(DatasetTest, UnknownSpecListsKnownForms) {
  expect_error([] { bp::load_dataset("svhn:/data"); }, "unknown data set spec 'svhn:/data'");
  expect_error([] { bp::load_dataset("svhn:/data"); }, "fashion-mnist[:DIR]");
  expect_error([] { bp::load_dataset("mnist"); }, "needs a directory");
  const std::vector<std::string> forms = bp::dataset_spec_forms();
  EXPECT_NE(std::find(forms.begin(), forms.end(), "mnist:DIR"), forms.end());
}

TEST_F(DatasetTest, LimitsKeepTheFirstImages) {
  write_mnist_dir(12, 5, 2, 2);
  bp::DataLimits limits;
  limits.train = 7;
  limits.test = 50;  // more than there are: all kept
  const bp::Dataset data = bp::load_dataset(spec("mnist"), limits);
  EXPECT_EQ(data.train.count, 7);
  EXPECT_EQ(data.train.pixels, iota_bytes(7 * 4));
  EXPECT_EQ(data.train.labels, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(data.test.count, 5);
  EXPECT_EQ(data.test.labels.size(), 5u);
}

// The limits reach the IDX reader: images past them are never read (a cut tail loads), while
// the labels are read whole: every one is checked and the class counts cover the whole split.
TEST_F(DatasetTest, LimitsReadOnlyTheKeptImages) {
  write_mnist_dir(12, 5, 2, 2);
  Bytes cut = idx_bytes({12, 2, 2}, iota_bytes(12 * 4));
  cut.resize(16 + 7 * 4);
  write_gzip(file("train-images-idx3-ubyte.gz"), cut);
  bp::DataLimits limits;
  limits.train = 7;
  limits.test = 1;
  const bp::Dataset data = bp::load_dataset(spec("mnist"), limits);
  EXPECT_EQ(data.train.count, 7);
  EXPECT_EQ(data.train.pixels, iota_bytes(7 * 4));
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{0}));
  EXPECT_EQ(data.train_class_counts, (std::vector<int64_t>{2, 2, 1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(data.test_class_counts, (std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}));
  limits.train = 8;
  expect_error([&] { bp::load_dataset(spec("mnist"), limits); }, "truncated");
  // A bad label past the limit still fails the load.
  write_mnist_dir(12, 5, 2, 2);
  Bytes labels(12, 1);
  labels[11] = 10;
  write_gzip(file("train-labels-idx1-ubyte.gz"), idx_bytes({12}, labels));
  limits.train = 2;
  expect_error([&] { bp::load_dataset(spec("mnist"), limits); }, "label 10 at index 11");
}

TEST_F(DatasetTest, FashionMnistClassNames) {
  write_mnist_dir(2, 2);
  const bp::Dataset data = bp::load_dataset(spec("fashion-mnist"));
  EXPECT_EQ(data.name, "fashion-mnist");
  EXPECT_EQ(data.class_names,
            (std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                      "Shirt", "Sneaker", "Bag", "Ankle boot"}));
}

TEST(DatasetRealTest, FashionMnistFromDebianPackage) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not found (install dataset-fashion-mnist)";
  const bp::Dataset data = bp::load_dataset("fashion-mnist");
  EXPECT_EQ(data.source, dir);
  EXPECT_EQ(data.train.count, 60000);
  EXPECT_EQ(data.test.count, 10000);
  for (const bp::ImageSet* set : {&data.train, &data.test}) {
    EXPECT_EQ(set->height, 28);
    EXPECT_EQ(set->width, 28);
    EXPECT_EQ(set->channels, 1);
    EXPECT_EQ(int64_t(set->pixels.size()), set->count * 28 * 28);
    ASSERT_EQ(int64_t(set->labels.size()), set->count);
    for (int32_t label : set->labels) ASSERT_TRUE(label >= 0 && label < data.classes) << label;
  }
}

}  // namespace
