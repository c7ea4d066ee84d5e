// `brainprop train`: the general form (--data/--model/--rule) and the reference's triple
// (DATASET MODEL RULE, which applies the reference's protocol: validation on the test set).
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/train_options.h"
#include "io/atomic_file.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

const char* kTrainHelp = R"(usage: brainprop train --data SPEC --model NAME|FILE.json --rule brainprop|ebp|reinforce [options]
       brainprop train DATASET MODEL RULE [--data-dir DIR] [options]
       brainprop train --resume RUN_DIR

The triple form applies the reference implementation's protocol: the model's batch size and
learning rate, validation (and early stopping) on the test set, as the paper did.
The general form validates on a held-out 10% of the training set unless --val test.

data:      --data SPEC          mnist:DIR | fashion-mnist[:DIR] | cifar10:DIR | cifar100:DIR |
                                cifar100-coarse:DIR | tiny-imagenet:DIR | folder:DIR
                                (default fashion-mnist)
           --data-dir DIR       directory for the triple form's data set
           --train-limit N      keep the first N training images (N >= 1)
           --test-limit N       keep the first N test images (N >= 1)
           --val holdout|test   validation protocol; --holdout-fraction F (default 0.1)
model:     --model NAME|FILE    a name in models/ or a JSON file (default dense)
           --rule brainprop|ebp|reinforce  (default brainprop); reinforce: the reward-only
                                policy gradient with a running reward baseline, the same
                                information as BrainProp (docs/design.md)
           --feedback symmetric|fa|learned|dfa  what carries the feedback down a weighted
                                layer: W (symmetric, the paper; default), a fixed random B (fa:
                                feedback alignment), a B that takes W's updates (learned:
                                Kolen-Pollack), or the output error sent straight to every
                                hidden weighted layer through a fixed random D (dfa: direct
                                feedback alignment); default: the model's "feedback" key
           --feedback-decay X   learned only: L2 added to W's and B's, so B - W shrinks by
                                1 - 2 lr (l2 + X) per step (default: the model's, 0)
training:  --epochs N           at most N epochs (default 500)
           --batch N            batch size (default: the model's)
           --lr X               learning rate, finite and > 0 (default: the model's)
           --lr-decay-every N   multiply the lr by --lr-decay-factor (0.5) every N epochs (100)
           --epsilon X          BrainProp exploration probability (default 0.02)
           --patience N         early-stopping patience in epochs, >= 0 (default 45)
           --min-delta X        smallest val-accuracy gain that counts (default 0.001)
           --seed N             run seed, an integer >= 0 (default 1)
           --eval-batch N       batch size for evaluation (default 500)
           --probe N            after each epoch, measure on the first N training images the
                                update's angle to the true gradient, its per-sample variance
                                and the W-B angles, into history.jsonl (default 32; 0: off)
running:   --backend auto|cpu|cuda  auto: the first CUDA device if there is one, else the CPU
           --threads N          CPU threads (default: all cores)
           --math fp32|tf32     GPU GEMM/convolution precision (default fp32, the CPU's;
                                tf32 uses tensor cores, several times faster on A100/H100)
           --resume RUN_DIR     continue an interrupted run from its last.safetensors with the
                                same schedule, early-stopping state and RNG position;
                                --epochs may raise the limit, --backend/--threads/--math and
                                the flags may change; any other option that differs from the
                                run's config.json is an error naming it
           --out RUN_DIR        where config, history, summary and checkpoints go
                                (default runs/<time>-<data>-<model>-<rule>-s<seed>); one
                                that already holds a run is refused: --resume it, or
           --overwrite          replace the run in --out (its checkpoints are deleted)
                                A run directory is locked while a process trains in it.
           --no-progress        no live progress bar
           --no-graphs          launch every kernel of a step instead of replaying it as a
                                CUDA graph (for profiling; same results)

A value that starts with -- needs the --name=VALUE form: in `--epochs --out X`, --epochs has no value.
)";

std::string default_run_dir(const TrainConfig& c) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + std::string(stamp) + "-" + data_short_name(c.data_spec) + "-" + c.model.name +
         "-" + rule_name(c.rule) + "-s" + std::to_string(c.seed);
}

// Options given with --resume that would change what the run computes are refused, naming each
// with the value the run has; giving the run's own value is allowed. --epochs, --backend,
// --threads, --math and the flags may change (as `sweep` allows for a run it resumes).
void check_resume_options(const Args& args, const TrainConfig& stored, const std::string& config_path) {
  TrainConfig wanted = stored;
  // apply_training_options falls back to the model's defaults for the batch size and lr.
  wanted.model.training.batch_size = stored.batch_size;
  wanted.model.training.lr = stored.lr;
  apply_training_options(args, wanted);  // also checks each given value on its own
  const nlohmann::json have = config_to_json(stored), want = config_to_json(wanted);
  const std::map<std::string, std::string> option_of = {
      {"batch_size", "batch"}, {"lr", "lr"}, {"lr_decay_every", "lr-decay-every"},
      {"lr_decay_factor", "lr-decay-factor"}, {"epsilon", "epsilon"}, {"patience", "patience"},
      {"min_delta", "min-delta"}, {"seed", "seed"}, {"val", "val"},
      {"holdout_fraction", "holdout-fraction"}, {"train_limit", "train-limit"},
      {"test_limit", "test-limit"}, {"eval_batch", "eval-batch"},
      {"probe_size", "probe"}};
  std::string conflicts;
  for (const char* field : {"feedback", "feedback_decay"}) {  // kept in the model
    const std::string option = field == std::string("feedback") ? "feedback" : "feedback-decay";
    if (have["model"][field] != want["model"][field])
      conflicts += std::string(conflicts.empty() ? "" : "; ") + "--" + option + " " +
                   args.get(option, "") + " (the run has " + have["model"][field].dump() + ")";
  }
  for (const auto& [field, option] : option_of) {
    BP_CHECK(have.contains(field) && want.contains(field), "check_resume_options: no field " << field);
    if (have[field] != want[field])
      conflicts += std::string(conflicts.empty() ? "" : "; ") + "--" + option + " " +
                   args.get(option, "") + " (the run has " + have[field].dump() + ")";
  }
  if (args.has("out")) {
    namespace fs = std::filesystem;
    const std::string dir = args.get("resume", ""), out = args.get("out", "");
    std::error_code ec1, ec2;
    if (fs::weakly_canonical(out, ec1) != fs::weakly_canonical(dir, ec2) || ec1 || ec2)
      conflicts += std::string(conflicts.empty() ? "" : "; ") + "--out " + out +
                   " (a resumed run stays in " + dir + ")";
  }
  BP_CHECK(conflicts.empty(),
           "--resume: these options contradict the run's configuration in "
               << config_path << ": " << conflicts
               << ". Drop them; only --epochs, --backend, --threads, --math, --no-progress and "
                  "--no-graphs may change when resuming");
}

}  // namespace

int run_train(const std::vector<std::string>& argv) {
  std::set<std::string> value_options = training_value_options();
  value_options.insert({"data", "data-dir", "model", "rule", "out", "resume"});
  const Args args(argv, value_options, {"help", "no-progress", "no-graphs", "overwrite"});
  if (args.flag("help")) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  BP_CHECK(!args.has("out") || !args.get("out", "").empty(),
           "--out needs a directory, got \"\" (leave --out out for the default runs/...)");
  if (args.has("resume")) {
    // Everything comes from the run directory; only the epoch limit and how to run may change.
    const std::string dir = args.get("resume", "");
    BP_CHECK(!dir.empty(), "--resume needs the run directory, got \"\"");
    BP_CHECK(!args.flag("overwrite"), "--resume continues the run in " << dir
                                          << "; --overwrite would delete it: give one of them");
    BP_CHECK(args.positionals().empty() && !args.has("data") && !args.has("data-dir") &&
                 !args.has("model") && !args.has("rule"),
             "--resume RUN_DIR takes the run's own configuration; give no data, model or rule");
    const std::string config_path = dir + "/config.json";
    BP_CHECK(std::filesystem::exists(config_path), config_path << ": no such file (is " << dir
                                                               << " a run directory?)");
    TrainConfig c = config_from_json(nlohmann::json::parse(read_file(config_path)), config_path);
    check_resume_options(args, c, config_path);
    c.max_epochs = args.get_int("epochs", c.max_epochs);
    c.backend = args.get("backend", c.backend);
    c.threads = args.get_int("threads", c.threads);
    c.math = args.get("math", c.math);
    c.progress = !args.flag("no-progress");
    c.graphs = !args.flag("no-graphs");
    c.out_dir = dir;
    const bool has_checkpoint = std::filesystem::exists(dir + "/last.safetensors");
    // Killed before its first checkpoint: nothing was trained, so the run starts over there.
    if (!has_checkpoint) std::printf("%s has no last.safetensors yet: starting the run afresh\n", dir.c_str());
    return run_training(c, has_checkpoint ? RunStart::Resume : RunStart::Replace);
  }
  TrainConfig c;
  const auto& pos = args.positionals();
  if (pos.size() == 3) {
    BP_CHECK(!args.has("data") && !args.has("model") && !args.has("rule"),
             "give either DATASET MODEL RULE or --data/--model/--rule, not both");
    c.data_spec = reference_data_spec(pos[0], args.get("data-dir", ""));
    c.model_source = pos[1];
    c.rule = parse_rule(pos[2]);
    c.val = "test";
  } else {
    BP_CHECK(pos.empty(), "unexpected arguments; expected DATASET MODEL RULE or options (see --help)");
    BP_CHECK(!args.has("data-dir"), "--data-dir goes with the DATASET MODEL RULE form; use --data SPEC");
    c.data_spec = args.get("data", c.data_spec);
    c.model_source = args.get("model", c.model_source);
    c.rule = parse_rule(args.get("rule", "brainprop"));
  }
  c.model = load_model(c.model_source);
  c.eval_batch = 500;
  apply_training_options(args, c);
  c.out_dir = args.get("out", default_run_dir(c));
  return run_training(c, args.flag("overwrite") ? RunStart::Replace : RunStart::New);
}

}  // namespace bp::cli
