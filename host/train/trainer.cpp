#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "io/atomic_file.h"
#include "model/net.h"
#include "train/checkpoint.h"
#include "train/device_data.h"
#include "train/interrupt.h"
#include "train/progress.h"
#include "train/run_directory.h"
#include "train/schedule.h"
#include "train/step_runner.h"
#include "train/training_step.h"
#include "train/update_probe.h"

namespace bp {

using Clock = std::chrono::steady_clock;

namespace {

// The rules that act and are rewarded, whose epochs record reward and exploration rates.
bool has_reward_stats(Rule rule) { return rule == Rule::BrainProp || rule == Rule::Reinforce; }

// The state tensors (parameters, batch-norm statistics) that hold NaN or Inf, as
// "dense1.weight (1500 of 1176000 values)", or "" when all are finite: one device reduction per
// tensor into `counts`, one read-back for all.
std::string nonfinite_state(Net& net, Backend& be, Tensor& counts) {
  const std::vector<NamedParam> params = net.state_tensors();
  be.fill(counts, 0.0);
  for (size_t i = 0; i < params.size(); ++i) be.count_nonfinite(*params[i].tensor, counts, int64_t(i));
  std::vector<double> bad(size_t(counts.numel()));
  be.copy_to_host(counts, bad.data());
  std::ostringstream names;
  for (size_t i = 0; i < params.size(); ++i) {
    if (bad[i] == 0) continue;
    if (names.tellp() > 0) names << ", ";
    names << params[i].name << " (" << int64_t(bad[i]) << " of " << params[i].tensor->numel()
          << " values)";
  }
  return names.str();
}

}  // namespace

nlohmann::json EpochRecord::to_json(Rule rule) const {
  nlohmann::json j = {{"epoch", epoch},
                      {"lr", lr},
                      {"train_loss", train_loss},
                      {"train_accuracy", train_accuracy},
                      {"val_accuracy", val_accuracy},
                      {"seconds", seconds},
                      {"images_per_second", images_per_second}};
  if (has_reward_stats(rule)) {
    j["reward_rate"] = reward_rate;
    j["exploration_rate"] = exploration_rate;
  }
  if (!probe.is_null()) j["probe"] = probe;
  return j;
}

nlohmann::json TrainSummary::to_json() const {
  const auto figure = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();  // null: never measured
  };
  return {{"best_val_accuracy", figure(best_val_accuracy)},
          {"best_epoch", best_epoch > 0 ? nlohmann::json(best_epoch) : nlohmann::json()},
          {"epochs_run", epochs_run},
          {"stop_reason", stop_reason},
          {"test_accuracy", figure(test_accuracy)},
          {"total_seconds", total_seconds},
          {"val_protocol", val_protocol}};
}

std::unique_ptr<Backend> make_backend(const std::string& name, int threads,
                                      const std::string& math) {
  const MathMode mode = parse_math_mode(math);
  if (name == "cpu") return make_cpu_backend(threads);
  if (name == "cuda") return make_cuda_backend(0, mode);
  if (name == "auto") {
    std::string why;
    if (cuda_backend_available(&why)) return make_cuda_backend(0, mode);
    return make_cpu_backend(threads);
  }
  BP_FAIL("unknown backend \"" << name << "\" (known: auto, cpu, cuda)");
}

namespace {

std::string format_epoch_line(const EpochRecord& r, int max_epochs, Rule rule) {
  char line[512];
  int n = std::snprintf(line, sizeof line,
                        "epoch %3d/%d  lr %.4g  loss %.4f  train_acc %.4f  val_acc %.4f", r.epoch,
                        max_epochs, r.lr, r.train_loss, r.train_accuracy, r.val_accuracy);
  if (has_reward_stats(rule))
    n += std::snprintf(line + n, sizeof line - size_t(n), "  reward %.4f  explore %.4f",
                       r.reward_rate, r.exploration_rate);
  n += std::snprintf(line + n, sizeof line - size_t(n), "  %.2fs  %.0f img/s", r.seconds,
                     r.images_per_second);
  if (!r.probe.is_null()) {
    const auto figure = [](const nlohmann::json& v) { return v.is_null() ? std::string("n/a") : std::to_string(v.get<double>()).substr(0, 6); };
    std::snprintf(line + n, sizeof line - size_t(n), "  update/gradient %s deg  var %s",
                  figure(r.probe.at("update_angle")).c_str(), figure(r.probe.at("update_variance")).c_str());
  }
  return line;
}

// history.jsonl's text: one JSON object per finished epoch.
std::string history_jsonl(const std::vector<EpochRecord>& history, Rule rule) {
  std::string text;
  for (const EpochRecord& r : history) text += r.to_json(rule).dump() + "\n";
  return text;
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  const auto finite_or_null = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  return {{"epoch", epoch},
          {"batch", batch},
          {"global_step", global_step},
          {"stopper_best", finite_or_null(stopper_best)},
          {"stopper_wait", stopper_wait},
          {"best_val_accuracy", best_val_accuracy},
          {"best_epoch", best_epoch},
          {"partial_stats", partial_stats},
          {"partial_seconds", partial_seconds},
          {"reinforce_baseline", reinforce_baseline}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainerState s;
  try {
    s.epoch = j.at("epoch").get<int>();
    s.batch = j.at("batch").get<int64_t>();
    s.global_step = j.at("global_step").get<uint64_t>();
    const auto& best = j.at("stopper_best");
    s.stopper_best = best.is_null() ? -std::numeric_limits<double>::infinity() : best.get<double>();
    s.stopper_wait = j.at("stopper_wait").get<int>();
    s.best_val_accuracy = j.at("best_val_accuracy").get<double>();
    s.best_epoch = j.at("best_epoch").get<int>();
    s.partial_stats = j.at("partial_stats").get<std::vector<double>>();
    s.partial_seconds = j.at("partial_seconds").get<double>();
    s.reinforce_baseline = j.value("reinforce_baseline", 0.0);  // absent before REINFORCE
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(source << ": bad trainer state: " << e.what());
  }
  return s;
}

namespace {

// The first `epochs` records of a history.jsonl text; `source` names it in errors.
std::vector<EpochRecord> parse_history(const std::string& text, int epochs, Rule rule,
                                       const std::string& source) {
  std::vector<EpochRecord> history;
  std::istringstream in(text);
  std::string line;
  for (int e = 0; e < epochs; ++e) {
    BP_CHECK(std::getline(in, line), source << ": holds fewer than the " << epochs
                                            << " epochs the checkpoint has finished");
    try {
      const auto j = nlohmann::json::parse(line);
      EpochRecord r;
      r.epoch = j.at("epoch");
      r.lr = j.at("lr");
      r.train_loss = j.at("train_loss");
      r.train_accuracy = j.at("train_accuracy");
      r.val_accuracy = j.at("val_accuracy");
      r.seconds = j.at("seconds");
      r.images_per_second = j.at("images_per_second");
      if (has_reward_stats(rule)) {
        r.reward_rate = j.at("reward_rate");
        r.exploration_rate = j.at("exploration_rate");
      }
      if (j.contains("probe")) r.probe = j.at("probe");
      history.push_back(r);
    } catch (const nlohmann::json::exception& ex) {
      BP_FAIL(source << ": line " << e + 1 << ": " << ex.what());
    }
  }
  return history;
}

}  // namespace

TrainResult train(const TrainConfig& config, const Dataset& data, Backend& be,
                  const std::function<void(const std::string&)>& log, RunStart start) {
  const RunDirectory run(config.out_dir, start);  // locked until train() returns
  return train(config, data, be, log, run, start);
}

TrainResult train(const TrainConfig& config, const Dataset& data, Backend& be,
                  const std::function<void(const std::string&)>& log, const RunDirectory& run,
                  RunStart start) {
  const bool resume = start == RunStart::Resume;
  BP_CHECK(run.dir() == config.out_dir, "train: the run directory " << run.dir()
                                            << " is not the config's " << config.out_dir);
  const auto t_start = Clock::now();
  BP_CHECK(config.batch_size >= 1, "batch size must be >= 1, got " << config.batch_size);
  BP_CHECK(config.max_epochs >= 1, "max epochs must be >= 1, got " << config.max_epochs);
  BP_CHECK(config.epsilon >= 0 && config.epsilon <= 1, "epsilon must be in [0, 1], got "
                                                            << config.epsilon);
  BP_CHECK(data.train.count > 0, data.source << ": no training images");
  BP_CHECK(!resume || !config.out_dir.empty(), "resuming needs the run directory");

  // The validation split: the test set (the paper's protocol) or a seeded holdout.
  ImageSet train_part, val_part;
  const ImageSet* train_set = &data.train;
  const ImageSet* val_set = &data.test;
  if (config.val == "holdout") {
    split_holdout(data.train, config.holdout_fraction, config.seed, train_part, val_part);
    train_set = &train_part;
    val_set = &val_part;
  } else {
    BP_CHECK(config.val == "test", "unknown validation protocol \"" << config.val
                                                                    << "\" (known: holdout, test)");
  }

  const int max_batch = std::max(config.batch_size, config.eval_batch);
  const Shape input{data.train.height, data.train.width, data.train.channels};
  Net net(config.model, input, data.classes, be, max_batch, DType::F32, config.seed);
  TrainingStep step(net, config.rule, config.epsilon, config.seed);

  DeviceImages train_dev(be, *train_set), val_dev(be, *val_set), test_dev(be, data.test);
  BatchLoader train_loader(be, train_dev, config.batch_size, DType::F32);
  BatchLoader val_loader(be, val_dev, config.eval_batch, DType::F32);
  BatchLoader test_loader(be, test_dev, config.eval_batch, DType::F32);
  Tensor stats = be.empty({kStatCount}, DType::F64);
  Tensor nonfinite_counts = be.empty({int64_t(net.state_tensors().size())}, DType::F64);
  StepRunner runner(be, train_loader, step, config.batch_size, config.graphs);
  std::unique_ptr<UpdateProbe> probe;
  if (config.probe_size > 0) probe = std::make_unique<UpdateProbe>(net, step, train_dev, config.probe_size);

  const LrSchedule schedule{config.lr, config.lr_decay_every, config.lr_decay_factor};
  EarlyStopping stopper(config.patience, config.min_delta);
  TrainResult result;
  TrainSummary& summary = result.summary;
  summary.val_protocol = config.val;
  std::map<std::string, std::vector<uint8_t>> best_state;
  TrainerState state;  // where the loop stands; what last.safetensors records

  if (resume) {
    const std::string last = run.path("last.safetensors");
    const CheckpointInfo info = read_checkpoint_info(last);
    auto it = info.metadata.find("trainer_state");
    BP_CHECK(it != info.metadata.end(), last << ": has no trainer state to resume from");
    state = TrainerState::from_json(nlohmann::json::parse(it->second), last);
    load_checkpoint_weights(info, last, net);
    // The history committed with the weights; checkpoints written before it was stored there
    // fall back to history.jsonl.
    auto committed = info.metadata.find("history");
    result.history = committed != info.metadata.end()
                         ? parse_history(committed->second, state.epoch, config.rule, last + " (history)")
                         : parse_history(state.epoch > 0 ? read_file(run.path("history.jsonl")) : "", state.epoch,
                                         config.rule, run.path("history.jsonl"));
    // A kill during the last commit's step 3 left best.next and history.jsonl behind.
    run.repair_best(state.best_epoch);
    write_file_atomic(run.path("history.jsonl"), history_jsonl(result.history, config.rule));
    // The summary of an earlier invocation no longer describes the run; a new one is written
    // when this one ends.
    std::filesystem::remove(run.path("summary.json"));
    if (state.best_epoch > 0) best_state = read_checkpoint_tensors(run.path("best.safetensors"), DType::F32);
    stopper.restore(state.stopper_best, state.stopper_wait);
    if (config.rule == Rule::Reinforce) step.set_baseline(state.reinforce_baseline);
    if (log) log("resuming at epoch " + std::to_string(state.epoch + 1) + ", batch " +
                 std::to_string(state.batch) + " (step " + std::to_string(state.global_step) + ")");
  } else if (run.enabled()) {
    write_file_atomic(run.path("config.json"), config_to_json(config).dump(2) + "\n");
  }
  if (state.best_epoch > 0) summary.best_val_accuracy = state.best_val_accuracy;
  summary.best_epoch = state.best_epoch;
  summary.epochs_run = state.epoch;

  // Checked every epoch and before any checkpoint: a NaN behind a ReLU can leave the loss
  // finite, and a non-finite checkpoint would poison every later resume and eval.
  auto stop_if_nonfinite = [&](int epoch_number) {
    const std::string nonfinite = nonfinite_state(net, be, nonfinite_counts);
    if (nonfinite.empty()) return false;
    summary.stop_reason = "nonfinite_weights";
    summary.epochs_run = epoch_number;
    if (log) log("epoch " + std::to_string(epoch_number) + ": non-finite values in " + nonfinite +
                 "; stopping (last.safetensors and best.safetensors keep the last finite epoch; "
                 "try a smaller --lr)");
    return true;
  };
  // The commit point: weights, trainer state and history in one atomic file.
  auto save_last = [&](TrainerState& at) {
    // The baseline lives on the backend; reading it here is the checkpoint's only extra sync.
    if (config.rule == Rule::Reinforce) at.reinforce_baseline = step.baseline();
    if (run.enabled())
      save_checkpoint(run.path("last.safetensors"), net, config, at.epoch,
                      {{"trainer_state", at.to_json().dump()},
                       {"history", history_jsonl(result.history, config.rule)}});
  };
  const int64_t batches = train_loader.batches(config.batch_size);
  // A resumed run that had already stopped early stays stopped.
  if (resume && state.batch == 0 && state.epoch > 0 && stopper.wait() >= config.patience)
    summary.stop_reason = "early_stopping";

  for (int epoch = state.epoch; epoch < config.max_epochs && summary.stop_reason.empty(); ++epoch) {
    const auto t_epoch = Clock::now();
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = schedule.at(epoch);
    train_loader.shuffle(config.seed, epoch);
    // A resumed partial epoch starts from the batch and running sums it stopped at.
    const int64_t first_batch = state.batch;
    std::vector<double> start_stats(kStatCount, 0.0);
    if (first_batch > 0 && static_cast<int>(state.partial_stats.size()) == kStatCount)
      start_stats = state.partial_stats;
    be.copy_from_host(stats, start_stats.data());
    const double seconds_before = first_batch > 0 ? state.partial_seconds : 0.0;
    state.batch = 0;
    ProgressBar bar(config.progress, rec.epoch, config.max_epochs, batches);
    bool interrupted = false;
    for (int64_t b = first_batch; b < batches; ++b) {
      runner.run(b, rec.lr, state.global_step++, stats);
      bar.update(b + 1, std::min<int64_t>((b + 1) * config.batch_size, train_dev.count()));
      const bool halt = config.halt_after_steps >= 0 &&
                        state.global_step >= static_cast<uint64_t>(config.halt_after_steps);
      if ((interrupt_requested() || halt) && b + 1 < batches) {
        interrupted = true;
        state.batch = b + 1;
        break;
      }
    }
    bar.finish();
    if (interrupted) {
      if (stop_if_nonfinite(epoch + 1)) break;
      // Keep what was trained: the weights at this batch boundary, and the epoch's running sums.
      state.epoch = epoch;
      state.partial_stats = read_stats(be, stats);
      state.partial_seconds =
          seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
      save_last(state);
      summary.stop_reason = "interrupted";
      if (log) log("interrupted: checkpoint written at batch " + std::to_string(state.batch) +
                   " of epoch " + std::to_string(epoch + 1) + "; continue with --resume");
      break;
    }
    const std::vector<double> s = read_stats(be, stats);
    const double n = s[kStatSamples];
    rec.train_loss = s[kStatLoss] / n;
    rec.train_accuracy = s[kStatCorrect] / n;
    rec.reward_rate = s[kStatReward] / n;
    rec.exploration_rate = s[kStatExplored] / n;
    const double train_seconds =
        seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
    rec.images_per_second = n / train_seconds;

    if (!std::isfinite(rec.train_loss)) {
      // Diverged: last.safetensors and best.safetensors keep the previous good epochs.
      summary.stop_reason = "nan_loss";
      summary.epochs_run = rec.epoch;
      if (log) log("epoch " + std::to_string(rec.epoch) + ": loss is not finite, stopping");
      break;
    }
    if (stop_if_nonfinite(rec.epoch)) break;
    rec.val_accuracy = evaluate_accuracy(net, val_loader, config.eval_batch, stats);
    rec.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
    if (probe) rec.probe = probe->measure(rec.epoch).to_json();  // not in rec.seconds
    result.history.push_back(rec);
    summary.epochs_run = rec.epoch;
    if (log) log(format_epoch_line(rec, config.max_epochs, config.rule));

    const bool improved = !summary.best_val_accuracy || rec.val_accuracy > *summary.best_val_accuracy;
    if (improved) {
      summary.best_val_accuracy = rec.val_accuracy;
      summary.best_epoch = rec.epoch;
      best_state = net.state();
      // Step 1 of the commit (see run_directory.h): the new best beside the old one.
      if (run.enabled()) save_checkpoint(run.path("best.next.safetensors"), net, config, rec.epoch);
    }
    const bool stop = stopper.update(rec.val_accuracy);
    state.epoch = epoch + 1;
    state.stopper_best = stopper.best();
    state.stopper_wait = stopper.wait();
    state.best_val_accuracy = summary.best_val_accuracy.value_or(0);
    state.best_epoch = summary.best_epoch;
    state.partial_stats.clear();
    save_last(state);  // step 2: the epoch is committed
    run.finish_commit(improved, history_jsonl(result.history, config.rule));  // step 3
    if (stop) {
      summary.stop_reason = "early_stopping";
      break;
    }
  }
  if (summary.stop_reason.empty()) summary.stop_reason = "max_epochs";

  // Test accuracy of the best epoch's weights (those in best.safetensors).
  if (summary.best_epoch > 0 && summary.stop_reason != "interrupted") {
    net.load_state(best_state, "best epoch snapshot");
    summary.test_accuracy = evaluate_accuracy(net, test_loader, config.eval_batch, stats);
  }
  summary.total_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  if (run.enabled()) write_file_atomic(run.path("summary.json"), summary.to_json().dump(2) + "\n");
  return result;
}

}  // namespace bp
