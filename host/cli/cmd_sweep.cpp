// `brainprop sweep`: runs a data x model x rule x seed grid one run after another, each in
// its own run directory; started again, it skips finished runs and resumes unfinished ones.
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/train_options.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "train/interrupt.h"
#include "train/sweep.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

const char* kSweepHelp = R"(usage: brainprop sweep --data SPEC[,SPEC...] --models NAME[,NAME...] --out SWEEP_DIR
                       [--rules brainprop,ebp] [--seeds N | --seed-list 1,2,3] [training options]

Runs every (data, model, rule, seed) combination one after another, each in
SWEEP_DIR/<data>-<model>-<rule>-s<seed>/. Run it again after an interruption: finished runs are
skipped, unfinished ones resume from their last checkpoint. Ctrl-C checkpoints the current run.
Training options are those of `brainprop train` (--epochs, --val, --batch, --lr, --threads, ...);
batch size and lr default to each model's own. The reference's protocol is --val test.

A run that fails does not stop the sweep: an error (missing or bad data, ...) or a divergence
(stop_reason nan_loss or nonfinite_weights) is printed, recorded in SWEEP_DIR/sweep.json
("failed": true, with "error" for an error) and the next run starts. Run again, the sweep
retries the runs that failed with an error; a diverged run is a finished result (rerunning it
diverges again) and is skipped, but still listed as failed.
Exit status: 0 every run finished; 1 some runs failed (listed at the end) or the sweep could
not start (bad options, a run directory made with other settings); 130 interrupted (Ctrl-C).
Then: brainprop report SWEEP_DIR
)";

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ','))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

}  // namespace

int run_sweep(const std::vector<std::string>& argv) {
  std::set<std::string> value_options = training_value_options();
  value_options.insert({"data", "models", "rules", "seeds", "seed-list", "out"});
  value_options.erase("seed");
  const Args args(argv, value_options, {"help", "no-progress", "no-graphs", "dry-run"});
  if (args.flag("help")) {
    std::fputs(kSweepHelp, stdout);
    return 0;
  }
  BP_CHECK(args.has("data") && args.has("models") && args.has("out"),
           "sweep needs --data, --models and --out (see --help)");
  const std::string sweep_dir = args.get("out", "");
  BP_CHECK(!sweep_dir.empty(), "--out needs the sweep directory, got \"\"");
  const std::vector<std::string> specs = split(args.get("data", ""));
  std::vector<std::string> names;
  for (const std::string& s : specs) names.push_back(data_short_name(s));
  std::vector<Rule> rules;
  for (const std::string& r : split(args.get("rules", "brainprop,ebp"))) rules.push_back(parse_rule(r));
  std::vector<uint64_t> seeds;
  if (args.has("seed-list")) {
    for (const std::string& s : split(args.get("seed-list", ""))) seeds.push_back(parse_uint64(s, "--seed-list"));
    BP_CHECK(!seeds.empty(), "--seed-list needs at least one seed, got \"" << args.get("seed-list", "") << "\"");
  } else {
    const int n = args.get_int("seeds", 3);
    BP_CHECK(n >= 1, "--seeds must be >= 1");
    for (int s = 1; s <= n; ++s) seeds.push_back(uint64_t(s));
  }

  TrainConfig base;
  base.batch_size = 0;  // 0: each model's own
  base.lr = 0;
  base.eval_batch = 500;
  base.model.training.batch_size = 0;
  base.model.training.lr = 0;
  apply_training_options(args, base);
  const std::vector<SweepRun> runs = sweep_grid(base, specs, names, split(args.get("models", "")),
                                                rules, seeds, sweep_dir);
  std::filesystem::create_directories(sweep_dir);
  // sweep.json's temporary file, when an earlier sweep here was killed while writing it.
  remove_temporary_files(sweep_dir, true);
  std::vector<RunStatus> status;
  for (const SweepRun& r : runs) status.push_back(run_status(r.config));
  std::printf("sweep %s: %zu runs\n", sweep_dir.c_str(), runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    std::printf("  %-48s %s\n", runs[i].name.c_str(), run_status_name(status[i]));
  std::fflush(stdout);
  if (args.flag("dry-run")) return 0;

  install_interrupt_handler();
  std::map<std::string, Dataset> loaded;  // each data set is read once for the whole sweep
  std::map<std::string, std::string> load_errors;  // a data set that failed to load, once
  nlohmann::json record = {{"runs", nlohmann::json::array()}};
  std::vector<std::string> failures;  // "NAME: reason", in run order
  for (size_t i = 0; i < runs.size(); ++i) {
    const SweepRun& r = runs[i];
    const TrainConfig& c = r.config;
    nlohmann::json entry = {{"name", r.name},          {"dir", c.out_dir},
                            {"data", c.data_spec},     {"model", c.model.name},
                            {"rule", rule_name(c.rule)}, {"seed", c.seed},
                            {"val", c.val}};
    std::string outcome = "done (skipped)", stop_reason, error;
    if (status[i] == RunStatus::Done) {
      stop_reason = stored_stop_reason(c.out_dir);
    } else {
      std::printf("[%zu/%zu] %s (%s)\n", i + 1, runs.size(), r.name.c_str(), run_status_name(status[i]));
      std::fflush(stdout);
      // A run that fails (bad or missing data, any error) is recorded and the sweep goes on.
      try {
        auto it = loaded.find(c.data_spec);
        if (it == loaded.end()) {
          const auto bad = load_errors.find(c.data_spec);
          if (bad != load_errors.end()) throw Error(bad->second);
          try {
            it = loaded.emplace(c.data_spec, load_dataset(c.data_spec, DataLimits{c.train_limit, c.test_limit})).first;
          } catch (const std::exception& e) {
            load_errors[c.data_spec] = e.what();
            throw;
          }
        }
        auto backend = make_backend(c.backend, c.threads, c.math);
        const TrainResult result = train(
            c, it->second, *backend,
            [](const std::string& line) {
              std::printf("    %s\n", line.c_str());
              std::fflush(stdout);
            },
            // A run the sweep starts afresh is its own (its config is the sweep's), so leftovers
            // of a run killed before its first checkpoint are replaced.
            status[i] == RunStatus::Resume ? RunStart::Resume : RunStart::Replace);
        outcome = stop_reason = result.summary.stop_reason;
        std::printf("    -> %s: %s\n", outcome.c_str(), summary_figures(result.summary).c_str());
      } catch (const std::exception& e) {
        outcome = "error";
        error = e.what();
        std::printf("    -> error: %s\n", error.c_str());
      }
      std::fflush(stdout);
    }
    entry["outcome"] = outcome;
    if (!stop_reason.empty()) entry["stop_reason"] = stop_reason;
    const bool failed = !error.empty() || diverged(stop_reason);
    entry["failed"] = failed;
    if (!error.empty()) entry["error"] = error;
    if (failed)
      failures.push_back(r.name + ": " + (error.empty() ? stop_reason : "error: " + error) +
                         (status[i] == RunStatus::Done ? " (an earlier sweep's result, not retried)" : ""));
    record["runs"].push_back(entry);
    write_file_atomic(sweep_dir + "/sweep.json", record.dump(2) + "\n");
    if (outcome == "interrupted" || interrupt_requested()) {
      std::printf("sweep interrupted; run the same command again to resume\n");
      return 130;
    }
  }
  if (!failures.empty()) {
    std::printf("sweep finished with %zu failed run%s of %zu:\n", failures.size(),
                failures.size() == 1 ? "" : "s", runs.size());
    for (const std::string& f : failures) std::printf("  %s\n", f.c_str());
    std::printf("then: brainprop report %s\n", sweep_dir.c_str());
    return 1;
  }
  std::printf("sweep finished: brainprop report %s\n", sweep_dir.c_str());
  return 0;
}

}  // namespace bp::cli
