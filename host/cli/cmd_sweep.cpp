// `brainprop sweep`: a data x model x rule x seed grid of runs, each in its own run directory:
// one after another, or --jobs N at once as child processes placed on --gpus; --shard K/N
// runs a deterministic part of the grid (a batch scheduler's job array); --plan shows the
// grid and each run's state without running anything; `sweep status DIR` shows a sweep in
// progress. Started again, a sweep skips finished runs and resumes unfinished ones.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/sweep_exec.h"
#include "cli/train_options.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "train/child_process.h"
#include "train/memory_estimate.h"
#include "train/sweep.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

const char* kSweepHelp = R"(usage: brainprop sweep --data SPEC[,SPEC...] --models NAME[,NAME...] --out SWEEP_DIR
                       [--rules brainprop,ebp[,reinforce]] [--seeds N | --seed-list 1,2,3]
                       [--jobs N] [--gpus 0,1,...] [--shard K/N] [--plan [--json]]
                       [training options]
       brainprop sweep status SWEEP_DIR [--json]

Runs every (data, model, rule, seed) combination, each in SWEEP_DIR/<data>-<model>-<rule>-s<seed>/.
Run it again after an interruption: finished runs are skipped, unfinished ones resume from
their last checkpoint. Training options are those of `brainprop train` (--epochs, --val,
--batch, --lr, --feedback, --threads, ...); batch size, lr and feedback default to each model's
own. The reference's protocol is --val test.

  --jobs N       N runs at once, each its own process (a crash takes no other run down), its
                 output in SWEEP_DIR/logs/<run>.log; --threads stays per run. Default 1: one
                 run after another in this process. A run's history does not depend on --jobs.
  --gpus 0,1     place the runs on these GPUs round-robin (each child sees only its GPU, as
                 CUDA_VISIBLE_DEVICES); --jobs above the GPU count puts several runs on a GPU.
                 The numbers index the GPUs this process sees (under Slurm, its allocation).
                 Before any run starts, each GPU's concurrent runs are checked against its free
                 memory (the estimate `brainprop inspect --memory` prints); a placement that
                 cannot fit is refused with the numbers.
  --shard K/N    only the K-th of N parts of the grid (run i of the grid is in part i mod N + 1):
                 one sweep over many machines through a batch scheduler (docs/experiments.md has
                 the `sbatch --array` script). Shards may share SWEEP_DIR (each run is locked
                 while it trains) or use their own; `brainprop report DIR1 DIR2 ...` merges them.
  --plan         print the grid with each run's state (done, failed, partial, running, not
                 started) and where it would run, and run nothing; --json for a JSON document.
  status DIR     the same for the sweep in DIR (as recorded there by its last start).

Progress: a line per started and finished run and a sweep-level bar (runs done of total, and an
ETA from the epoch times seen so far: an upper bound, as early stopping may end runs sooner).
Ctrl-C checkpoints every running run and exits once all have (status 130).

A run that fails does not stop the sweep: an error (missing or bad data, a crash of its process,
...) or a divergence (stop_reason nan_loss or nonfinite_weights) is printed, recorded in
SWEEP_DIR/sweep.json (sweep.shard-K-of-N.json for a shard; "failed": true, with "error" for an
error) and the next run starts. Run again, the sweep retries the runs that failed with an error;
a diverged run is a finished result (rerunning it diverges again) and is skipped, but still
listed as failed.
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

// Options that say how and where a sweep runs, not what its grid is: left out of the definition
// recorded for `sweep status`, and of a child's arguments where the child gets its own.
const std::set<std::string>& execution_value_options() {
  static const std::set<std::string> names = {"jobs", "gpus", "shard", "run-one", "out"};
  return names;
}
const std::set<std::string>& execution_flags() {
  static const std::set<std::string> names = {"plan", "json", "dry-run", "no-progress", "check-gpu-memory"};
  return names;
}

// argv without the options in `values` (with their values) and the flags in `flags`.
std::vector<std::string> without_options(const std::vector<std::string>& argv,
                                         const std::set<std::string>& values,
                                         const std::set<std::string>& flags) {
  std::vector<std::string> kept;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (flags.count(name)) continue;
      if (values.count(name)) {
        if (eq == std::string::npos) ++i;  // its value is the next argument
        continue;
      }
    }
    kept.push_back(a);
  }
  return kept;
}

constexpr const char* kPlanFile = "sweep-plan.json";

// The grid's definition, recorded in SWEEP_DIR/sweep-plan.json for `sweep status`. A directory
// holding another grid's record is refused: the runs of two grids would mix in one report.
void record_definition(const std::string& sweep_dir, const std::vector<std::string>& definition,
                       const std::vector<SweepRun>& grid) {
  nlohmann::json names = nlohmann::json::array();
  for (const SweepRun& r : grid) names.push_back(r.name);
  const std::string path = sweep_dir + "/" + kPlanFile;
  if (std::filesystem::exists(path)) {
    nlohmann::json stored;
    try {
      stored = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      BP_FAIL(path << ": not valid JSON: " << e.what());
    }
    BP_CHECK(stored.value("runs", nlohmann::json::array()) == names,
             path << ": this directory holds another sweep's grid (" << stored.value("runs", nlohmann::json::array()).size()
                  << " runs, made by `brainprop sweep " << [&] {
                       std::string text;
                       for (const auto& a : stored.value("definition", nlohmann::json::array()))
                         text += (text.empty() ? "" : " ") + a.get<std::string>();
                       return text;
                     }() << "`); use another --out");
  }
  write_file_atomic(path, nlohmann::json({{"definition", definition}, {"runs", names}}).dump(2) + "\n");
}

// Where a run would go, for the plan.
std::string device_of(const Placement& place, size_t k, const TrainConfig& c) {
  if (!place.gpus.empty()) return "gpu " + std::to_string(place.gpu_of(k));
  return c.backend == "auto" ? "auto" : c.backend;
}

int print_plan(const std::vector<SweepRun>& runs, const std::vector<RunState>& states,
               const Placement& place, const std::string& shard, const std::string& sweep_dir, bool json) {
  std::map<std::string, int> counts;
  size_t k = 0;
  nlohmann::json doc = {{"sweep_dir", sweep_dir}, {"shard", shard}, {"jobs", place.jobs},
                        {"gpus", place.gpus}, {"runs", nlohmann::json::array()}};
  std::vector<std::string> where(runs.size(), "-");
  for (size_t i = 0; i < runs.size(); ++i) {
    ++counts[states[i].state];
    if (states[i].status != RunStatus::Done && states[i].state != "running") where[i] = device_of(place, k++, runs[i].config);
    if (json) {
      doc["runs"].push_back({{"name", runs[i].name}, {"dir", runs[i].config.out_dir},
                             {"state", states[i].state}, {"epochs_done", states[i].epochs_done},
                             {"max_epochs", runs[i].config.max_epochs}, {"detail", states[i].detail},
                             {"device", where[i]}});
      if (states[i].running_pid) doc["runs"].back()["pid"] = states[i].running_pid;
    }
  }
  if (json) {
    doc["counts"] = counts;
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("sweep %s%s: %zu runs, %d at once%s\n", sweep_dir.c_str(),
              shard.empty() ? "" : (" shard " + shard).c_str(), runs.size(), place.jobs,
              place.gpus.empty() ? "" : (" on " + std::to_string(place.gpus.size()) + " GPUs").c_str());
  std::printf("  %-48s %-26s %-28s %s\n", "run", "state", "detail", "device");
  for (size_t i = 0; i < runs.size(); ++i)
    std::printf("  %-48s %-26s %-28s %s\n", runs[i].name.c_str(), states[i].state.c_str(),
                states[i].detail.c_str(), where[i].c_str());
  std::string summary;
  for (const auto& [state, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + state;
  std::printf("%s\n", summary.c_str());
  return 0;
}

// The runs placed on each GPU at once must fit its free memory: each GPU's `slots` largest
// estimates (memory_estimate.h) against what cuda_devices() reports free. Returns one line per
// GPU; throws bp::Error with the numbers when a placement cannot fit.
std::string check_gpu_memory(const SweepInvocation& sweep) {
  std::map<std::string, Dataset> loaded;
  std::map<int, std::vector<PlacedRun>> by_gpu;
  size_t k = 0;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    if (sweep.states[i].status == RunStatus::Done) continue;
    const TrainConfig& c = sweep.runs[i].config;
    auto it = loaded.find(c.data_spec);
    if (it == loaded.end())
      it = loaded.emplace(c.data_spec, load_dataset(c.data_spec, DataLimits{c.train_limit, c.test_limit})).first;
    const int gpu = sweep.placement.gpu_of(k);
    by_gpu[gpu].push_back(PlacedRun{sweep.runs[i].name, gpu, estimate_run_memory(c, it->second)});
    ++k;
  }
  std::string why;
  const std::vector<GpuInfo> gpus = cuda_devices(&why);
  BP_CHECK(!gpus.empty(), "--gpus: no usable CUDA device here (" << why << ")");
  std::vector<PlacedRun> at_once;
  std::string lines;
  for (auto& [gpu_id, runs] : by_gpu) {
    const int gpu = gpu_id;  // (a lambda below cannot capture a structured binding in C++17)
    std::sort(runs.begin(), runs.end(), [](const PlacedRun& a, const PlacedRun& b) {
      return a.estimate.total() > b.estimate.total();
    });
    size_t q = 0;
    while (sweep.placement.gpus[q] != gpu) ++q;
    const size_t slots = std::min(runs.size(), size_t(sweep.placement.slots[q]));
    uint64_t need = 0;
    for (size_t r = 0; r < slots; ++r) {
      at_once.push_back(runs[r]);
      need += runs[r].estimate.total();
    }
    const auto info = std::find_if(gpus.begin(), gpus.end(), [&](const GpuInfo& g) { return g.index == gpu; });
    lines += "memory: GPU " + std::to_string(gpu) + ": " + std::to_string(slots) + " runs at once need at most " +
             format_bytes(need) + (info != gpus.end() ? " of " + format_bytes(info->free_bytes) + " free" : "") +
             " (largest: " + runs[0].name + " " + format_bytes(runs[0].estimate.total()) + ")\n";
  }
  check_gpu_placement(at_once, gpus);
  return lines;
}

int run_sweep_status(const std::vector<std::string>& argv) {
  const Args args(argv, {}, {"help", "json"});
  BP_CHECK(args.positionals().size() == 1, "usage: brainprop sweep status SWEEP_DIR [--json]");
  const std::string dir = args.positionals()[0];
  const std::string path = dir + "/" + kPlanFile;
  BP_CHECK(std::filesystem::exists(path), path << ": no such file (is " << dir
                                               << " a sweep directory? `sweep` records its grid there when it starts)");
  nlohmann::json stored;
  try {
    stored = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(path << ": not valid JSON: " << e.what());
  }
  std::vector<std::string> again = stored.at("definition").get<std::vector<std::string>>();
  again.insert(again.end(), {"--out", dir, "--plan"});
  if (args.flag("json")) again.push_back("--json");
  return run_sweep(again);
}

}  // namespace

int run_sweep(const std::vector<std::string>& argv) {
  if (!argv.empty() && argv[0] == "status") return run_sweep_status({argv.begin() + 1, argv.end()});
  std::set<std::string> value_options = training_value_options();
  value_options.insert({"data", "models", "rules", "seeds", "seed-list", "out", "jobs", "gpus", "shard", "run-one"});
  value_options.erase("seed");
  const Args args(argv, value_options, {"help", "no-progress", "no-graphs", "dry-run", "plan", "json", "check-gpu-memory"});
  if (args.flag("help")) {
    std::fputs(kSweepHelp, stdout);
    return 0;
  }
  BP_CHECK(args.has("data") && args.has("models") && args.has("out"),
           "sweep needs --data, --models and --out (see --help)");
  BP_CHECK(args.positionals().empty(), "sweep takes options only (see --help); got \"" << args.positionals()[0] << "\"");
  const std::string sweep_dir = args.get("out", "");
  BP_CHECK(!sweep_dir.empty(), "--out needs the sweep directory, got \"\"");
  BP_CHECK(!args.flag("json") || args.flag("plan"), "--json goes with --plan (or `sweep status DIR --json`)");
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
  std::vector<int> gpus;
  if (args.has("gpus")) {
    for (const std::string& g : split(args.get("gpus", ""))) gpus.push_back(int(parse_uint64(g, "--gpus")));
    BP_CHECK(!gpus.empty(), "--gpus needs device numbers, e.g. --gpus 0,1");
  }
  const int jobs = args.get_int("jobs", gpus.empty() ? 1 : int(gpus.size()));
  const Placement placement = make_placement(jobs, gpus);
  const bool sharded = args.has("shard");
  const Shard shard = sharded ? parse_shard(args.get("shard", "")) : Shard{};

  TrainConfig base;
  base.batch_size = 0;  // 0: each model's own
  base.lr = 0;
  base.eval_batch = 500;
  base.model.training.batch_size = 0;
  base.model.training.lr = 0;
  apply_training_options(args, base);
  std::vector<SweepRun> grid = sweep_grid(base, specs, names, split(args.get("models", "")),
                                          rules, seeds, sweep_dir);
  // --feedback/--feedback-decay override each model's own "feedback" keys.
  for (SweepRun& run : grid) {
    if (args.has("feedback")) run.config.model.feedback = base.model.feedback;
    if (args.has("feedback-decay")) run.config.model.feedback_decay = base.model.feedback_decay;
    BP_CHECK(run.config.model.feedback_decay == 0 || run.config.model.feedback == Feedback::Learned,
             "--feedback-decay goes with --feedback learned (model " << run.config.model.name
                                                                    << " has feedback "
                                                                    << feedback_name(run.config.model.feedback) << ")");
  }
  SweepInvocation sweep;
  sweep.sweep_dir = sweep_dir;
  sweep.placement = placement;
  sweep.progress = !args.flag("no-progress");
  const std::string only = args.get("run-one", "");
  for (size_t i = 0; i < grid.size(); ++i)
    if (only.empty() ? in_shard(i, shard) : grid[i].name == only) sweep.runs.push_back(grid[i]);
  BP_CHECK(only.empty() || !sweep.runs.empty(), "--run-one " << only << ": no such run in the grid");
  for (const SweepRun& r : sweep.runs) sweep.states.push_back(describe_run(r.config));
  if (args.flag("plan")) return print_plan(sweep.runs, sweep.states, placement, sharded ? shard.text() : "", sweep_dir, args.flag("json"));

  std::filesystem::create_directories(sweep_dir);
  // sweep.json's temporary file, when an earlier sweep here was killed while writing it.
  remove_temporary_files(sweep_dir, true);
  if (args.flag("check-gpu-memory")) {  // a child of a --gpus sweep, before any run starts
    std::fputs(check_gpu_memory(sweep).c_str(), stdout);
    return 0;
  }
  if (!only.empty()) return execute_in_process(sweep);  // a child of a --jobs sweep: no record

  record_definition(sweep_dir, without_options(argv, execution_value_options(), execution_flags()), grid);
  sweep.record_path = sweep_dir + (sharded ? "/sweep.shard-" + std::to_string(shard.index) + "-of-" +
                                                 std::to_string(shard.count) + ".json"
                                           : "/sweep.json");
  std::printf("sweep %s%s: %zu runs\n", sweep_dir.c_str(), sharded ? (" shard " + shard.text()).c_str() : "",
              sweep.runs.size());
  for (size_t i = 0; i < sweep.runs.size(); ++i)
    std::printf("  %-48s %s\n", sweep.runs[i].name.c_str(), sweep.states[i].state.c_str());
  std::fflush(stdout);
  if (args.flag("dry-run")) return 0;
  // Runs some other process holds are left to it.
  for (size_t i = 0; i < sweep.runs.size(); ++i)
    BP_CHECK(sweep.states[i].state != "running",
             sweep.runs[i].config.out_dir << ": in use by another brainprop process (pid "
                                          << sweep.states[i].running_pid
                                          << "); is this sweep (or shard) already running?");
  sweep.child_args = without_options(argv, {"jobs", "gpus", "shard", "run-one"},
                                     {"plan", "json", "dry-run", "no-progress", "check-gpu-memory"});
  if (placement.jobs == 1 && placement.gpus.empty()) return execute_in_process(sweep);
  if (!placement.gpus.empty()) {
    // Checked in a child process: asking CUDA for free memory makes a context on every device,
    // which would stay in this process (~0.5 GiB per GPU) for the whole sweep.
    ChildSpec check;
    check.executable = self_executable();
    check.argv = {"brainprop", "sweep"};
    check.argv.insert(check.argv.end(), sweep.child_args.begin(), sweep.child_args.end());
    check.argv.insert(check.argv.end(), {"--jobs", std::to_string(placement.jobs), "--gpus", args.get("gpus", ""),
                                         "--check-gpu-memory"});
    if (sharded) check.argv.insert(check.argv.end(), {"--shard", shard.text()});
    std::filesystem::create_directories(sweep_dir + "/logs");
    check.log_path = sweep_dir + "/logs/gpu-memory-check.log";
    std::filesystem::remove(check.log_path);
    const ChildExit ended = wait_child(spawn_child(check));
    const std::string said = read_file(check.log_path);
    if (ended.signal != 0 || ended.code != 0) {
      const size_t at = said.rfind("error: ");
      BP_FAIL("checking the GPUs' memory before the sweep: "
              << (at == std::string::npos ? "the check ended with " + ended.describe() : said.substr(at + 7)));
    }
    std::fputs(said.c_str(), stdout);
  }
  return execute_in_children(sweep);
}

}  // namespace bp::cli
