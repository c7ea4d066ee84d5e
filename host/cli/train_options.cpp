#include "cli/train_options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "train/interrupt.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == '_'; }), s.end());
  return s;
}

}  // namespace

const std::set<std::string>& training_value_options() {
  static const std::set<std::string> names = {
      "epochs", "batch", "lr", "lr-decay-every", "lr-decay-factor", "epsilon", "patience",
      "min-delta", "seed", "val", "holdout-fraction", "train-limit", "test-limit", "backend",
      "threads", "eval-batch", "math", "feedback", "feedback-decay", "probe"};
  return names;
}

void apply_training_options(const Args& args, TrainConfig& c) {
  c.batch_size = args.get_int("batch", c.model.training.batch_size);
  c.lr = args.get_double("lr", c.model.training.lr);
  // Only what the command line gave is checked here: the sweep's 0 means "each model's own".
  BP_CHECK(!args.has("lr") || (std::isfinite(c.lr) && c.lr > 0),
           "--lr must be a finite number > 0, got " << args.get("lr", ""));
  c.lr_decay_every = args.get_int("lr-decay-every", c.lr_decay_every);
  c.lr_decay_factor = args.get_double("lr-decay-factor", c.lr_decay_factor);
  c.epsilon = args.get_double("epsilon", c.epsilon);
  c.max_epochs = args.get_int("epochs", c.max_epochs);
  c.patience = args.get_int("patience", c.patience);
  BP_CHECK(c.patience >= 0, "--patience must be >= 0 (epochs without improvement), got " << c.patience);
  c.min_delta = args.get_double("min-delta", c.min_delta);
  c.seed = args.get_uint64("seed", c.seed);
  c.val = args.get("val", c.val);
  c.holdout_fraction = args.get_double("holdout-fraction", c.holdout_fraction);
  c.train_limit = args.get_int64("train-limit", c.train_limit);
  c.test_limit = args.get_int64("test-limit", c.test_limit);
  // Left out, a limit is -1: every image. Given, it must keep at least one.
  for (const char* name : {"train-limit", "test-limit"})
    BP_CHECK(!args.has(name) || args.get_int64(name, 0) >= 1,
             "--" << name << " must be >= 1 (leave it out to keep every image), got "
                  << args.get(name, ""));
  c.backend = args.get("backend", c.backend);
  c.threads = args.get_int("threads", c.threads);
  c.math = args.get("math", c.math);
  parse_math_mode(c.math);  // reject a bad value before any data is loaded
  c.eval_batch = args.get_int("eval-batch", c.eval_batch);
  c.probe_size = args.get_int("probe", c.probe_size);
  BP_CHECK(c.probe_size == 0 || c.probe_size >= 2,
           "--probe must be 0 (no update probe) or >= 2 images, got " << c.probe_size);
  c.progress = !args.flag("no-progress");
  c.graphs = !args.flag("no-graphs");
  // The feedback pathway lives in the model (its "feedback" keys); the options override them.
  if (args.has("feedback")) c.model.feedback = parse_feedback(args.get("feedback", ""));
  if (args.has("feedback-decay")) {
    c.model.feedback_decay = args.get_double("feedback-decay", 0.0);
    BP_CHECK(std::isfinite(c.model.feedback_decay) && c.model.feedback_decay >= 0,
             "--feedback-decay must be a finite number >= 0, got " << args.get("feedback-decay", ""));
  }
  BP_CHECK(c.model.feedback_decay == 0 || c.model.feedback == Feedback::Learned,
           "--feedback-decay goes with --feedback learned (the feedback is "
               << feedback_name(c.model.feedback) << ")");
}

std::string reference_data_spec(const std::string& dataset, const std::string& dir) {
  const std::string name = lower(dataset);
  const auto need_dir = [&](const char* prefix) {
    BP_CHECK(!dir.empty(), "data set " << dataset << " needs --data-dir DIR (where its files are)");
    return std::string(prefix) + ":" + dir;
  };
  if (name == "mnist") return need_dir("mnist");
  if (name == "fashionmnist") return dir.empty() ? "fashion-mnist" : "fashion-mnist:" + dir;
  if (name == "cifar10") return need_dir("cifar10");
  if (name == "cifar100") return need_dir("cifar100");
  if (name == "tinyimagenet") return need_dir("tiny-imagenet");
  BP_FAIL("unknown data set \"" << dataset
                                << "\" for the reference form (known: MNIST, fashion-mnist, CIFAR10, "
                                   "CIFAR100, TinyImageNet)");
}

std::string data_short_name(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return spec;
  std::string path = spec.substr(colon + 1);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string base = std::filesystem::path(path).filename().string();
  return spec.substr(0, colon) + (base.empty() ? "" : "-" + base);
}

std::string format_figure(const std::optional<double>& value) {
  if (!value) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *value);
  return buf;
}

std::string summary_figures(const TrainSummary& s) {
  std::string text = "best val_acc " + format_figure(s.best_val_accuracy);
  text += s.best_epoch > 0 ? " at epoch " + std::to_string(s.best_epoch) : " (no epoch finished)";
  return text + ", test_acc " + format_figure(s.test_accuracy);
}

int run_training(const TrainConfig& c, RunStart start) {
  // Owned before the data is read: a second process on this directory fails at once.
  const RunDirectory run(c.out_dir, start);
  const Dataset data = load_dataset(c.data_spec, DataLimits{c.train_limit, c.test_limit});
  auto backend = make_backend(c.backend, c.threads, c.math);
  std::printf("brainprop train: %s on %s (%lld train / %lld test images, %d classes), rule %s, "
              "backend %s, validation on %s\nrun directory: %s\n",
              c.model.name.c_str(), data.source.c_str(), static_cast<long long>(data.train.count),
              static_cast<long long>(data.test.count), data.classes, rule_name(c.rule),
              backend->name().c_str(), c.val == "test" ? "the test set" : "a held-out split",
              c.out_dir.c_str());
  std::fflush(stdout);
  install_interrupt_handler();
  const TrainResult result = train(
      c, data, *backend,
      [](const std::string& line) {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      },
      run, start);
  const TrainSummary& s = result.summary;
  if (s.stop_reason == "interrupted") return 130;
  std::printf("done: %s after %d epochs; %s; %.1fs\n", s.stop_reason.c_str(), s.epochs_run,
              summary_figures(s).c_str(), s.total_seconds);
  return diverged(s.stop_reason) ? 3 : 0;
}

}  // namespace bp::cli
