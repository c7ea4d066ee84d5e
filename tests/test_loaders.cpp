// The image data-set loaders (CIFAR binary, Tiny ImageNet, image folders) and the decoded
// cache, on small synthetic trees that each test writes into its own temp directory: CIFAR
// records by hand, JPEGs encoded here with TurboJPEG.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_cache.h"
#include "data/jpeg_decode.h"
#include "test_helpers.h"

#if BRAINPROP_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

using bp::test::expect_error;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_text(const fs::path& path, const std::string& text) {
  write_bytes(path, Bytes(text.begin(), text.end()));
}

// Sets an environment variable for the scope, then puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

// A fresh temp directory, with the decoded cache pointed into it, removed at the end.
class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_env_ = std::make_unique<ScopedEnv>("BRAINPROP_CACHE_DIR", (dir_ / "cache").c_str());
  }
  void TearDown() override { cache_env_.reset(); }

  // The single cache file the loads so far have written.
  fs::path cache_file() const {
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_ / "cache", ec)) {
      if (entry.path().extension() == ".bpcache") found.push_back(entry.path());
    }
    EXPECT_EQ(found.size(), 1u);
    return found.empty() ? fs::path() : found.front();
  }

  const bp::test::TempDir tmp_{"bp_loader_test"};
  const fs::path dir_ = tmp_.path();
  std::unique_ptr<ScopedEnv> cache_env_;
};

// ---- CIFAR ---------------------------------------------------------------------------------

constexpr int kPlane = 32 * 32;

// One CIFAR record: label byte(s), then R, G, B planes; pixel (y, x) of plane c is seed-based,
// except (2, 5), which holds 200 / 100 / 50.
Bytes cifar_record(const Bytes& labels, int seed) {
  Bytes out = labels;
  for (int c = 0; c < 3; ++c) {
    for (int p = 0; p < kPlane; ++p) out.push_back(uint8_t((seed * 7 + c * 31 + p) % 251));
  }
  const int p = 2 * 32 + 5;
  out[labels.size() + p] = 200;
  out[labels.size() + kPlane + p] = 100;
  out[labels.size() + 2 * kPlane + p] = 50;
  return out;
}

Bytes records(const std::vector<Bytes>& labels, int seed) {
  Bytes out;
  for (size_t i = 0; i < labels.size(); ++i) {
    const Bytes r = cifar_record(labels[i], seed + int(i));
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

class CifarTest : public LoaderTest {
 protected:
  // cifar-10-batches-bin with two records per training batch (labels b, b+1) and three test.
  fs::path write_cifar10() {
    const fs::path bin = dir_ / "cifar-10-batches-bin";
    for (int b = 1; b <= 5; ++b) {
      write_bytes(bin / ("data_batch_" + std::to_string(b) + ".bin"),
                  records({{uint8_t(b)}, {uint8_t(b + 1)}}, b));
    }
    write_bytes(bin / "test_batch.bin", records({{9}, {0}, {3}}, 100));
    return bin;
  }
  fs::path write_cifar100() {
    const fs::path bin = dir_ / "cifar-100-binary";
    write_bytes(bin / "train.bin", records({{3, 42}, {19, 99}, {0, 0}}, 1));
    write_bytes(bin / "test.bin", records({{7, 12}}, 50));
    return bin;
  }
};

TEST_F(CifarTest, Cifar10PlanarToInterleaved) {
  const fs::path bin = write_cifar10();
  const bp::Dataset data = bp::load_dataset("cifar10:" + bin.string());
  EXPECT_EQ(data.name, "cifar10");
  EXPECT_EQ(data.classes, 10);
  EXPECT_EQ(data.class_names.front(), "airplane");  // no batches.meta.txt: the standard names
  EXPECT_EQ(data.class_names.back(), "truck");
  ASSERT_EQ(data.train.count, 10);
  ASSERT_EQ(data.test.count, 3);
  EXPECT_EQ(data.train.height, 32);
  EXPECT_EQ(data.train.width, 32);
  EXPECT_EQ(data.train.channels, 3);
  EXPECT_EQ(data.train.labels, (std::vector<int32_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6}));
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{9, 0, 3}));
  for (const bp::ImageSet* set : {&data.train, &data.test}) {
    ASSERT_EQ(set->pixels.size(), size_t(set->count) * 3072);
    for (int64_t i = 0; i < set->count; ++i) {
      const uint8_t* pixel = set->pixels.data() + i * 3072 + (2 * 32 + 5) * 3;
      ASSERT_EQ(pixel[0], 200);
      ASSERT_EQ(pixel[1], 100);
      ASSERT_EQ(pixel[2], 50);
    }
  }
  // Train image 3 is batch 2's second record (seed 3); pixel (0, 1) of plane c is 3*7 + c*31 + 1.
  const uint8_t* p01 = data.train.pixels.data() + 3 * 3072 + 1 * 3;
  EXPECT_EQ(p01[0], uint8_t((3 * 7 + 0 + 1) % 251));
  EXPECT_EQ(p01[1], uint8_t((3 * 7 + 31 + 1) % 251));
  EXPECT_EQ(p01[2], uint8_t((3 * 7 + 62 + 1) % 251));
}

TEST_F(CifarTest, Cifar10ParentDirAndMetaNames) {
  const fs::path bin = write_cifar10();
  write_text(bin / "batches.meta.txt", "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n");
  const bp::Dataset data = bp::load_dataset("cifar10:" + dir_.string());
  EXPECT_EQ(data.source, bin.string());
  EXPECT_EQ(data.class_names[0], "a0");
  EXPECT_EQ(data.class_names[9], "a9");
  write_text(bin / "batches.meta.txt", "a0\na1\n");
  expect_error([&] { bp::load_dataset("cifar10:" + dir_.string()); }, "lists 2 class names");
}

TEST_F(CifarTest, Cifar100FineByDefaultCoarseOnRequest) {
  const fs::path bin = write_cifar100();
  const bp::Dataset fine = bp::load_dataset("cifar100:" + dir_.string());
  EXPECT_EQ(fine.name, "cifar100");
  EXPECT_EQ(fine.classes, 100);
  EXPECT_EQ(fine.class_names[42], "leopard");
  EXPECT_EQ(fine.class_names[99], "worm");
  EXPECT_EQ(fine.train.labels, (std::vector<int32_t>{42, 99, 0}));
  EXPECT_EQ(fine.test.labels, (std::vector<int32_t>{12}));
  EXPECT_EQ(fine.train.pixels[(2 * 32 + 5) * 3 + 1], 100);

  write_text(bin / "coarse_label_names.txt", [] {
    std::string names;
    for (int i = 0; i < 20; ++i) names += "coarse" + std::to_string(i) + "\n";
    return names;
  }());
  const bp::Dataset coarse = bp::load_dataset("cifar100-coarse:" + bin.string());
  EXPECT_EQ(coarse.classes, 20);
  EXPECT_EQ(coarse.class_names[19], "coarse19");
  EXPECT_EQ(coarse.train.labels, (std::vector<int32_t>{3, 19, 0}));
  EXPECT_EQ(coarse.test.labels, (std::vector<int32_t>{7}));
  EXPECT_EQ(coarse.train.pixels, fine.train.pixels);
}

TEST_F(CifarTest, TruncatedFileNamesIt) {
  const fs::path bin = write_cifar10();
  fs::resize_file(bin / "test_batch.bin", 3 * 3073 - 100);
  expect_error(
      [&] { bp::load_dataset("cifar10:" + bin.string()); },
      (bin / "test_batch.bin").string() + ": size 9119 bytes is not a positive multiple of the 3073-byte");
}

TEST_F(CifarTest, LabelOutOfRangeNamesFileAndRecord) {
  const fs::path bin = write_cifar10();
  write_bytes(bin / "data_batch_4.bin", records({{1}, {10}}, 0));
  expect_error([&] { bp::load_dataset("cifar10:" + bin.string()); },
               (bin / "data_batch_4.bin").string() + ": record 1: label 10 is outside [0, 10)");
  const fs::path bin100 = write_cifar100();
  write_bytes(bin100 / "test.bin", records({{20, 5}}, 0));
  expect_error([&] { bp::load_dataset("cifar100:" + bin100.string()); }, "coarse label 20");
}

TEST_F(CifarTest, MissingFilesNamed) {
  const fs::path bin = write_cifar10();
  fs::remove(bin / "data_batch_3.bin");
  expect_error([&] { bp::load_dataset("cifar10:" + bin.string()); },
               (bin / "data_batch_3.bin").string() + ": missing file");
  expect_error([&] { bp::load_dataset("cifar100:" + dir_.string()); }, (dir_ / "test.bin").string());
}

TEST_F(CifarTest, LimitsKeepTheFirstImages) {
  const fs::path bin = write_cifar10();
  const bp::Dataset data = bp::load_dataset("cifar10:" + bin.string(), bp::DataLimits{4, 1});
  EXPECT_EQ(data.train.count, 4);
  EXPECT_EQ(data.train.pixels.size(), 4u * 3072);
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{9}));
}

// ---- JPEG trees ----------------------------------------------------------------------------

struct Rgb {
  uint8_t r, g, b;
};

#if BRAINPROP_HAVE_TURBOJPEG

// Writes a flat-colour JPEG (quality 95, no chroma subsampling, so it decodes to within a few
// levels of `colour`); gray = true writes a one-channel JPEG of level colour.r.
void write_jpeg(const fs::path& path, int height, int width, Rgb colour, bool gray = false) {
  Bytes pixels;
  for (int i = 0; i < height * width; ++i) {
    pixels.push_back(colour.r);
    if (!gray) {
      pixels.push_back(colour.g);
      pixels.push_back(colour.b);
    }
  }
  tjhandle handle = tjInitCompress();
  ASSERT_NE(handle, nullptr);
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle, pixels.data(), width, 0, height, gray ? TJPF_GRAY : TJPF_RGB, &jpeg,
                             &size, gray ? TJSAMP_GRAY : TJSAMP_444, 95, 0);
  tjDestroy(handle);
  ASSERT_EQ(rc, 0);
  write_bytes(path, Bytes(jpeg, jpeg + size));
  tjFree(jpeg);
}

// Writes a flat-colour CMYK JPEG: TurboJPEG stores CMYK pixels as a YCCK JPEG with an Adobe
// marker, `cmyk` as given (Adobe's inverted convention: 255 = no ink).
void write_cmyk_jpeg(const fs::path& path, int height, int width, const uint8_t (&cmyk)[4]) {
  Bytes pixels;
  for (int i = 0; i < height * width; ++i) pixels.insert(pixels.end(), cmyk, cmyk + 4);
  tjhandle handle = tjInitCompress();
  ASSERT_NE(handle, nullptr);
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle, pixels.data(), width, 0, height, TJPF_CMYK, &jpeg, &size, TJSAMP_444, 95, 0);
  tjDestroy(handle);
  ASSERT_EQ(rc, 0);
  write_bytes(path, Bytes(jpeg, jpeg + size));
  tjFree(jpeg);
}

#define SKIP_WITHOUT_TURBOJPEG() (void)0

#else

void write_jpeg(const fs::path&, int, int, Rgb, bool = false) {}
void write_cmyk_jpeg(const fs::path&, int, int, const uint8_t (&)[4]) {}

#define SKIP_WITHOUT_TURBOJPEG() GTEST_SKIP() << "built without libjpeg-turbo"

#endif

// Image i of `set` is within a few levels of `colour` everywhere.
::testing::AssertionResult image_is(const bp::ImageSet& set, int64_t i, Rgb colour) {
  const int64_t n = set.image_elements();
  for (int64_t p = 0; p < n; p += 3) {
    const uint8_t* px = set.pixels.data() + i * n + p;
    const int want[3] = {colour.r, colour.g, colour.b};
    for (int c = 0; c < 3; ++c) {
      if (std::abs(int(px[c]) - want[c]) > 3) {
        return ::testing::AssertionFailure() << "image " << i << " element " << p + c << " is " << int(px[c])
                                             << ", expected about " << want[c];
      }
    }
  }
  return ::testing::AssertionSuccess();
}

const Rgb kColours[] = {{250, 10, 10}, {10, 250, 10}, {10, 10, 250}, {200, 200, 40}};

// ---- Tiny ImageNet ---------------------------------------------------------------------------

class TinyImageNetTest : public LoaderTest {
 protected:
  // 3 classes, 2 training images each (8x8; class 1's second one grayscale), 3 val images.
  fs::path write_tree() {
    const fs::path root = dir_ / "tiny-imagenet-200";
    const std::vector<std::string> wnids = {"n003", "n001", "n002"};
    write_text(root / "wnids.txt", "n003\nn001\nn002\n");
    write_text(root / "words.txt", "n001\tgoldfish, Carassius auratus\nn003\ttabby cat\nn999\tunused\n");
    for (int c = 0; c < 3; ++c) {
      const fs::path images = root / "train" / wnids[size_t(c)] / "images";
      write_jpeg(images / (wnids[size_t(c)] + "_0.JPEG"), 8, 8, kColours[c]);
      write_jpeg(images / (wnids[size_t(c)] + "_1.JPEG"), 8, 8, c == 1 ? Rgb{90, 90, 90} : kColours[c],
                 c == 1);
      write_text(root / "train" / wnids[size_t(c)] / (wnids[size_t(c)] + "_boxes.txt"), "ignored\n");
    }
    write_jpeg(root / "val" / "images" / "val_0.JPEG", 8, 8, kColours[2]);
    write_jpeg(root / "val" / "images" / "val_1.JPEG", 8, 8, kColours[0]);
    write_jpeg(root / "val" / "images" / "val_2.JPEG", 8, 8, kColours[3]);
    write_text(root / "val" / "val_annotations.txt",
               "val_1.JPEG\tn003\t0\t0\t7\t7\nval_0.JPEG\tn002\t1\t1\t5\t5\nval_2.JPEG\tn001\t0\t0\t3\t3\n");
    return root;
  }
};

TEST_F(TinyImageNetTest, LoadsTreeWithGrayscaleAsRgb) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const bp::Dataset data = bp::load_dataset("tiny-imagenet:" + root.string());
  EXPECT_EQ(data.name, "tiny-imagenet");
  EXPECT_EQ(data.classes, 3);
  EXPECT_EQ(data.class_names, (std::vector<std::string>{"tabby cat", "goldfish, Carassius auratus", "n002"}));
  ASSERT_EQ(data.train.count, 6);
  ASSERT_EQ(data.test.count, 3);
  EXPECT_EQ(data.train.height, 8);
  EXPECT_EQ(data.train.width, 8);
  EXPECT_EQ(data.train.channels, 3);
  // Interleaved by class: file 0 of each class, then file 1 of each.
  EXPECT_EQ(data.train.labels, (std::vector<int32_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_TRUE(image_is(data.train, 0, kColours[0]));
  EXPECT_TRUE(image_is(data.train, 2, kColours[2]));
  EXPECT_TRUE(image_is(data.train, 4, {90, 90, 90}));  // the grayscale JPEG, as R = G = B
  // val sorted by file name, labelled by val_annotations.txt.
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{2, 0, 1}));
  EXPECT_TRUE(image_is(data.test, 0, kColours[2]));
  EXPECT_TRUE(image_is(data.test, 2, kColours[3]));
}

TEST_F(TinyImageNetTest, ClassMissingFromValIsAWarning) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  // No val image of n003 (tabby cat) or n002.
  write_text(root / "val" / "val_annotations.txt", "val_2.JPEG\tn001\t0\t0\t3\t3\n");
  ::testing::internal::CaptureStderr();
  bp::load_dataset("tiny-imagenet:" + root.string());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("brainprop: warning: " + root.string() +
                     ": 2 of 3 classes have training images but no test images: \"tabby cat\", \"n002\""),
            std::string::npos)
      << err;
}

TEST_F(TinyImageNetTest, CorruptJpegNamesFile) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const fs::path bad = root / "val" / "images" / "val_1.JPEG";
  write_bytes(bad, Bytes{'n', 'o', 't', ' ', 'a', ' ', 'J', 'P', 'E', 'G', 0, 1, 2, 3});
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); }, bad.string() + ": ");
}

TEST_F(TinyImageNetTest, TruncatedJpegNamesFile) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const fs::path bad = root / "train" / "n002" / "images" / "n002_1.JPEG";
  fs::resize_file(bad, fs::file_size(bad) - 3);  // keeps the headers, loses the end of the scan
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); },
               bad.string() + ": corrupt JPEG");
}

TEST_F(TinyImageNetTest, OtherSizeNamesFile) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const fs::path odd = root / "val" / "images" / "val_2.JPEG";
  write_jpeg(odd, 16, 8, kColours[0]);
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); },
               odd.string() + ": image is 16x8, the data set's images are 8x8");
}

TEST_F(TinyImageNetTest, BadAnnotationsAndMissingFiles) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const fs::path annotations = root / "val" / "val_annotations.txt";
  write_text(annotations, "val_0.JPEG\tn777\t0\t0\t1\t1\n");
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); },
               annotations.string() + ": line 1: class n777 is not in wnids.txt");
  write_text(annotations, "val_9.JPEG\tn001\t0\t0\t1\t1\n");
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); },
               (root / "val" / "images" / "val_9.JPEG").string());
  fs::remove(root / "wnids.txt");
  expect_error([&] { bp::load_dataset("tiny-imagenet:" + root.string()); },
               (root / "wnids.txt").string() + ": missing file");
}

// ---- image folders ---------------------------------------------------------------------------

class FolderTest : public LoaderTest {
 protected:
  // Classes "cat" and "ant" (sorted: ant = 0, cat = 1); 3 + 2 training images, 1 + 1 test.
  fs::path write_tree() {
    const fs::path root = dir_ / "images";
    write_jpeg(root / "train" / "cat" / "b.jpg", 6, 4, kColours[1]);
    write_jpeg(root / "train" / "cat" / "a.jpeg", 6, 4, kColours[0]);
    write_jpeg(root / "train" / "cat" / "c.JPG", 6, 4, kColours[2]);
    write_text(root / "train" / "cat" / "notes.txt", "skipped\n");
    write_jpeg(root / "train" / "ant" / "x.JPEG", 6, 4, kColours[3]);
    write_jpeg(root / "train" / "ant" / "y.jpg", 6, 4, kColours[2]);
    write_jpeg(root / "test" / "ant" / "t.jpg", 6, 4, kColours[0]);
    write_jpeg(root / "test" / "cat" / "t.jpg", 6, 4, kColours[1]);
    return root;
  }
};

TEST_F(FolderTest, LoadsSortedClassesAndFiles) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const bp::Dataset data = bp::load_dataset("folder:" + root.string());
  EXPECT_EQ(data.name, "folder");
  EXPECT_EQ(data.source, root.string());
  EXPECT_EQ(data.class_names, (std::vector<std::string>{"ant", "cat"}));
  ASSERT_EQ(data.train.count, 5);
  EXPECT_EQ(data.train.height, 6);
  EXPECT_EQ(data.train.width, 4);
  // ant/x, cat/a.jpeg, ant/y, cat/b, cat/c.JPG
  EXPECT_EQ(data.train.labels, (std::vector<int32_t>{0, 1, 0, 1, 1}));
  EXPECT_TRUE(image_is(data.train, 0, kColours[3]));
  EXPECT_TRUE(image_is(data.train, 1, kColours[0]));
  EXPECT_TRUE(image_is(data.train, 2, kColours[2]));
  EXPECT_TRUE(image_is(data.train, 3, kColours[1]));
  EXPECT_TRUE(image_is(data.train, 4, kColours[2]));
  EXPECT_EQ(data.test.labels, (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(image_is(data.test, 1, kColours[1]));
}

TEST_F(FolderTest, TestClassesMustMatchTrain) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  write_jpeg(root / "test" / "dog" / "t.jpg", 6, 4, kColours[1]);
  expect_error([&] { bp::load_dataset("folder:" + root.string()); }, "missing none; extra dog");
  fs::remove_all(root / "test");
  expect_error([&] { bp::load_dataset("folder:" + root.string()); },
               (root / "test").string() + ": no such directory");
}

TEST_F(FolderTest, FirstImageOfAnotherSizeIsNamed) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  write_jpeg(root / "train" / "cat" / "b.jpg", 4, 6, kColours[1]);
  write_jpeg(root / "train" / "cat" / "c.JPG", 5, 4, kColours[1]);
  expect_error([&] { bp::load_dataset("folder:" + root.string()); },
               (root / "train" / "cat" / "b.jpg").string() + ": image is 4x6");
}

TEST_F(FolderTest, CmykJpegsDecodeToRgb) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  // Stored (inverted) C, M, Y, K: R = C * K / 255, G = M * K / 255, B = Y * K / 255.
  write_cmyk_jpeg(root / "train" / "cat" / "b.jpg", 6, 4, {255, 0, 0, 255});      // red
  write_cmyk_jpeg(root / "test" / "cat" / "t.jpg", 6, 4, {200, 100, 50, 204});    // K ink 20%
  const bp::Dataset data = bp::load_dataset("folder:" + root.string());
  EXPECT_TRUE(image_is(data.train, 3, {255, 0, 0}));   // ant/x, cat/a.jpeg, ant/y, cat/b
  EXPECT_TRUE(image_is(data.test, 1, {160, 80, 40}));
  EXPECT_TRUE(image_is(data.train, 1, kColours[0]));   // the RGB ones beside them unchanged
}

TEST_F(FolderTest, HugeSizeInAJpegHeaderIsRefusedBeforeAllocating) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  // The start-of-frame segment (FF C0, length, precision, height, width) says 65500 x 65500:
  // valid JPEG, 12 GiB of RGB per image.
  const fs::path bad = root / "train" / "ant" / "x.JPEG";
  std::ifstream in(bad, std::ios::binary);
  Bytes jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t sof = 0;
  while (sof + 9 < jpeg.size() && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  ASSERT_LT(sof + 9, jpeg.size());
  for (size_t at : {sof + 5, sof + 7}) {
    jpeg[at] = 0xFF;
    jpeg[at + 1] = 0xDC;
  }
  write_bytes(bad, jpeg);
  expect_error([&] { bp::load_dataset("folder:" + root.string()); },
               bad.string() + ": image is 65500x65500, larger than brainprop decodes");
}

TEST_F(FolderTest, ClassWithoutTestImagesIsAWarning) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  write_jpeg(root / "train" / "dog" / "d.jpg", 6, 4, kColours[3]);
  fs::create_directories(root / "test" / "dog");  // the class folder is there, empty
  ::testing::internal::CaptureStderr();
  const bp::Dataset data = bp::load_dataset("folder:" + root.string(), {1, -1});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(data.classes, 3);
  EXPECT_NE(err.find("brainprop: warning: " + root.string() +
                     ": 1 of 3 classes have training images but no test images: \"dog\""),
            std::string::npos)
      << err;
  // Every class with test images: no warning.
  fs::remove_all(root / "train" / "dog");
  fs::remove_all(root / "test" / "dog");
  ::testing::internal::CaptureStderr();
  bp::load_dataset("folder:" + root.string());
  const std::string quiet = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(quiet.find("warning"), std::string::npos) << quiet;
}

TEST_F(FolderTest, WithoutTurboJpegTheErrorSaysWhatToInstall) {
  if (bp::jpeg_support_compiled()) GTEST_SKIP() << "this build has libjpeg-turbo";
  expect_error([&] { bp::load_dataset("folder:" + dir_.string()); },
               "install libturbojpeg0-dev and rebuild");
}

// ---- the decoded cache -------------------------------------------------------------------------

using CacheTest = FolderTest;

TEST_F(CacheTest, SecondLoadReadsTheCache) {
  SKIP_WITHOUT_TURBOJPEG();
  const std::string spec = "folder:" + write_tree().string();
  const int64_t before = bp::jpeg_images_decoded();
  const bp::Dataset first = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);
  const bp::Dataset second = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);  // nothing decoded again
  EXPECT_EQ(second.name, first.name);
  EXPECT_EQ(second.source, first.source);
  EXPECT_EQ(second.class_names, first.class_names);
  EXPECT_EQ(second.train.pixels, first.train.pixels);
  EXPECT_EQ(second.train.labels, first.train.labels);
  EXPECT_EQ(second.test.pixels, first.test.pixels);
  EXPECT_EQ(second.test.height, 6);
}

TEST_F(CacheTest, ChangedSourceIsDecodedAgain) {
  SKIP_WITHOUT_TURBOJPEG();
  const fs::path root = write_tree();
  const std::string spec = "folder:" + root.string();
  bp::load_dataset(spec);
  const fs::path changed = root / "test" / "cat" / "t.jpg";
  write_jpeg(changed, 6, 4, kColours[3]);
  fs::last_write_time(changed, fs::last_write_time(changed) + std::chrono::seconds(5));
  const int64_t before = bp::jpeg_images_decoded();
  const bp::Dataset data = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);
  EXPECT_TRUE(image_is(data.test, 1, kColours[3]));
  // A new file is a change too.
  write_jpeg(root / "test" / "cat" / "u.jpg", 6, 4, kColours[0]);
  EXPECT_EQ(bp::load_dataset(spec).test.count, 3);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 15);
}

TEST_F(CacheTest, TruncatedOrDamagedCacheIsRebuilt) {
  SKIP_WITHOUT_TURBOJPEG();
  const std::string spec = "folder:" + write_tree().string();
  const bp::Dataset first = bp::load_dataset(spec);
  const fs::path cache = cache_file();
  const auto full_size = fs::file_size(cache);

  fs::resize_file(cache, full_size - 10);
  int64_t before = bp::jpeg_images_decoded();
  bp::Dataset again = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);
  EXPECT_EQ(again.train.pixels, first.train.pixels);
  EXPECT_EQ(fs::file_size(cache), full_size);

  {  // one flipped pixel byte: same size, caught by the CRC
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(full_size - 20));
    f.put('\x7f');
  }
  before = bp::jpeg_images_decoded();
  again = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);
  EXPECT_EQ(again.test.pixels, first.test.pixels);

  write_text(cache, "garbage");
  before = bp::jpeg_images_decoded();
  again = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 7);
  EXPECT_EQ(again.train.labels, first.train.labels);
  before = bp::jpeg_images_decoded();
  bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 0);
}

TEST_F(CacheTest, LimitsDoNotShrinkTheCache) {
  SKIP_WITHOUT_TURBOJPEG();
  const std::string spec = "folder:" + write_tree().string();
  const bp::Dataset limited = bp::load_dataset(spec, bp::DataLimits{2, 1});
  EXPECT_EQ(limited.train.count, 2);
  EXPECT_EQ(limited.test.count, 1);
  const int64_t before = bp::jpeg_images_decoded();
  const bp::Dataset full = bp::load_dataset(spec);
  EXPECT_EQ(bp::jpeg_images_decoded() - before, 0);
  EXPECT_EQ(full.train.count, 5);
  EXPECT_EQ(full.test.count, 2);
}

TEST_F(CacheTest, DirectoryFromEnvironment) {
  {
    ScopedEnv cache("BRAINPROP_CACHE_DIR", "/x/bp");
    EXPECT_EQ(bp::image_cache_directory(), "/x/bp");
  }
  ScopedEnv cache("BRAINPROP_CACHE_DIR", nullptr);
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/x/xdg");
    EXPECT_EQ(bp::image_cache_directory(), "/x/xdg/brainprop");
  }
  ScopedEnv xdg("XDG_CACHE_HOME", "");
  ScopedEnv home("HOME", "/x/home");
  EXPECT_EQ(bp::image_cache_directory(), "/x/home/.cache/brainprop");
  // Named by the absolute source path: relative and absolute spellings share one file.
  const std::string here = fs::current_path().string();
  EXPECT_EQ(bp::image_cache_path("folder", "some/dir"), bp::image_cache_path("folder", here + "/some/dir"));
  EXPECT_NE(bp::image_cache_path("folder", "/a"), bp::image_cache_path("folder", "/b"));
  EXPECT_NE(bp::image_cache_path("folder", "/a"), bp::image_cache_path("tiny-imagenet", "/a"));
  EXPECT_EQ(bp::image_cache_path("folder", "/a").rfind("/x/home/.cache/brainprop/folder-", 0), 0u);
}

}  // namespace
