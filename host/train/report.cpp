#include "train/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <tuple>

#include "core/error.h"
#include "io/atomic_file.h"

namespace bp::report {

namespace fs = std::filesystem;

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A run directory holds config.json and the history (or, for a run that diverged in its first
// epoch and so never wrote a history line, the summary).
bool is_run_path(const fs::path& dir) {
  return is_file(dir / "config.json") &&
         (is_file(dir / "history.jsonl") || is_file(dir / "summary.json"));
}

nlohmann::json parse_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(path << ": not valid JSON: " << e.what());
  }
}

// The shortest "%.*g" text that reads back as the same double.
std::string format_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[40];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string format_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The paper's order first (data sets, then nets), anything else after it, alphabetically.
int data_rank(const std::string& label) {
  static const std::vector<std::string> order = {"mnist", "fashion-mnist", "cifar10", "cifar100",
                                                 "cifar100-coarse", "tiny-imagenet"};
  const std::string prefix = label.substr(0, label.find(':'));
  for (size_t i = 0; i < order.size(); ++i)
    if (prefix == order[i]) return int(i);
  return int(order.size());
}
int model_rank(const std::string& model) {
  static const std::vector<std::string> order = {"dense", "conv", "loccon", "deep"};
  for (size_t i = 0; i < order.size(); ++i)
    if (model == order[i]) return int(i);
  return int(order.size());
}
int rule_rank(const std::string& rule) {
  return rule == "brainprop" ? 0 : rule == "ebp" ? 1 : rule == "reinforce" ? 2 : 3;
}
bool known_rule(const std::string& rule) { return rule_rank(rule) < 3; }

std::string spec_prefix(const std::string& spec) { return spec.substr(0, spec.find(':')); }
std::string spec_base(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return "";
  std::string path = spec.substr(colon + 1);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return fs::path(path).filename().string();
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

}  // namespace

// ---- reading runs -------------------------------------------------------------------------

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::Finished: return "finished";
    case Outcome::Failed: return "failed";
    case Outcome::Unfinished: return "unfinished";
  }
  return "?";
}

std::vector<std::string> find_run_dirs(const std::string& sweep_dir) {
  std::error_code ec;
  BP_CHECK(fs::exists(sweep_dir, ec), sweep_dir << ": no such directory");
  BP_CHECK(fs::is_directory(sweep_dir, ec), sweep_dir << ": not a directory");
  std::vector<std::string> runs;
  auto subdirs = [](const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code iter_ec;
    for (fs::directory_iterator it(dir, iter_ec), end; !iter_ec && it != end; it.increment(iter_ec)) {
      std::error_code type_ec;
      if (it->is_directory(type_ec)) out.push_back(it->path());
    }
    BP_CHECK(!iter_ec, dir.string() << ": cannot list the directory: " << iter_ec.message());
    return out;
  };
  for (const fs::path& level1 : subdirs(sweep_dir)) {
    if (is_run_path(level1)) {
      runs.push_back(level1.string());
      continue;
    }
    for (const fs::path& level2 : subdirs(level1))
      if (is_run_path(level2)) runs.push_back(level2.string());
  }
  std::sort(runs.begin(), runs.end());
  return runs;
}

namespace {
// The update probe's figures (train/update_probe.h), each a metric of the whole net and, as
// "<figure>.<layer>", of each layer.
const char* const kProbeFigures[] = {"update_angle", "update_variance", "sampling_variance",
                                     "feedback_angle"};

// The probe's figures of one history line as metrics; null figures are absent.
void add_probe_metrics(const nlohmann::json& probe, EpochPoint& point) {
  for (const char* f : kProbeFigures)
    if (probe.contains(f) && probe[f].is_number()) point.metrics[f] = probe[f].get<double>();
  if (!probe.contains("layers") || !probe["layers"].is_array()) return;
  for (const nlohmann::json& layer : probe["layers"]) {
    if (!layer.is_object() || !layer.contains("layer") || !layer["layer"].is_string()) continue;
    const std::string name = layer["layer"].get<std::string>();
    for (const char* f : kProbeFigures)
      if (layer.contains(f) && layer[f].is_number())
        point.metrics[std::string(f) + "." + name] = layer[f].get<double>();
  }
}
}  // namespace

RunRecord read_run(const std::string& dir) {
  RunRecord run;
  run.dir = dir;

  const std::string config_path = (fs::path(dir) / "config.json").string();
  const nlohmann::json config = parse_json_file(config_path);
  try {
    run.data = config.at("data").get<std::string>();
    run.model = config.at("model").at("name").get<std::string>();
    // Feedback variants of a model are rows of their own: "conv+fa", "conv+dfa".
    const nlohmann::json& model = config.at("model");
    if (model.contains("feedback") && model.at("feedback").get<std::string>() != "symmetric")
      run.model += "+" + model.at("feedback").get<std::string>();
    run.rule = config.at("rule").get<std::string>();
    run.val = config.contains("val") ? config.at("val").get<std::string>() : std::string("?");
    run.seed = config.at("seed").get<unsigned long long>();
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(config_path << ": not a brainprop run configuration: " << e.what());
  }
  BP_CHECK(known_rule(run.rule), config_path << ": unknown rule \"" << run.rule
                                             << "\" (known: brainprop, ebp, reinforce)");

  const std::string history_path = (fs::path(dir) / "history.jsonl").string();
  if (is_file(history_path)) {
    std::istringstream lines(read_file(history_path));
    std::string line;
    for (int line_no = 1; std::getline(lines, line); ++line_no) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json rec;
      try {
        rec = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        BP_FAIL(history_path << " line " << line_no << ": not valid JSON: " << e.what());
      }
      BP_CHECK(rec.is_object(), history_path << " line " << line_no << ": not a JSON object");
      EpochPoint point;
      BP_CHECK(rec.contains("epoch") && rec["epoch"].is_number_integer(),
               history_path << " line " << line_no << ": no integer \"epoch\"");
      point.epoch = rec["epoch"].get<int>();
      BP_CHECK(point.epoch >= 1, history_path << " line " << line_no << ": epoch " << point.epoch
                                              << " (epochs count from 1)");
      BP_CHECK(run.history.empty() || point.epoch > run.history.back().epoch,
               history_path << " line " << line_no << ": epoch " << point.epoch
                            << " after epoch " << run.history.back().epoch);
      for (const auto& [key, value] : rec.items())
        if (key != "epoch" && value.is_number()) point.metrics[key] = value.get<double>();
      if (rec.contains("probe") && rec["probe"].is_object()) add_probe_metrics(rec["probe"], point);
      BP_CHECK(point.metrics.count("val_accuracy"),
               history_path << " line " << line_no << ": no numeric \"val_accuracy\"");
      run.history.push_back(std::move(point));
    }
  }

  const std::string summary_path = (fs::path(dir) / "summary.json").string();
  if (!is_file(summary_path)) {
    run.outcome = Outcome::Unfinished;
    run.reason = "no summary.json (still running, or killed)";
    return run;
  }
  const nlohmann::json summary = parse_json_file(summary_path);
  try {
    // A figure is a number, or null when it was never measured.
    auto figure = [&](const char* key) -> std::optional<double> {
      const nlohmann::json& v = summary.at(key);
      if (v.is_null()) return std::nullopt;
      BP_CHECK(v.is_number(), summary_path << ": not a brainprop run summary: \"" << key
                                           << "\" is " << v.dump() << ", not a number or null");
      return v.get<double>();
    };
    run.best_val_accuracy = figure("best_val_accuracy");
    run.test_accuracy = figure("test_accuracy");
    const nlohmann::json& best_epoch = summary.at("best_epoch");
    run.best_epoch = best_epoch.is_null() ? 0 : best_epoch.get<int>();
    run.epochs_run = summary.at("epochs_run").get<int>();
    run.stop_reason = summary.at("stop_reason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(summary_path << ": not a brainprop run summary: " << e.what());
  }
  // Summaries written before unmeasured figures became null hold 0 for them: without a best
  // epoch nothing was measured, and an interrupted run's test accuracy never is.
  if (run.best_epoch == 0) {
    run.best_val_accuracy.reset();
    run.test_accuracy.reset();
  }
  if (run.stop_reason == "interrupted") {
    run.test_accuracy.reset();
    run.outcome = Outcome::Unfinished;
    run.reason = "interrupted after " + std::to_string(run.epochs_run) +
                 " finished epochs; resume it with brainprop train --resume or the sweep";
    return run;
  }
  if (run.stop_reason == "nan_loss" || run.stop_reason == "nonfinite_weights") {
    run.outcome = Outcome::Failed;
    run.reason = run.stop_reason + " in epoch " + std::to_string(run.epochs_run);
    return run;
  }
  run.outcome = Outcome::Finished;
  return run;
}

std::vector<RunRecord> read_sweep(const std::string& sweep_dir) {
  std::vector<RunRecord> runs;
  for (const std::string& dir : find_run_dirs(sweep_dir)) runs.push_back(read_run(dir));

  // The errors `brainprop sweep` recorded: {"runs": [{"name", "dir", "data", "model", "rule",
  // "seed", "val", "outcome", "stop_reason", "failed", "error"}, ...]} (entries without
  // "error" add nothing).
  // sweep.json, and sweep.shard-K-of-N.json of each `sweep --shard K/N` sharing the directory.
  std::vector<std::string> records;
  if (is_file((fs::path(sweep_dir) / "sweep.json").string()))
    records.push_back((fs::path(sweep_dir) / "sweep.json").string());
  std::error_code ec;
  std::vector<std::string> shard_records;
  for (const auto& entry : fs::directory_iterator(sweep_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("sweep.shard-", 0) == 0 && entry.path().extension() == ".json" && entry.is_regular_file())
      shard_records.push_back(entry.path().string());
  }
  std::sort(shard_records.begin(), shard_records.end());
  records.insert(records.end(), shard_records.begin(), shard_records.end());
  for (const std::string& sweep_json : records) {
    const nlohmann::json record = parse_json_file(sweep_json);
    try {
      if (!record.contains("runs")) continue;
      for (const nlohmann::json& entry : record.at("runs")) {
        if (!entry.contains("error") || entry.at("error").is_null()) continue;
        const std::string name = entry.at("name").get<std::string>();
        const std::string error = entry.at("error").get<std::string>();
        // `brainprop sweep` makes SWEEP_DIR/<name>: a run directory one level down.
        const auto without_trailing_slash = [](fs::path p) { return p.has_filename() ? p : p.parent_path(); };
        auto it = std::find_if(runs.begin(), runs.end(), [&](const RunRecord& r) {
          return fs::path(r.dir).filename() == name &&
                 fs::path(r.dir).parent_path() == without_trailing_slash(sweep_dir);
        });
        if (it == runs.end()) {
          RunRecord r;
          r.dir = (fs::path(sweep_dir) / name).string();
          r.data = entry.value("data", "?");
          r.model = entry.value("model", "?");
          r.rule = entry.value("rule", "?");
          r.val = entry.value("val", "?");
          r.seed = entry.value("seed", 0ull);
          runs.push_back(std::move(r));
          it = runs.end() - 1;
        } else if (it->outcome == Outcome::Finished) {
          continue;  // finished since: the error is history
        }
        it->outcome = Outcome::Failed;
        it->reason = "error (" + fs::path(sweep_json).filename().string() + "): " + error;
      }
    } catch (const nlohmann::json::exception& e) {
      BP_FAIL(sweep_json << ": not a brainprop sweep record: " << e.what());
    }
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunRecord& a, const RunRecord& b) { return a.dir < b.dir; });
  return runs;
}

bool is_run_dir(const std::string& dir) { return is_run_path(dir); }

std::vector<RunRecord> read_sweeps(const std::vector<std::string>& dirs) {
  std::vector<RunRecord> runs;
  std::map<std::string, size_t> by_path;  // canonical path -> index in runs
  for (const std::string& dir : dirs) {
    std::vector<RunRecord> found;
    if (is_run_path(dir)) found.push_back(read_run(dir));
    else found = read_sweep(dir);
    for (RunRecord& r : found) {
      std::error_code ec;
      fs::path canonical = fs::weakly_canonical(r.dir, ec);
      if (ec) canonical = fs::absolute(r.dir).lexically_normal();
      const auto [it, fresh] = by_path.emplace(canonical.string(), runs.size());
      if (fresh) {
        runs.push_back(std::move(r));
      } else if (runs[it->second].outcome == Outcome::Unfinished && r.outcome == Outcome::Failed) {
        // Reached through a directory whose sweep.json records its error.
        runs[it->second].outcome = r.outcome;
        runs[it->second].reason = r.reason;
      }
    }
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunRecord& a, const RunRecord& b) { return a.dir < b.dir; });
  return runs;
}

// ---- statistics and grouping ---------------------------------------------------------------

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd s;
  s.n = int(values.size());
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / double(s.n);
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / double(s.n - 1));
  }
  return s;
}

std::string format_mean_std(double mean, double std, int decimals) {
  return format_fixed(mean, decimals) + " (" + format_fixed(std, decimals) + ")";
}

std::string file_safe(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '+' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

std::map<std::string, std::string> data_labels(const std::vector<std::string>& specs) {
  const std::set<std::string> distinct(specs.begin(), specs.end());
  std::map<std::string, int> per_prefix;
  for (const std::string& spec : distinct) ++per_prefix[spec_prefix(spec)];
  std::map<std::string, std::string> labels;
  std::set<std::string> used;
  for (const std::string& spec : distinct) {
    const std::string prefix = spec_prefix(spec), base = spec_base(spec);
    std::string label = prefix;
    if ((per_prefix[prefix] > 1 || prefix == "folder") && !base.empty()) label += "-" + base;
    label = file_safe(label.empty() ? "data" : label);
    std::string unique = label;
    for (int k = 2; used.count(unique); ++k) unique = label + "-" + std::to_string(k);
    used.insert(unique);
    labels[spec] = unique;
  }
  return labels;
}

Sweep aggregate(std::vector<RunRecord> runs, const std::string& sweep_dir) {
  Sweep sweep;
  sweep.dir = sweep_dir;
  std::vector<std::string> specs;
  for (const RunRecord& r : runs) specs.push_back(r.data);
  const std::map<std::string, std::string> labels = data_labels(specs);

  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  std::map<std::tuple<std::string, std::string, std::string>, std::set<std::string>> failed_protocols;
  for (RunRecord& r : runs) {
    if (r.outcome == Outcome::Unfinished) {
      sweep.unfinished.push_back(std::move(r));
      continue;
    }
    if (r.outcome == Outcome::Failed && !known_rule(r.rule)) {
      sweep.failed.push_back(std::move(r));  // a sweep.json record without a known rule
      continue;
    }
    Group& g = groups[{r.data, r.model, r.rule}];
    g.data = r.data;
    g.data_label = labels.at(r.data);
    g.model = r.model;
    g.rule = r.rule;
    if (r.outcome == Outcome::Failed) {
      ++g.failed;
      if (r.val != "?") failed_protocols[{r.data, r.model, r.rule}].insert(r.val);
      sweep.failed.push_back(std::move(r));
    } else {
      g.runs.push_back(std::move(r));
    }
  }
  for (auto& [key, g] : groups) {
    // A group of failed runs only still says how it was validated.
    std::set<std::string> protocols = g.runs.empty() ? failed_protocols[key] : std::set<std::string>();
    std::sort(g.runs.begin(), g.runs.end(), [](const RunRecord& a, const RunRecord& b) {
      return std::tie(a.seed, a.dir) < std::tie(b.seed, b.dir);
    });
    std::vector<double> epochs, val, test, run_epochs;
    std::map<unsigned long long, std::vector<std::string>> dirs_by_seed;
    for (const RunRecord& r : g.runs) {
      // Means over the figures measured: a finished run without a best epoch (never, since
      // unmeasured figures are null) would add nothing rather than a 0.
      if (r.best_epoch > 0) epochs.push_back(r.best_epoch);
      if (r.best_val_accuracy) val.push_back(*r.best_val_accuracy);
      if (r.test_accuracy) test.push_back(*r.test_accuracy);
      run_epochs.push_back(r.epochs_run);
      protocols.insert(r.val);
      dirs_by_seed[r.seed].push_back(r.dir);
    }
    g.best_epoch = mean_std(epochs);
    g.best_val_accuracy = mean_std(val);
    g.test_accuracy = mean_std(test);
    g.epochs_run = mean_std(run_epochs);
    g.val = join(std::vector<std::string>(protocols.begin(), protocols.end()), ",");
    const std::string name = g.data_label + " " + g.model + " " + g.rule;
    if (protocols.size() > 1)
      sweep.warnings.push_back(name + ": the runs mix validation protocols (" + g.val + ")");
    for (const auto& [seed, dirs] : dirs_by_seed)
      if (dirs.size() > 1)
        sweep.warnings.push_back(name + ": seed " + std::to_string(seed) + " appears in " +
                                 std::to_string(dirs.size()) + " runs (" + join(dirs, ", ") +
                                 "); each counts as a seed");
  }
  for (auto& [key, g] : groups) sweep.groups.push_back(std::move(g));
  std::sort(sweep.groups.begin(), sweep.groups.end(), [](const Group& a, const Group& b) {
    return std::make_tuple(data_rank(a.data_label), a.data_label, model_rank(a.model), a.model,
                           rule_rank(a.rule)) <
           std::make_tuple(data_rank(b.data_label), b.data_label, model_rank(b.model), b.model,
                           rule_rank(b.rule));
  });
  for (std::vector<RunRecord>* list : {&sweep.unfinished, &sweep.failed})
    std::sort(list->begin(), list->end(),
              [](const RunRecord& a, const RunRecord& b) { return a.dir < b.dir; });
  // Rows pair BrainProp with EBP: say when the two halves of a row were run differently.
  for (const TableRow& row : table_rows(sweep))
    if (row.brainprop && row.ebp && !row.brainprop->val.empty() && !row.ebp->val.empty() &&
        row.brainprop->val != row.ebp->val)
      sweep.warnings.push_back(row.data_label + " " + row.model +
                               ": BrainProp and EBP runs use different validation protocols (" +
                               row.brainprop->val + " vs " + row.ebp->val + ")");
  return sweep;
}

std::string run_counts(const Sweep& sweep) {
  size_t finished = 0;
  for (const Group& g : sweep.groups) finished += g.runs.size();
  auto listing = [](const std::vector<RunRecord>& runs) {
    std::vector<std::string> items;
    for (const RunRecord& r : runs) items.push_back(r.reason + ": " + r.dir);
    return items.empty() ? std::string() : " (" + join(items, "; ") + ")";
  };
  const size_t total = finished + sweep.failed.size() + sweep.unfinished.size();
  return std::to_string(total) + (total == 1 ? " run: " : " runs: ") + std::to_string(finished) +
         " finished, " + std::to_string(sweep.failed.size()) + " failed" + listing(sweep.failed) +
         ", " + std::to_string(sweep.unfinished.size()) + " unfinished" +
         listing(sweep.unfinished);
}

// ---- the table -----------------------------------------------------------------------------

std::vector<TableRow> table_rows(const Sweep& sweep) {
  std::vector<TableRow> rows;
  for (const Group& g : sweep.groups) {
    if (rows.empty() || rows.back().data_label != g.data_label || rows.back().model != g.model)
      rows.push_back({g.data_label, g.model, nullptr, nullptr, nullptr});
    if (g.rule == "brainprop") rows.back().brainprop = &g;
    if (g.rule == "ebp") rows.back().ebp = &g;
    if (g.rule == "reinforce") rows.back().reinforce = &g;
  }
  return rows;
}

std::optional<double> epoch_ratio(const TableRow& row) {
  if (!row.brainprop || !row.ebp || row.brainprop->best_epoch.n == 0 ||
      row.ebp->best_epoch.n == 0 || row.ebp->best_epoch.mean == 0)
    return std::nullopt;
  return row.brainprop->best_epoch.mean / row.ebp->best_epoch.mean;
}

std::string markdown_header(bool reinforce) {
  if (!reinforce)
    return "| data | model | BrainProp epochs | BrainProp acc % | EBP epochs | EBP acc % | "
           "epochs ratio BrainProp/EBP | BrainProp test acc % | EBP test acc % | seeds | failed |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|\n";
  return "| data | model | BrainProp epochs | BrainProp acc % | EBP epochs | EBP acc % | "
         "epochs ratio BrainProp/EBP | BrainProp test acc % | EBP test acc % | REINFORCE epochs | "
         "REINFORCE acc % | REINFORCE test acc % | seeds | failed |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
}

bool has_reinforce(const std::vector<TableRow>& rows) {
  for (const TableRow& row : rows)
    if (row.reinforce) return true;
  return false;
}

std::string markdown_row(const TableRow& row, bool reinforce) {
  const std::string none = "–";      // no runs of that rule
  const std::string unmeasured = "n/a";  // runs, but no finished run measured it
  auto epochs = [&](const Group* g) {
    if (!g) return none;
    if (g->best_epoch.n == 0) return unmeasured;
    return format_mean_std(g->best_epoch.mean, g->best_epoch.std, 0);
  };
  auto percent = [&](const Group* g, const MeanStd Group::*field) {
    if (!g) return none;
    const MeanStd& s = g->*field;
    if (s.n == 0) return unmeasured;
    return format_mean_std(100 * s.mean, 100 * s.std, 2);
  };
  // One count when the rules run agree, else "a / b" (BrainProp / EBP, then / REINFORCE),
  // the rules run in that order.
  auto per_rule = [&](size_t (*count)(const Group&)) {
    std::vector<std::string> counts;
    for (const Group* g : {row.brainprop, row.ebp, row.reinforce})
      if (g) counts.push_back(std::to_string(count(*g)));
    const bool same = std::all_of(counts.begin(), counts.end(),
                                  [&](const std::string& c) { return c == counts.front(); });
    return same ? counts.front() : join(counts, " / ");
  };
  const std::optional<double> ratio = epoch_ratio(row);
  const std::string seeds = per_rule([](const Group& g) { return g.runs.size(); });
  const std::string failed = per_rule([](const Group& g) { return size_t(g.failed); });
  const std::string reinforce_cells =
      reinforce ? epochs(row.reinforce) + " | " + percent(row.reinforce, &Group::best_val_accuracy) +
                      " | " + percent(row.reinforce, &Group::test_accuracy) + " | "
                : std::string();
  std::string ratio_text = none;
  if (ratio) ratio_text = format_fixed(*ratio, 2);
  else if (row.brainprop && row.ebp) ratio_text = unmeasured;
  return "| " + row.data_label + " | " + row.model + " | " + epochs(row.brainprop) + " | " +
         percent(row.brainprop, &Group::best_val_accuracy) + " | " + epochs(row.ebp) + " | " +
         percent(row.ebp, &Group::best_val_accuracy) + " | " + ratio_text + " | " +
         percent(row.brainprop, &Group::test_accuracy) + " | " +
         percent(row.ebp, &Group::test_accuracy) + " | " + reinforce_cells + seeds + " | " +
         failed + " |";
}

// The update probe's table (empty when no run has probe figures).
static std::string probe_markdown(const Sweep& sweep) {
  // Each finished run's last epoch that has the figure; mean (std) over the group's seeds.
  auto last_value = [](const RunRecord& r, const std::string& metric) -> std::optional<double> {
    for (auto e = r.history.rbegin(); e != r.history.rend(); ++e) {
      const auto it = e->metrics.find(metric);
      if (it != e->metrics.end()) return it->second;
    }
    return std::nullopt;
  };
  auto cell = [&](const Group& g, const std::string& metric, int decimals) {
    std::vector<double> values;
    for (const RunRecord& r : g.runs)
      if (const auto v = last_value(r, metric)) values.push_back(*v);
    const MeanStd s = mean_std(values);
    return s.n == 0 ? std::string("n/a") : format_mean_std(s.mean, s.std, decimals);
  };
  std::ostringstream md;
  bool any = false;
  for (const Group& g : sweep.groups) {
    bool has = false;
    for (const RunRecord& r : g.runs) has = has || last_value(r, "update_variance").has_value();
    if (!has) continue;
    if (!any)
      md << "\n## Update probe (the last epoch of each run)\n\n"
            "| data | model | rule | update ∠ true gradient (°) | relative update variance | "
            "action-sampling variance | update ∠ gradient, first layer (°) | W ∠ B, first layer (°) "
            "| seeds |\n"
            "|---|---|---|---|---|---|---|---|---|\n";
    any = true;
    std::string first_layer;
    // The net's first weighted layer (layers are named by type and number).
    for (const char* candidate : {"conv2d1", "local2d1", "dense1"}) {
      bool found = false;
      for (const RunRecord& r : g.runs) found = found || last_value(r, std::string("update_angle.") + candidate);
      if (found) {
        first_layer = candidate;
        break;
      }
    }
    md << "| " << g.data_label << " | " << g.model << " | " << g.rule << " | "
       << cell(g, "update_angle", 1) << " | " << cell(g, "update_variance", 2) << " | "
       << cell(g, "sampling_variance", 3) << " | "
       << (first_layer.empty() ? "n/a" : cell(g, "update_angle." + first_layer, 1)) << " | "
       << (first_layer.empty() ? "n/a" : cell(g, "feedback_angle." + first_layer, 1)) << " | "
       << g.runs.size() << " |\n";
  }
  if (any)
    md << "\nThe probe (`--probe N`, train/update_probe.h): after every epoch, on the first N "
          "training images, the angle between the update the rule makes and the true gradient of "
          "the rule's own loss (the same output errors sent back through W); the per-sample "
          "variance of the update, sum_b ||u_b − ū||² / (N − 1) over ||ū||² (dimensionless, so "
          "rules of different step sizes compare); the action-sampling variance, the same ratio "
          "for the batch's update over 8 fresh draws of the actions on the same images (n/a for "
          "EBP, which samples nothing): the noise of the credit assignment alone; and the angle "
          "between W and the feedback weights B (fa, learned). Curves: `*-update_probe.png`, `*-feedback_angle.png`.\n";
  return md.str();
}

std::string markdown_report(const Sweep& sweep) {
  std::ostringstream md;
  // No directory in the title: the merged report of a sweep's shards is the sweep's report.
  md << "# brainprop report\n\n";
  const std::vector<TableRow> rows = table_rows(sweep);
  if (rows.empty()) {
    md << "No finished or failed runs: nothing to tabulate.\n";
  } else {
    const bool reinforce = has_reinforce(rows);
    md << markdown_header(reinforce);
    for (const TableRow& row : rows) md << markdown_row(row, reinforce) << "\n";
  }
  std::map<std::string, int> protocols;
  for (const Group& g : sweep.groups)
    for (const RunRecord& r : g.runs) ++protocols[r.val];
  std::vector<std::string> protocol_counts;
  for (const auto& [name, count] : protocols)
    protocol_counts.push_back(name + " (" + std::to_string(count) + " runs)");

  md << "\nMean (std) over seeds; std is the sample standard deviation (n − 1), 0 for one seed.\n\n"
        "- **epochs**: `best_epoch` of summary.json, the epoch of the best validation accuracy "
        "(the paper's \"epochs\").\n"
        "- **acc %**: `best_val_accuracy`, the best validation accuracy, in %.\n"
        "- **epochs ratio**: mean BrainProp epochs / mean EBP epochs (of the unrounded means).\n"
        "- **test acc %**: `test_accuracy`, the test accuracy of the best epoch's weights. With "
        "`--val test` (the paper's protocol) the validation set is the test set, so it "
        "coincides with acc %; with `--val holdout` it is the honest estimate.\n"
        "- **seeds**: finished runs per rule (\"a / b\": BrainProp / EBP, then / REINFORCE, when "
        "they differ); the "
        "means and the curves are over these.\n"
        "- **failed**: failed runs per rule, listed below: a divergence (stop_reason `nan_loss` "
        "or `nonfinite_weights`) or an error `brainprop sweep` recorded in sweep.json. They are "
        "left out of the means and the curves, not counted as 0.\n"
        "- **n/a**: not measured: the group has runs, but no finished run measured the figure "
        "(in summary.json an unmeasured figure is `null`); **–**: no runs of that rule. In "
        "table.csv and runs.csv an unmeasured figure is an empty field.\n";
  if (has_reinforce(rows))
    md << "- **REINFORCE**: the reward-only policy-gradient baseline (one sampled action per "
          "image, reward 1 if it is the label, a running reward baseline), with the same "
          "information as BrainProp (docs/design.md).\n";
  if (!protocol_counts.empty())
    md << "- Validation protocol of the runs: " << join(protocol_counts, ", ") << ".\n";
  md << probe_markdown(sweep);
  md << "\nRuns: " << run_counts(sweep) << ". Every run is in runs.csv.\n";
  auto list_runs = [&](const std::vector<RunRecord>& runs) {
    for (const RunRecord& r : runs)
      md << "- `" << r.dir << "`: " << r.data << " " << r.model << " " << r.rule << " seed "
         << r.seed << ", " << r.history.size() << " epochs in history.jsonl, " << r.reason
         << "\n";
  };
  if (!sweep.failed.empty()) {
    md << "\n## Failed runs (counted in the failed column, left out of the means and the "
          "curves)\n\n"
          "A diverged run is a result: rerunning the sweep skips it. A run that failed with an "
          "error (recorded in sweep.json) is retried when the sweep is run again.\n\n";
    list_runs(sweep.failed);
  }
  if (!sweep.unfinished.empty()) {
    md << "\n## Unfinished runs (left out of the table and the curves)\n\n";
    list_runs(sweep.unfinished);
  }
  if (!sweep.warnings.empty()) {
    md << "\n## Warnings\n\n";
    for (const std::string& w : sweep.warnings) md << "- " << w << "\n";
  }
  return md.str();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string table_csv(const Sweep& sweep) {
  std::string csv =
      "data,data_spec,model,rule,val,seeds,seed_list,best_epoch_mean,best_epoch_std,"
      "best_val_accuracy_mean,best_val_accuracy_std,test_accuracy_mean,test_accuracy_std,"
      "epochs_run_mean,epochs_run_std,epoch_ratio_brainprop_over_ebp,failed\n";
  // An empty field: nothing measured (no finished run of the group measured the figure).
  auto mean = [](const MeanStd& s) { return s.n > 0 ? format_number(s.mean) : std::string(); };
  auto sd = [](const MeanStd& s) { return s.n > 0 ? format_number(s.std) : std::string(); };
  for (const TableRow& row : table_rows(sweep)) {
    const std::optional<double> ratio = epoch_ratio(row);
    for (const Group* g : {row.brainprop, row.ebp, row.reinforce}) {
      if (!g) continue;
      std::vector<std::string> seeds;
      for (const RunRecord& r : g->runs) seeds.push_back(std::to_string(r.seed));
      const std::vector<std::string> fields = {
          csv_field(g->data_label),
          csv_field(g->data),
          csv_field(g->model),
          g->rule,
          csv_field(g->val),
          std::to_string(g->runs.size()),
          join(seeds, ";"),
          mean(g->best_epoch),
          sd(g->best_epoch),
          mean(g->best_val_accuracy),
          sd(g->best_val_accuracy),
          mean(g->test_accuracy),
          sd(g->test_accuracy),
          mean(g->epochs_run),
          sd(g->epochs_run),
          ratio ? format_number(*ratio) : "",
          std::to_string(g->failed)};
      csv += join(fields, ",") + "\n";
    }
  }
  return csv;
}

std::string runs_csv(const Sweep& sweep) {
  std::vector<const RunRecord*> runs;
  for (const Group& g : sweep.groups)
    for (const RunRecord& r : g.runs) runs.push_back(&r);
  for (const RunRecord& r : sweep.failed) runs.push_back(&r);
  for (const RunRecord& r : sweep.unfinished) runs.push_back(&r);
  std::sort(runs.begin(), runs.end(),
            [](const RunRecord* a, const RunRecord* b) { return a->dir < b->dir; });
  const std::map<std::string, std::string> labels = [&] {
    std::vector<std::string> specs;
    for (const RunRecord* r : runs) specs.push_back(r->data);
    return data_labels(specs);
  }();
  auto figure = [](const std::optional<double>& v) { return v ? format_number(*v) : std::string(); };
  std::string csv =
      "dir,data,data_spec,model,rule,val,seed,outcome,reason,stop_reason,epochs_run,best_epoch,"
      "best_val_accuracy,test_accuracy\n";
  for (const RunRecord* r : runs) {
    const bool summarised = !r->stop_reason.empty();  // has a summary.json
    const std::vector<std::string> fields = {
        csv_field(r->dir),
        csv_field(labels.at(r->data)),
        csv_field(r->data),
        csv_field(r->model),
        csv_field(r->rule),
        csv_field(r->val),
        std::to_string(r->seed),
        outcome_name(r->outcome),
        csv_field(r->reason),
        csv_field(r->stop_reason),
        summarised ? std::to_string(r->epochs_run) : "",
        r->best_epoch > 0 ? std::to_string(r->best_epoch) : "",
        figure(r->best_val_accuracy),
        figure(r->test_accuracy)};
    csv += join(fields, ",") + "\n";
  }
  return csv;
}

// ---- curves --------------------------------------------------------------------------------

const std::vector<std::string>& curve_metrics() {
  static const std::vector<std::string> metrics = {"val_accuracy", "train_accuracy", "train_loss",
                                                   "reward_rate", "exploration_rate",
                                                   "update_angle", "update_variance",
                                                   "sampling_variance"};
  return metrics;
}

bool is_probe_layer_metric(const std::string& metric) {
  for (const char* figure : kProbeFigures)
    if (metric.rfind(std::string(figure) + ".", 0) == 0) return true;
  return false;
}

std::vector<CurvePoint> aggregate_curves(const Sweep& sweep) {
  std::vector<CurvePoint> points;
  for (const Group& g : sweep.groups) {
    std::vector<std::string> metrics = curve_metrics();
    std::set<std::string> per_layer;  // the probe's per-layer figures these runs have
    for (const RunRecord& r : g.runs)
      for (const EpochPoint& e : r.history)
        for (const auto& item : e.metrics)
          if (is_probe_layer_metric(item.first)) per_layer.insert(item.first);
    metrics.insert(metrics.end(), per_layer.begin(), per_layer.end());
    for (const std::string& metric : metrics) {
      std::map<int, std::vector<double>> by_epoch;
      for (const RunRecord& r : g.runs)
        for (const EpochPoint& e : r.history) {
          const auto it = e.metrics.find(metric);
          if (it != e.metrics.end()) by_epoch[e.epoch].push_back(it->second);
        }
      for (const auto& [epoch, values] : by_epoch)
        points.push_back({g.data_label, g.model, g.rule, metric, epoch, mean_std(values)});
    }
  }
  return points;
}

std::string curves_csv(const std::vector<CurvePoint>& curves) {
  std::string csv = "data,model,rule,metric,epoch,mean,std,n\n";
  for (const CurvePoint& p : curves)
    csv += csv_field(p.data_label) + "," + csv_field(p.model) + "," + p.rule + "," + p.metric +
           "," + std::to_string(p.epoch) + "," + format_number(p.stats.mean) + "," +
           format_number(p.stats.std) + "," + std::to_string(p.stats.n) + "\n";
  return csv;
}

std::vector<std::string> expected_figures(const Sweep& sweep) {
  std::vector<std::string> files;
  const std::vector<CurvePoint> curves = aggregate_curves(sweep);
  for (const TableRow& row : table_rows(sweep)) {
    bool val = false, reward = false, probe = false, feedback = false;
    for (const CurvePoint& p : curves) {
      if (p.data_label != row.data_label || p.model != row.model) continue;
      val = val || p.metric == "val_accuracy";
      reward = reward || ((p.rule == "brainprop" || p.rule == "reinforce") &&
                          (p.metric == "reward_rate" || p.metric == "exploration_rate"));
      probe = probe || p.metric == "update_angle" || p.metric == "update_variance";
      feedback = feedback || p.metric.rfind("feedback_angle.", 0) == 0;
    }
    const std::string stem = file_safe(row.data_label) + "-" + file_safe(row.model);
    for (const char* ext : {".png", ".svg"}) {
      if (val) files.push_back(stem + "-val_accuracy" + ext);
      if (reward) files.push_back(stem + "-brainprop_reward" + ext);
      if (probe) files.push_back(stem + "-update_probe" + ext);
      if (feedback) files.push_back(stem + "-feedback_angle" + ext);
    }
  }
  return files;
}

Sweep write_report(const std::string& sweep_dir, ReportFiles* files) {
  return write_report(std::vector<std::string>{sweep_dir}, (fs::path(sweep_dir) / "report").string(),
                      files);
}

Sweep write_report(const std::vector<std::string>& dirs, const std::string& report_dir,
                   ReportFiles* files) {
  Sweep sweep = aggregate(read_sweeps(dirs), join(dirs, ", "));
  ReportFiles out;
  out.report_dir = report_dir;
  std::error_code ec;
  fs::create_directories(out.report_dir, ec);
  BP_CHECK(!ec, out.report_dir << ": cannot create the report directory: " << ec.message());
  out.table_md = (fs::path(out.report_dir) / "table.md").string();
  out.table_csv = (fs::path(out.report_dir) / "table.csv").string();
  out.runs_csv = (fs::path(out.report_dir) / "runs.csv").string();
  out.curves_csv = (fs::path(out.report_dir) / "curves.csv").string();
  write_file_atomic(out.table_md, markdown_report(sweep));
  write_file_atomic(out.table_csv, table_csv(sweep));
  write_file_atomic(out.runs_csv, runs_csv(sweep));
  write_file_atomic(out.curves_csv, curves_csv(aggregate_curves(sweep)));
  if (files) *files = out;
  return sweep;
}

// ---- figures -------------------------------------------------------------------------------

std::string scripts_directory() {
  if (const char* env = std::getenv("BRAINPROP_SCRIPTS"); env && *env) return env;
  return BRAINPROP_SCRIPTS_DIR;
}

namespace {

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The exit status of a shell command; -1 when it could not be run or did not exit normally.
int run_shell(const std::string& command) {
  std::fflush(stdout);
  std::fflush(stderr);
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace

PlotResult plot_figures(const std::string& report_dir) {
  PlotResult result;
  const std::string script = (fs::path(scripts_directory()) / "plot_report.py").string();
  if (!is_file(script)) {
    result.reason = "the plot script " + script +
                    " is missing (set BRAINPROP_SCRIPTS to the directory holding plot_report.py)";
    return result;
  }
  if (!std::system(nullptr)) {
    result.reason = "no shell to run python3 from";
    return result;
  }
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("BRAINPROP_PYTHON"); env && *env) {
    candidates.push_back(env);
  } else {
    candidates.push_back("python3");
    // Debian's python3-matplotlib is for the system Python, which a pyenv or venv python3
    // earlier on the PATH does not see.
    if (is_file("/usr/bin/python3")) candidates.push_back("/usr/bin/python3");
  }
  std::vector<std::string> tried;
  for (const std::string& python : candidates) {
    result.python = python;
    const int rc = run_shell(shell_quote(python) + " -c 'import matplotlib' >/dev/null 2>&1");
    if (rc == 0) {
      const int plot_rc = run_shell(shell_quote(python) + " " + shell_quote(script) + " " +
                                    shell_quote(report_dir));
      if (plot_rc == 0) {
        result.ok = true;
      } else {
        result.reason = python + " " + script + " failed (exit status " +
                        std::to_string(plot_rc) + ")";
      }
      return result;
    }
    tried.push_back(python + ": " + (rc == 127 ? "not found" : "cannot import matplotlib"));
  }
  result.reason = "no Python with matplotlib (" + join(tried, "; ") +
                  "); install it with `apt-get install python3-matplotlib` "
                  "(scripts/install-deps.sh does) or point BRAINPROP_PYTHON at a Python that has it";
  return result;
}

}  // namespace bp::report
