// brainprop: train, evaluate and benchmark BrainProp and EBP nets.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

namespace {

const char* kUsage = R"(usage: brainprop <command> [options]

commands:
  train   train a net:  brainprop train --data SPEC --model NAME|FILE.json --rule brainprop|ebp|reinforce
          or with the reference's hyper-parameters:  brainprop train fashion-mnist dense brainprop
  eval    test accuracy of a checkpoint:  brainprop eval RUN_DIR|FILE.safetensors [--data SPEC]
  bench   time the training step:  brainprop bench --model dense --rule brainprop --steps 50
  inspect classes, image shape and split sizes of a data set:  brainprop inspect --data SPEC
  sweep   a data x model x rule x seed grid of runs, resumable:
          brainprop sweep --data fashion-mnist --models conv --seeds 3 --out sweeps/fm
  report  the paper's tables and learning curves from a sweep of runs:  brainprop report SWEEP_DIR
  info    version, compiled backends, devices

`brainprop <command> --help` lists a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "train") return bp::cli::run_train(args);
    if (command == "eval") return bp::cli::run_eval(args);
    if (command == "bench") return bp::cli::run_bench(args);
    if (command == "info") return bp::cli::run_info(args);
    if (command == "sweep") return bp::cli::run_sweep(args);
    if (command == "inspect") return bp::cli::run_inspect(args);
    if (command == "report") return bp::cli::run_report(args);
    std::fprintf(stderr, "brainprop: unknown command \"%s\"\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brainprop %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
