#include "train/sweep.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
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
