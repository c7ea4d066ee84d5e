// `brainprop inspect --data SPEC`: loads a data set and prints what the trainer would see
// (classes, image shape, split sizes, per-class counts) as JSON; a quick check of a download.
// With --memory (and --model, --rule, --batch, ... as for train): the run's device-memory
// estimate, part by part, and how many such runs each visible GPU has room for.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/train_options.h"
#include "data/dataset.h"
#include "train/memory_estimate.h"

namespace bp::cli {
namespace {

std::set<std::string> inspect_options() {
  std::set<std::string> names = training_value_options();
  names.insert({"data", "model", "rule"});
  return names;
}

// The estimate for the run `train --data SPEC --model ... --rule ...` would start, and what
// the visible GPUs can hold of it.
int print_memory(const Args& args, const Dataset& data) {
  TrainConfig c;
  c.data_spec = args.get("data", "");
  c.model_source = args.get("model", c.model_source);
  c.model = load_model(c.model_source);
  c.rule = parse_rule(args.get("rule", rule_name(c.rule)));
  apply_training_options(args, c);
  const RunMemoryEstimate e = estimate_run_memory(c, data);
  std::printf("memory estimate: %s %s %s, batch %d, eval batch %d, --val %s\n%s", data.name.c_str(),
              c.model.name.c_str(), rule_name(c.rule), c.batch_size, c.eval_batch, c.val.c_str(),
              e.breakdown().c_str());
  std::string why;
  const std::vector<GpuInfo> gpus = cuda_devices(&why);
  for (const GpuInfo& g : gpus)
    std::printf("GPU %d (%s): %s free of %s: room for %llu such runs at once\n", g.index,
                g.name.c_str(), format_bytes(g.free_bytes).c_str(), format_bytes(g.total_bytes).c_str(),
                static_cast<unsigned long long>(g.free_bytes / e.total()));
  if (gpus.empty()) std::printf("no GPU to compare with (%s)\n", why.c_str());
  return 0;
}

}  // namespace

int run_inspect(const std::vector<std::string>& argv) {
  const Args args(argv, inspect_options(), {"help", "memory"});
  if (args.flag("help") || !args.has("data") || !args.positionals().empty()) {
    std::string forms;
    for (const std::string& form : dataset_spec_forms()) forms += "  " + form + "\n";
    std::fprintf(args.flag("help") ? stdout : stderr,
                 "usage: brainprop inspect --data SPEC [--train-limit N] [--test-limit N]\n"
                 "       brainprop inspect --data SPEC --memory [--model M] [--rule R] [--batch N]\n"
                 "                         [--eval-batch N] [--val holdout|test] [train options]\n"
                 "Loads the data set and prints its classes, image shape and split sizes as JSON.\n"
                 "--memory prints the device memory the run would need, part by part, and how many\n"
                 "such runs each visible GPU has room for.\n"
                 "SPEC is one of:\n%s",
                 forms.c_str());
    return args.flag("help") ? 0 : 2;
  }
  if (!args.flag("memory"))
    for (const std::string& name : inspect_options())
      BP_CHECK(name == "data" || name == "train-limit" || name == "test-limit" || !args.has(name),
               "--" << name << " is an option of inspect --memory (add --memory)");
  const std::string spec = args.get("data", "");
  const Dataset data =
      load_dataset(spec, DataLimits{args.get_int64("train-limit", -1), args.get_int64("test-limit", -1)});
  if (args.flag("memory")) return print_memory(args, data);
  const nlohmann::json out = {
      {"name", data.name},
      {"spec", spec},
      {"source", data.source},
      {"classes", data.classes},
      {"class_names", data.class_names},
      {"image_shape", {data.train.height, data.train.width, data.train.channels}},
      {"train_images", data.train.count},
      {"test_images", data.test.count},
      {"train_per_class", class_counts(data.train, data.classes)},
      {"test_per_class", class_counts(data.test, data.classes)}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace bp::cli
