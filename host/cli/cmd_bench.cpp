// `brainprop bench`: times the training step (batch gather, forward, head, backward and
// in-place update) on synthetic data of the data set's shape; prints one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/net.h"
#include "train/device_data.h"
#include "train/trainer.h"
#include "train/step_runner.h"
#include "train/training_step.h"

namespace bp::cli {
namespace {

Shape parse_input_shape(const std::string& text) {
  Shape s;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, 'x')) {
    BP_CHECK(!part.empty() && part.find_first_not_of("0123456789") == std::string::npos,
             "--input expects HxWxC such as 28x28x1, got \"" << text << "\"");
    s.push_back(std::stoll(part));
  }
  BP_CHECK(s.size() == 3, "--input expects HxWxC such as 28x28x1, got \"" << text << "\"");
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int run_bench(const std::vector<std::string>& argv) {
  const Args args(argv, {"model", "rule", "steps", "repeats", "warmup", "batch", "threads",
                         "backend", "input", "classes", "seed", "math", "epoch-images"},
                  {"help", "no-graphs", "per-layer"});
  if (args.flag("help")) {
    std::fputs("usage: brainprop bench --model NAME|FILE --rule brainprop|ebp|reinforce [--steps 50] "
               "[--repeats 5] [--warmup 10] [--batch N] [--threads N] [--backend auto|cpu|cuda] "
               "[--input 28x28x1] [--classes 10] [--math fp32|tf32] [--no-graphs] [--per-layer] "
               "[--epoch-images N]\n"
               "Prints JSON: ms_per_step_median over repeats (each of --steps steps) after "
               "--warmup steps, and images_per_second; with --epoch-images N also seconds_per_epoch for "
               "an epoch of N images; with --per-layer the mean time of every layer's forward "
               "and backward over --steps more steps (plain launches, timed with CUDA events on a "
               "GPU).\n",
               stdout);
    return 0;
  }
  const ModelSpec model = load_model(args.get("model", "dense"));
  const Rule rule = parse_rule(args.get("rule", "brainprop"));
  const int steps = args.get_int("steps", 50), repeats = args.get_int("repeats", 5);
  const int warmup = args.get_int("warmup", 10);
  const int batch = args.get_int("batch", model.training.batch_size);
  const int classes = args.get_int("classes", 10);
  const Shape input = parse_input_shape(args.get("input", "28x28x1"));
  BP_CHECK(steps > 0 && repeats > 0 && warmup >= 0 && batch > 0, "steps, repeats, batch must be > 0");
  auto be = make_backend(args.get("backend", "auto"), args.get_int("threads", 0),
                         args.get("math", "fp32"));

  // Synthetic images: the step's cost does not depend on pixel values.
  ImageSet synthetic;
  synthetic.count = std::max<int64_t>(int64_t(batch) * 16, 1024);
  synthetic.height = int(input[0]);
  synthetic.width = int(input[1]);
  synthetic.channels = int(input[2]);
  std::mt19937 gen(1);
  synthetic.pixels.resize(size_t(synthetic.count * synthetic.image_elements()));
  for (auto& p : synthetic.pixels) p = static_cast<uint8_t>(gen() & 0xFF);
  synthetic.labels.resize(size_t(synthetic.count));
  for (auto& l : synthetic.labels) l = static_cast<int32_t>(gen() % uint32_t(classes));

  const uint64_t seed = static_cast<uint64_t>(args.get_int64("seed", 1));
  Net net(model, input, classes, *be, batch, DType::F32, seed);
  TrainingStep step(net, rule, 0.02, seed);
  DeviceImages data(*be, synthetic);
  BatchLoader loader(*be, data, batch, DType::F32);
  Tensor stats = be->empty({kStatCount}, DType::F64);
  be->fill(stats, 0.0);
  const int64_t batches = synthetic.count / batch;
  StepRunner runner(*be, loader, step, batch, !args.flag("no-graphs"));
  uint64_t global = 0;
  auto one_step = [&] {
    runner.run(int64_t(global % uint64_t(batches)), 0.01, global, stats);
    ++global;
  };
  for (int i = 0; i < warmup; ++i) one_step();
  be->synchronize();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) one_step();
    be->synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                 steps);
  }
  const double med = median(ms);
  nlohmann::json out = {{"model", model.name},
                              {"rule", rule_name(rule)},
                              {"backend", args.get("backend", "auto")},
                              {"device", be->name()},
                              {"batch", batch},
                              {"threads", args.get_int("threads", 0)},
                              {"math", args.get("math", "fp32")},
                              {"graphs", runner.replays() > 0},
                              {"steps", steps},
                              {"warmup", warmup},
                              {"repeats", repeats},
                              {"input_shape", input},
                              {"classes", classes},
                              {"ms_per_step_median", med},
                              {"ms_per_step_min", *std::min_element(ms.begin(), ms.end())},
                              {"images_per_second", batch / (med / 1000.0)}};
  if (args.has("epoch-images"))
    out["seconds_per_epoch"] = double(args.get_int64("epoch-images", 0)) / (batch / (med / 1000.0));
  if (args.flag("per-layer")) {
    // Graph replays cannot be split by layer: these steps launch every kernel.
    StepRunner plain(*be, loader, step, batch, false);
    LayerTiming timing(*be);
    net.set_layer_timing(&timing);
    for (int i = 0; i < steps; ++i) {
      plain.run(int64_t(global % uint64_t(batches)), 0.01, global, stats);
      ++global;
    }
    net.set_layer_timing(nullptr);
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& [name, ms_each] : timing.mean_ms()) layers.push_back({{"name", name}, {"ms", ms_each}});
    out["per_layer_ms"] = layers;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace bp::cli
