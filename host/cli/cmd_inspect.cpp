// `brainprop inspect --data SPEC`: loads a data set and prints what the trainer would see
// (classes, image shape, split sizes, per-class counts) as JSON; a quick check of a download.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "data/dataset.h"

namespace bp::cli {
namespace {

std::vector<int64_t> per_class_counts(const ImageSet& set, int classes) {
  std::vector<int64_t> counts(size_t(classes), 0);
  for (int32_t label : set.labels) ++counts[size_t(label)];
  return counts;
}

}  // namespace

int run_inspect(const std::vector<std::string>& argv) {
  const Args args(argv, {"data", "train-limit", "test-limit"}, {"help"});
  if (args.flag("help") || !args.has("data") || !args.positionals().empty()) {
    std::string forms;
    for (const std::string& form : dataset_spec_forms()) forms += "  " + form + "\n";
    std::fprintf(args.flag("help") ? stdout : stderr,
                 "usage: brainprop inspect --data SPEC [--train-limit N] [--test-limit N]\n"
                 "Loads the data set and prints its classes, image shape and split sizes as JSON.\n"
                 "SPEC is one of:\n%s",
                 forms.c_str());
    return args.flag("help") ? 0 : 2;
  }
  const std::string spec = args.get("data", "");
  const Dataset data =
      load_dataset(spec, DataLimits{args.get_int64("train-limit", -1), args.get_int64("test-limit", -1)});
  const nlohmann::json out = {
      {"name", data.name},
      {"spec", spec},
      {"source", data.source},
      {"classes", data.classes},
      {"class_names", data.class_names},
      {"image_shape", {data.train.height, data.train.width, data.train.channels}},
      {"train_images", data.train.count},
      {"test_images", data.test.count},
      {"train_per_class", per_class_counts(data.train, data.classes)},
      {"test_per_class", per_class_counts(data.test, data.classes)}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace bp::cli
