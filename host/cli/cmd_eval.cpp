// `brainprop eval`: rebuilds the net a checkpoint describes and reports its test accuracy.
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/net.h"
#include "train/checkpoint.h"
#include "train/device_data.h"
#include "train/trainer.h"
#include "train/training_step.h"

namespace bp::cli {

int run_eval(const std::vector<std::string>& argv) {
  const Args args(argv, {"data", "backend", "threads", "batch", "test-limit", "math"}, {"help"});
  if (args.flag("help") || args.positionals().size() != 1) {
    std::fputs("usage: brainprop eval RUN_DIR|CHECKPOINT.safetensors [--data SPEC] "
               "[--backend auto|cpu|cuda] [--math fp32|tf32] [--threads N] [--batch N] [--test-limit N]\n"
               "A run directory means its best.safetensors. Prints a JSON object.\n",
               args.flag("help") ? stdout : stderr);
    return args.flag("help") ? 0 : 2;
  }
  std::string path = args.positionals()[0];
  if (std::filesystem::is_directory(path)) path += "/best.safetensors";
  const CheckpointInfo info = read_checkpoint_info(path);
  const std::string spec = args.get("data", info.config.data_spec);
  const Dataset data = load_dataset(spec, DataLimits{-1, args.get_int64("test-limit", -1)});
  auto be = make_backend(args.get("backend", "auto"), args.get_int("threads", 0),
                         args.get("math", "fp32"));
  const int batch = args.get_int("batch", 500);
  Net net(info.config.model, {data.test.height, data.test.width, data.test.channels}, data.classes,
          *be, batch, DType::F32, info.config.seed);
  load_checkpoint_weights(info, path, net);
  DeviceImages test(*be, data.test);
  BatchLoader loader(*be, test, batch, DType::F32);
  Tensor stats = be->empty({kStatCount}, DType::F64);
  const double accuracy = evaluate_accuracy(net, loader, batch, stats);
  const nlohmann::json out = {{"checkpoint", path},           {"epoch", info.epoch},
                              {"data", spec},                 {"model", info.config.model.name},
                              {"rule", rule_name(info.config.rule)},
                              {"test_images", data.test.count}, {"test_accuracy", accuracy}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace bp::cli
