#include "cli/sweep_exec.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cli/train_options.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "train/child_process.h"
#include "train/interrupt.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace bp::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The outcomes of an invocation's runs, rewritten after each (atomically), and the failures.
class SweepRecord {
 public:
  explicit SweepRecord(std::string path) : path_(std::move(path)) {}
  void add(const SweepRun& r, const RunState& before, const std::string& outcome,
           const std::string& stop_reason, const std::string& error, const std::string& log = "") {
    const TrainConfig& c = r.config;
    nlohmann::json entry = {{"name", r.name},          {"dir", c.out_dir},
                            {"data", c.data_spec},     {"model", c.model.name},
                            {"rule", rule_name(c.rule)}, {"seed", c.seed},
                            {"val", c.val},            {"outcome", outcome}};
    if (!stop_reason.empty()) entry["stop_reason"] = stop_reason;
    const bool failed = !error.empty() || diverged(stop_reason);
    entry["failed"] = failed;
    if (!error.empty()) entry["error"] = error;
    if (!log.empty()) entry["log"] = log;
    if (failed)
      failures_.push_back(r.name + ": " + (error.empty() ? stop_reason : "error: " + error) +
                          (before.status == RunStatus::Done ? " (an earlier sweep's result, not retried)" : ""));
    record_["runs"].push_back(entry);
    if (!path_.empty()) write_file_atomic(path_, record_.dump(2) + "\n");
  }
  // The closing lines and the exit status.
  int finish(const std::string& sweep_dir, size_t runs) const {
    if (!failures_.empty()) {
      std::printf("sweep finished with %zu failed run%s of %zu:\n", failures_.size(),
                  failures_.size() == 1 ? "" : "s", runs);
      for (const std::string& f : failures_) std::printf("  %s\n", f.c_str());
      std::printf("then: brainprop report %s\n", sweep_dir.c_str());
      return 1;
    }
    std::printf("sweep finished: brainprop report %s\n", sweep_dir.c_str());
    return 0;
  }

 private:
  std::string path_;
  nlohmann::json record_ = {{"runs", nlohmann::json::array()}};
  std::vector<std::string> failures_;
};

// Epochs done and their seconds, from a run's history.jsonl (what the ETA is made of).
void add_history_times(const std::string& run_dir, int64_t* epochs, double* seconds) {
  std::ifstream in(run_dir + "/history.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      *seconds += j.value("seconds", 0.0);
      ++*epochs;
    } catch (const nlohmann::json::exception&) {
    }
  }
}

// The sweep-level progress of `sweep`'s runs, `finished[i]` telling which are over.
SweepProgress measure_progress(const SweepInvocation& sweep, const std::vector<bool>& finished,
                               int running) {
  SweepProgress p;
  p.runs_total = int(sweep.runs.size());
  p.runs_running = running;
  int unfinished = 0;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    int64_t epochs = 0;
    double seconds = 0;
    add_history_times(sweep.runs[i].config.out_dir, &epochs, &seconds);
    p.epochs_timed += epochs;
    p.epoch_seconds += seconds;
    if (finished[i]) {
      ++p.runs_done;
    } else {
      ++unfinished;
      p.epochs_remaining += std::max<int64_t>(0, sweep.runs[i].config.max_epochs - epochs);
    }
  }
  p.concurrency = std::max(1, std::min(sweep.placement.jobs, unfinished));
  return p;
}

// The last "-> error: MSG" (or "error: MSG") line of a child's log: the reason a run failed.
std::string error_in_log(const std::string& log) {
  std::ifstream in(log);
  std::string line, found;
  while (std::getline(in, line)) {
    const size_t at = line.find("error: ");
    if (at != std::string::npos) found = line.substr(at + 7);
  }
  return found;
}

// What CUDA_VISIBLE_DEVICES a child placed on `gpu` gets: --gpus numbers the devices this process
// sees, so under a scheduler that set CUDA_VISIBLE_DEVICES=3,5 (Slurm does), --gpus 1 is device 5.
std::string visible_device(int gpu) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!visible || !*visible) return std::to_string(gpu);
  std::vector<std::string> ids;
  std::stringstream in(visible);
  for (std::string id; std::getline(in, id, ',');) ids.push_back(id);
  BP_CHECK(gpu < int(ids.size()), "--gpus " << gpu << ": this process sees only " << ids.size()
                                            << " GPUs (CUDA_VISIBLE_DEVICES=" << visible << ")");
  return ids[size_t(gpu)];
}

}  // namespace

int execute_in_process(const SweepInvocation& sweep) {
  install_interrupt_handler();
  std::map<std::string, Dataset> loaded;           // each data set is read once for the whole sweep
  std::map<std::string, std::string> load_errors;  // a data set that failed to load, once
  SweepRecord record(sweep.record_path);
  std::vector<bool> finished(sweep.runs.size(), false);
  int exit_of_one = 0;  // for a --run-one child
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    const SweepRun& r = sweep.runs[i];
    const TrainConfig& c = r.config;
    std::string outcome = "done (skipped)", stop_reason, error;
    if (sweep.states[i].status == RunStatus::Done) {
      stop_reason = stored_stop_reason(c.out_dir);
    } else {
      std::printf("[%zu/%zu] %s (%s)\n", i + 1, sweep.runs.size(), r.name.c_str(),
                  run_status_name(sweep.states[i].status));
      std::fflush(stdout);
      // A run that fails (bad or missing data, any error) is recorded and the sweep goes on.
      try {
        // Locked before its data is read: a run another process works on fails at once.
        const RunStart start = sweep.states[i].status == RunStatus::Resume ? RunStart::Resume : RunStart::Replace;
        const RunDirectory run(c.out_dir, start);
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
            run, start);
        outcome = stop_reason = result.summary.stop_reason;
        std::printf("    -> %s: %s\n", outcome.c_str(), summary_figures(result.summary).c_str());
        if (diverged(stop_reason)) exit_of_one = 3;
      } catch (const std::exception& e) {
        outcome = "error";
        error = e.what();
        exit_of_one = 1;
        std::printf("    -> error: %s\n", error.c_str());
      }
      std::fflush(stdout);
    }
    finished[i] = outcome != "interrupted";
    record.add(r, sweep.states[i], outcome, stop_reason, error);
    if (outcome == "interrupted" || interrupt_requested()) {
      std::printf("sweep interrupted; run the same command again to resume\n");
      return 130;
    }
    if (sweep.runs.size() > 1)
      std::printf("%s\n", sweep_progress_line(measure_progress(sweep, finished, 0)).c_str());
  }
  if (sweep.record_path.empty()) return exit_of_one;  // a --run-one child: its run's status
  return record.finish(sweep.sweep_dir, sweep.runs.size());
}

int execute_in_children(const SweepInvocation& sweep) {
  install_interrupt_handler();
  const std::string exe = self_executable();
  const std::string log_dir = sweep.sweep_dir + "/logs";
  std::filesystem::create_directories(log_dir);
  const Placement& place = sweep.placement;
  const size_t queues = std::max<size_t>(1, place.gpus.size());
  // One queue of runs per GPU (or one for the CPU); k counts the runs to do, for round-robin.
  std::vector<std::deque<size_t>> queue(queues);
  SweepRecord record(sweep.record_path);
  std::vector<bool> finished(sweep.runs.size(), false);
  size_t k = 0;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    const RunState& s = sweep.states[i];
    if (s.status == RunStatus::Done) {
      finished[i] = true;
      record.add(sweep.runs[i], s, "done (skipped)", stored_stop_reason(sweep.runs[i].config.out_dir), "");
      continue;
    }
    queue[k++ % queues].push_back(i);
  }
  struct Job {
    pid_t pid;
    size_t run;
    size_t queue;
    Clock::time_point start;
    std::string log;
  };
  std::vector<Job> running;
  std::vector<int> busy(queues, 0);
  bool forwarded = false;
  size_t started = 0;
  const size_t to_do = k;
  const bool bar = sweep.progress && stderr_is_terminal();
  auto last_bar = Clock::now() - std::chrono::seconds(10);
  std::printf("running %zu run%s, %d at once%s; logs in %s/\n", to_do, to_do == 1 ? "" : "s", place.jobs,
              place.gpus.empty() ? "" : (" on GPUs " + [&] {
                std::string g;
                for (size_t q = 0; q < place.gpus.size(); ++q)
                  g += (q ? "," : "") + std::to_string(place.gpus[q]) + "x" + std::to_string(place.slots[q]);
                return g;
              }()).c_str(), log_dir.c_str());
  std::fflush(stdout);

  for (;;) {
    if (interrupt_requested() && !forwarded) {
      // One SIGTERM each: every child checkpoints at its next batch boundary and exits.
      for (const Job& j : running) ::kill(j.pid, SIGTERM);
      forwarded = true;
      if (bar) std::fputc('\n', stderr);
      std::printf("interrupted: waiting for %zu run%s to checkpoint\n", running.size(),
                  running.size() == 1 ? "" : "s");
      std::fflush(stdout);
    }
    for (size_t q = 0; q < queues && !forwarded; ++q) {
      const int slots = place.gpus.empty() ? place.jobs : place.slots[q];
      while (busy[q] < slots && !queue[q].empty()) {
        const size_t i = queue[q].front();
        queue[q].pop_front();
        const SweepRun& r = sweep.runs[i];
        ChildSpec spec;
        spec.executable = exe;
        spec.argv = {"brainprop", "sweep"};
        spec.argv.insert(spec.argv.end(), sweep.child_args.begin(), sweep.child_args.end());
        spec.argv.insert(spec.argv.end(), {"--run-one", r.name, "--no-progress"});
        if (!place.gpus.empty()) spec.env.push_back({"CUDA_VISIBLE_DEVICES", visible_device(place.gpus[q])});
        spec.log_path = log_dir + "/" + r.name + ".log";
        Job j{spawn_child(spec), i, q, Clock::now(), spec.log_path};
        ++started;
        if (!bar) {
          std::printf("[start %zu/%zu] %s (%s)%s\n", started, to_do, r.name.c_str(),
                      run_status_name(sweep.states[i].status),
                      place.gpus.empty() ? "" : (" on GPU " + std::to_string(place.gpus[q])).c_str());
          std::fflush(stdout);
        }
        running.push_back(j);
        ++busy[q];
      }
    }
    if (running.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (size_t n = 0; n < running.size();) {
      const auto ended = poll_child(running[n].pid);
      if (!ended) {
        ++n;
        continue;
      }
      const Job j = running[n];
      running.erase(running.begin() + long(n));
      --busy[j.queue];
      const SweepRun& r = sweep.runs[j.run];
      std::string stop_reason = stored_stop_reason(r.config.out_dir), error, outcome;
      if (ended->signal == 0 && (ended->code == 0 || ended->code == 3)) {
        outcome = stop_reason;
      } else if (ended->signal == 0 && ended->code == 130) {
        outcome = "interrupted";
      } else {
        outcome = "error";
        error = error_in_log(j.log);
        if (ended->signal != 0 || error.empty())
          error = "the run's process ended with " + ended->describe() + (error.empty() ? "" : ": " + error);
      }
      finished[j.run] = outcome != "interrupted";
      record.add(r, sweep.states[j.run], outcome, outcome == "error" ? "" : stop_reason, error, j.log);
      const double secs = std::chrono::duration<double>(Clock::now() - j.start).count();
      if (bar) std::fputs("\r\033[K", stderr);
      std::string figures;
      try {
        const auto summary = nlohmann::json::parse(read_file(r.config.out_dir + "/summary.json"));
        auto fig = [&](const char* key) {
          const auto it = summary.find(key);
          char text[32] = "n/a";
          if (it != summary.end() && it->is_number()) std::snprintf(text, sizeof text, "%.4f", it->get<double>());
          return std::string(text);
        };
        figures = ": best val_acc " + fig("best_val_accuracy") + ", test_acc " + fig("test_accuracy");
      } catch (const std::exception&) {
      }
      std::printf("[done] %s -> %s%s (%s, %s)\n", r.name.c_str(), outcome.c_str(),
                  outcome == "error" ? (": " + error).c_str() : figures.c_str(), format_duration(secs).c_str(),
                  j.log.c_str());
      if (!bar) std::printf("%s\n", sweep_progress_line(measure_progress(sweep, finished, int(running.size()))).c_str());
      std::fflush(stdout);
    }
    if (bar && Clock::now() - last_bar > std::chrono::seconds(1)) {
      last_bar = Clock::now();
      std::fprintf(stderr, "\r\033[K%s", sweep_progress_line(measure_progress(sweep, finished, int(running.size()))).c_str());
      std::fflush(stderr);
    }
  }
  if (bar) std::fputs("\r\033[K", stderr);
  if (forwarded || interrupt_requested()) {
    std::printf("sweep interrupted; run the same command again to resume\n");
    return 130;
  }
  return record.finish(sweep.sweep_dir, sweep.runs.size());
}

}  // namespace bp::cli
