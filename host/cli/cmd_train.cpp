// `brainprop train`: the general form (--data/--model/--rule) and the reference's triple
// (DATASET MODEL RULE, which applies the reference's protocol: validation on the test set).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "cli/args.h"
#include "cli/commands.h"
#include "train/interrupt.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

const char* kTrainHelp = R"(usage: brainprop train --data SPEC --model NAME|FILE.json --rule brainprop|ebp [options]
       brainprop train DATASET MODEL RULE [--data-dir DIR] [options]

The triple form applies the reference implementation's protocol: the model's batch size and
learning rate, validation (and early stopping) on the test set, as the paper did.
The general form validates on a held-out 10% of the training set unless --val test.

data:      --data SPEC          mnist:DIR | fashion-mnist[:DIR]   (default fashion-mnist)
           --data-dir DIR       directory for the triple form's data set
           --train-limit N      keep the first N training images
           --test-limit N       keep the first N test images
           --val holdout|test   validation protocol; --holdout-fraction F (default 0.1)
model:     --model NAME|FILE    a name in models/ or a JSON file (default dense)
           --rule brainprop|ebp (default brainprop)
training:  --epochs N           at most N epochs (default 500)
           --batch N            batch size (default: the model's)
           --lr X               learning rate (default: the model's)
           --lr-decay-every N   multiply the lr by --lr-decay-factor (0.5) every N epochs (100)
           --epsilon X          BrainProp exploration probability (default 0.02)
           --patience N         early-stopping patience in epochs (default 45)
           --min-delta X        smallest val-accuracy gain that counts (default 0.001)
           --seed N             run seed (default 1)
           --eval-batch N       batch size for evaluation (default 500)
running:   --backend auto|cpu|cuda   --threads N (default: all cores)
           --out RUN_DIR        where config, history, summary and checkpoints go
                                (default runs/<time>-<data>-<model>-<rule>-s<seed>)
           --no-progress        no live progress bar
)";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The reference's data-set names → a data spec.
std::string triple_data_spec(const std::string& dataset, const std::string& dir) {
  const std::string name = lower(dataset);
  if (name == "mnist") {
    BP_CHECK(!dir.empty(), "data set MNIST needs --data-dir DIR (the directory of its IDX files)");
    return "mnist:" + dir;
  }
  if (name == "fashion-mnist" || name == "fashion_mnist" || name == "fashionmnist")
    return dir.empty() ? "fashion-mnist" : "fashion-mnist:" + dir;
  BP_FAIL("unknown data set \"" << dataset << "\" for the reference form (known: MNIST, fashion-mnist)");
}

std::string data_short_name(const std::string& spec) { return spec.substr(0, spec.find(':')); }

std::string default_run_dir(const TrainConfig& c) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + std::string(stamp) + "-" + data_short_name(c.data_spec) + "-" + c.model.name +
         "-" + rule_name(c.rule) + "-s" + std::to_string(c.seed);
}

}  // namespace

int run_train(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"data", "data-dir", "model", "rule", "epochs", "batch", "lr", "lr-decay-every",
                   "lr-decay-factor", "epsilon", "patience", "min-delta", "seed", "val",
                   "holdout-fraction", "train-limit", "test-limit", "backend", "threads", "out",
                   "eval-batch"},
                  {"help", "no-progress"});
  if (args.flag("help")) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  TrainConfig c;
  const auto& pos = args.positionals();
  if (pos.size() == 3) {
    BP_CHECK(!args.has("data") && !args.has("model") && !args.has("rule"),
             "give either DATASET MODEL RULE or --data/--model/--rule, not both");
    c.data_spec = triple_data_spec(pos[0], args.get("data-dir", ""));
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
  c.batch_size = args.get_int("batch", c.model.training.batch_size);
  c.lr = args.get_double("lr", c.model.training.lr);
  c.lr_decay_every = args.get_int("lr-decay-every", c.lr_decay_every);
  c.lr_decay_factor = args.get_double("lr-decay-factor", c.lr_decay_factor);
  c.epsilon = args.get_double("epsilon", c.epsilon);
  c.max_epochs = args.get_int("epochs", c.max_epochs);
  c.patience = args.get_int("patience", c.patience);
  c.min_delta = args.get_double("min-delta", c.min_delta);
  c.seed = static_cast<uint64_t>(args.get_int64("seed", 1));
  c.val = args.get("val", c.val);
  c.holdout_fraction = args.get_double("holdout-fraction", c.holdout_fraction);
  c.train_limit = args.get_int64("train-limit", -1);
  c.test_limit = args.get_int64("test-limit", -1);
  c.backend = args.get("backend", c.backend);
  c.threads = args.get_int("threads", c.threads);
  c.eval_batch = args.get_int("eval-batch", 500);
  c.progress = !args.flag("no-progress");
  c.out_dir = args.get("out", default_run_dir(c));

  const Dataset data = load_dataset(c.data_spec, DataLimits{c.train_limit, c.test_limit});
  auto backend = make_backend(c.backend, c.threads);
  std::printf("brainprop train: %s on %s (%lld train / %lld test images, %d classes), rule %s, "
              "backend %s, validation on %s\nrun directory: %s\n",
              c.model.name.c_str(), data.source.c_str(), static_cast<long long>(data.train.count),
              static_cast<long long>(data.test.count), data.classes, rule_name(c.rule),
              backend->name().c_str(), c.val == "test" ? "the test set" : "a held-out split",
              c.out_dir.c_str());
  std::fflush(stdout);
  install_interrupt_handler();
  const TrainResult result = train(c, data, *backend, [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  });
  const TrainSummary& s = result.summary;
  std::printf("done: %s after %d epochs; best val_acc %.4f at epoch %d; test_acc %.4f; %.1fs\n",
              s.stop_reason.c_str(), s.epochs_run, s.best_val_accuracy, s.best_epoch,
              s.test_accuracy, s.total_seconds);
  return s.stop_reason == "interrupted" ? 130 : (s.stop_reason == "nan_loss" ? 3 : 0);
}

}  // namespace bp::cli
