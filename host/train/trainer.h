// The training loop: epochs of shuffled batches, evaluation, history, checkpoints,
// early stopping, NaN and Ctrl-C handling. Backend-agnostic: all math goes through Backend.
#pragma once
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "data/dataset.h"
#include "train/run_directory.h"
#include "train/train_config.h"

namespace bp {

struct EpochRecord {
  int epoch = 0;  // 1-based
  double lr = 0, train_loss = 0, train_accuracy = 0, val_accuracy = 0;
  double seconds = 0, images_per_second = 0;
  double reward_rate = 0, exploration_rate = 0;  // BrainProp and REINFORCE only
  nlohmann::json probe;  // the update probe's figures (ProbeResult::to_json); null: no probe
  nlohmann::json to_json(Rule rule) const;
};

// A figure that was never measured is nullopt here and null in summary.json, never 0: the
// best validation accuracy before any epoch finished (a run stopped by NaN in epoch 1), the
// test accuracy of an interrupted run or of one without a finished epoch.
struct TrainSummary {
  std::optional<double> best_val_accuracy;  // nullopt: no epoch finished
  int best_epoch = 0;                       // 0: no epoch finished (null in summary.json)
  int epochs_run = 0;
  // "early_stopping", "max_epochs", "nan_loss", "nonfinite_weights", "interrupted"
  std::string stop_reason;
  std::optional<double> test_accuracy;  // nullopt: not measured (interrupted, no best epoch)
  double total_seconds = 0;
  std::string val_protocol;
  nlohmann::json to_json() const;
};

// A run that diverged: stop_reason "nan_loss" or "nonfinite_weights". It is a finished,
// failed run: resuming or rerunning it gives the same divergence.
inline bool diverged(const std::string& stop_reason) {
  return stop_reason == "nan_loss" || stop_reason == "nonfinite_weights";
}

struct TrainResult {
  std::vector<EpochRecord> history;
  TrainSummary summary;
};

// Where a training loop stands, recorded in last.safetensors so `--resume` continues with
// the same schedule, early-stopping state and RNG position (the global step).
struct TrainerState {
  int epoch = 0;               // epochs finished
  int64_t batch = 0;           // batches finished of epoch `epoch` (0: at an epoch boundary)
  uint64_t global_step = 0;    // Philox counter of the next step
  double stopper_best = -std::numeric_limits<double>::infinity();
  int stopper_wait = 0;
  double best_val_accuracy = 0;
  int best_epoch = 0;
  std::vector<double> partial_stats;  // a partial epoch's running sums (kStatCount values)
  double partial_seconds = 0;
  double reinforce_baseline = 0;  // REINFORCE's running reward baseline at this point
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

// The backend for --backend auto|cpu|cuda: auto takes the first CUDA device when there is one
// and the CPU otherwise; cuda without a usable device fails with the reason. `math` applies to
// the CUDA backend (the CPU computes in plain fp32 either way).
std::unique_ptr<Backend> make_backend(const std::string& name, int threads,
                                      const std::string& math = "fp32");

// Runs a whole training job. With config.out_dir set, holds the run directory's lock while it
// runs and writes config.json, history.jsonl, summary.json, best.safetensors and
// last.safetensors there, with one commit point per epoch (run_directory.h).
// `log` receives the one-line-per-epoch progress (nullptr: silent). `start` says what may be in
// config.out_dir already: RunStart::Resume continues the run there from its last.safetensors
// (and best.safetensors); the finished run's history is the same as an uninterrupted one's
// (timings aside), whatever instant the earlier process died at.
TrainResult train(const TrainConfig& config, const Dataset& data, Backend& be,
                  const std::function<void(const std::string&)>& log,
                  RunStart start = RunStart::New);
// The same in a run directory the caller has opened (and so locked) already, e.g. before
// loading the data, so a second process on it fails at once; `run` was opened with `start`.
TrainResult train(const TrainConfig& config, const Dataset& data, Backend& be,
                  const std::function<void(const std::string&)>& log, const RunDirectory& run,
                  RunStart start);

}  // namespace bp
