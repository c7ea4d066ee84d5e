// CIFAR binary reader: the input is [variant byte][u16 n][n bytes: class-names file][rest:
// records]. The variant (byte % 3) picks cifar10, cifar100 or cifar100-coarse; the records
// are written as every data file of that variant, the names file only when n > 0.
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "fuzz_common.h"

namespace {

struct Variant {
  const char* spec;
  const char* names_file;
  std::vector<const char*> data_files;
};

const Variant kVariants[] = {
    {"cifar10", "batches.meta.txt",
     {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
      "test_batch.bin"}},
    {"cifar100", "fine_label_names.txt", {"train.bin", "test.bin"}},
    {"cifar100-coarse", "coarse_label_names.txt", {"train.bin", "test.bin"}},
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bp_fuzz::quiet_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Variant& variant = kVariants[data[0] % 3];
  const bp_fuzz::TwoParts parts = bp_fuzz::split_two(data + 1, size - 1);
  // One directory per variant, so that no file of an earlier input is left to matter.
  const std::string dir = bp_fuzz::scratch_dir() + "/" + variant.spec;
  for (const char* file : variant.data_files) bp_fuzz::write_file(dir + "/" + file, parts.second);
  const std::string names = dir + "/" + variant.names_file;
  if (parts.first.empty()) {
    std::error_code ec;
    bp_fuzz::fs::remove(names, ec);
  } else {
    bp_fuzz::write_file(names, parts.first);
  }
  bp_fuzz::expect_success_or_error([&] {
    const bp::Dataset set = bp::load_dataset(std::string(variant.spec) + ":" + dir);
    bp_fuzz::require(int(set.class_names.size()) == set.classes, "CIFAR: class names != classes");
    for (const bp::ImageSet* s : {&set.train, &set.test}) {
      bp_fuzz::require(int64_t(s->pixels.size()) == s->count * s->image_elements() &&
                           int64_t(s->labels.size()) == s->count,
                       "CIFAR data set: sizes disagree");
      for (int32_t label : s->labels) bp_fuzz::require(label >= 0 && label < set.classes, "CIFAR: bad label");
    }
  });
  return 0;
}
