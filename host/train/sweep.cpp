#include "train/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "train/run_directory.h"
#include "train/trainer.h"

namespace bp {

std::vector<SweepRun> sweep_grid(const TrainConfig& base, const std::vector<std::string>& data_specs,
                                 const std::vector<std::string>& data_names,
                                 const std::vector<std::string>& models,
                                 const std::vector<Rule>& rules, const std::vector<uint64_t>& seeds,
                                 const std::string& sweep_dir) {
  BP_CHECK(data_specs.size() == data_names.size(), "sweep_grid: one short name per data spec");
  std::vector<SweepRun> runs;
  for (size_t d = 0; d < data_specs.size(); ++d)
    for (const std::string& model : models) {
      const ModelSpec spec = load_model(model);
      for (Rule rule : rules)
        for (uint64_t seed : seeds) {
          SweepRun run;
          run.config = base;
          run.config.data_spec = data_specs[d];
          run.config.model_source = model;
          run.config.model = spec;
          run.config.rule = rule;
          run.config.seed = seed;
          run.config.batch_size = base.batch_size > 0 ? base.batch_size : spec.training.batch_size;
          run.config.lr = base.lr > 0 ? base.lr : spec.training.lr;
          run.name = data_names[d] + "-" + spec.name + "-" + rule_name(rule) + "-s" + std::to_string(seed);
          run.config.out_dir = sweep_dir + "/" + run.name;
          runs.push_back(run);
        }
    }
  return runs;
}

const char* run_status_name(RunStatus status) {
  switch (status) {
    case RunStatus::Fresh: return "new";
    case RunStatus::Resume: return "resume";
    case RunStatus::Done: return "done";
  }
  return "?";
}

RunStatus run_status(const TrainConfig& wanted) {
  namespace fs = std::filesystem;
  const fs::path dir(wanted.out_dir);
  // A run that diverged in its first epoch has a summary but no checkpoint: it is done too.
  if (!fs::exists(dir / "config.json") ||
      (!fs::exists(dir / "last.safetensors") && !diverged(stored_stop_reason(dir.string()))))
    return RunStatus::Fresh;
  const std::string config_path = (dir / "config.json").string();
  nlohmann::json stored;
  try {
    stored = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    BP_FAIL(config_path << ": not valid JSON: " << e.what());
  }
  BP_CHECK(stored.is_object(), config_path << ": not a JSON object");
  // How a run executes (threads, backend, math mode) and how long it may go on may change between
  // invocations; what it computes may not.
  nlohmann::json want = config_to_json(wanted);
  for (const char* free_field : {"threads", "backend", "math", "max_epochs"}) {
    stored.erase(free_field);
    want.erase(free_field);
  }
  for (const auto& item : want.items())
    BP_CHECK(stored.contains(item.key()) && stored[item.key()] == item.value(),
             config_path << ": this run was made with " << item.key() << " = "
                         << (stored.contains(item.key()) ? stored[item.key()].dump() : "(missing)")
                         << ", the sweep asks for " << item.value().dump()
                         << "; use another sweep directory");
  if (!fs::exists(dir / "summary.json")) return RunStatus::Resume;
  const std::string summary_path = (dir / "summary.json").string();
  std::string reason;
  int epochs_run = 0;
  try {
    const nlohmann::json summary = nlohmann::json::parse(read_file(summary_path));
    BP_CHECK(summary.is_object(), summary_path << ": not a valid summary: not a JSON object");
    reason = summary.value("stop_reason", "");
    epochs_run = summary.value("epochs_run", 0);
  } catch (const nlohmann::json::exception& e) {  // invalid, 1e999, or a field of another type
    BP_FAIL(summary_path << ": not a valid summary: " << e.what());
  }
  // A diverged run (nan_loss, nonfinite_weights) is done: rerunning it diverges again.
  if (reason == "interrupted") return RunStatus::Resume;
  if (reason == "max_epochs" && epochs_run < wanted.max_epochs) return RunStatus::Resume;
  return RunStatus::Done;
}

std::string stored_stop_reason(const std::string& run_dir) {
  const std::filesystem::path path = std::filesystem::path(run_dir) / "summary.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return "";
  try {
    const nlohmann::json summary = nlohmann::json::parse(read_file(path.string()));
    const auto it = summary.find("stop_reason");
    return it != summary.end() && it->is_string() ? it->get<std::string>() : "";
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace bp

namespace bp {

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  try {
    size_t used_k = 0, used_n = 0;
    BP_CHECK(slash != std::string::npos, "");
    s.index = std::stoi(text.substr(0, slash), &used_k);
    s.count = std::stoi(text.substr(slash + 1), &used_n);
    BP_CHECK(used_k == slash && used_n == text.size() - slash - 1, "");
  } catch (const std::exception&) {
    BP_FAIL("--shard expects K/N (e.g. 2/8), got \"" << text << "\"");
  }
  BP_CHECK(s.count >= 1 && s.index >= 1 && s.index <= s.count,
           "--shard K/N needs 1 <= K <= N, got " << text);
  return s;
}

bool in_shard(size_t grid_index, const Shard& shard) {
  return int(grid_index % size_t(shard.count)) == shard.index - 1;
}

Placement make_placement(int jobs, const std::vector<int>& gpus) {
  BP_CHECK(jobs >= 1, "--jobs must be >= 1, got " << jobs);
  Placement p;
  p.jobs = jobs;
  p.gpus = gpus;
  for (size_t i = 0; i < gpus.size(); ++i) {
    BP_CHECK(gpus[i] >= 0, "--gpus takes device numbers >= 0, got " << gpus[i]);
    for (size_t j = 0; j < i; ++j) BP_CHECK(gpus[j] != gpus[i], "--gpus names GPU " << gpus[i] << " twice");
  }
  BP_CHECK(gpus.empty() || size_t(jobs) >= gpus.size(),
           "--jobs " << jobs << " cannot use " << gpus.size() << " GPUs; give --jobs " << gpus.size()
                     << " or more (several runs share a GPU when --jobs exceeds the GPU count)");
  for (size_t g = 0; g < gpus.size(); ++g)
    p.slots.push_back(jobs / int(gpus.size()) + (int(g) < jobs % int(gpus.size()) ? 1 : 0));
  return p;
}

RunState describe_run(const TrainConfig& wanted) {
  namespace fs = std::filesystem;
  RunState s;
  s.status = run_status(wanted);
  const fs::path dir(wanted.out_dir);
  {
    std::ifstream history(dir / "history.jsonl");
    std::string line;
    while (std::getline(history, line))
      if (!line.empty()) ++s.epochs_done;
  }
  if (run_directory_in_use(wanted.out_dir, &s.running_pid)) {
    s.state = "running";
    s.detail = "pid " + std::to_string(s.running_pid) + ", epoch " + std::to_string(s.epochs_done) +
               "/" + std::to_string(wanted.max_epochs);
    return s;
  }
  const std::string reason = stored_stop_reason(wanted.out_dir);
  switch (s.status) {
    case RunStatus::Done:
      s.state = diverged(reason) ? "failed (" + reason + ")" : "done";
      s.detail = reason + ", " + std::to_string(s.epochs_done) + " epochs";
      break;
    case RunStatus::Resume:
      s.state = "partial";
      s.detail = "epoch " + std::to_string(s.epochs_done) + "/" + std::to_string(wanted.max_epochs);
      break;
    case RunStatus::Fresh:
      s.state = "not started";
      break;
  }
  return s;
}

std::optional<double> sweep_eta_seconds(const SweepProgress& p) {
  if (p.epochs_timed <= 0) return std::nullopt;
  const double per_epoch = p.epoch_seconds / double(p.epochs_timed);
  return double(p.epochs_remaining) * per_epoch / double(std::max(1, p.concurrency));
}

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char text[32];
  if (s < 60) std::snprintf(text, sizeof text, "%lds", s);
  else if (s < 3600) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  return text;
}

std::string sweep_progress_line(const SweepProgress& p, int width) {
  const int filled = p.runs_total > 0 ? int(int64_t(width) * p.runs_done / p.runs_total) : 0;
  std::string line = "sweep [" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.') +
                     "] " + std::to_string(p.runs_done) + "/" + std::to_string(p.runs_total) +
                     " runs done, " + std::to_string(p.runs_running) + " running";
  const auto eta = sweep_eta_seconds(p);
  line += eta ? ", ETA <= " + format_duration(*eta) : ", ETA after the first epoch";
  return line;
}

}  // namespace bp
