// A run directory (--out): owned by one process at a time, and changed at one commit point
// per epoch, so a process killed at any instant leaves a run that `--resume` finishes exactly.
//
// Files: config.json (written once at the start), last.safetensors (weights + trainer state +
// the history so far: THE commit point), best.safetensors, history.jsonl and summary.json
// (all derived from what last.safetensors committed), and .lock (flock, names the holder).
// An epoch ends with
//   1. best.next.safetensors, when the epoch improved on the best (atomic write);
//   2. last.safetensors (atomic rename)  <- the epoch is committed here;
//   3. best.next.safetensors renamed to best.safetensors, history.jsonl rewritten.
// Opening the directory (any start) repairs an interrupted step 3: a best.next file whose
// epoch last.safetensors names as the best is renamed into place (roll forward), any other
// is removed (roll back), and history.jsonl is rewritten from last.safetensors on resume.
// Temporary files (NAME.tmp.PID) of a killed writer are removed: holding the lock, nobody
// else can be writing them.
#pragma once
#include <string>
#include <vector>

namespace bp {

// How train() starts in a run directory.
enum class RunStart {
  New,      // the directory must not hold a run yet (an empty or absent directory is fine)
  Replace,  // any run files there are removed first (`train --overwrite`, a sweep restarting a run)
  Resume,   // continue the run there from its last.safetensors
};

class RunDirectory {
 public:
  // A disabled directory (dir == ""): every write is a no-op.
  RunDirectory() = default;
  // Creates `dir`, takes its lock (failing at once, naming the holder's pid, if another process
  // has it), removes stale temporary files, and applies `start`: refuses an existing run for
  // New (with the hint to --resume or pick another directory), clears it for Replace.
  RunDirectory(const std::string& dir, RunStart start);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Step 3 of the commit, after last.safetensors is written: best.next -> best, and history.jsonl.
  // `history_jsonl` is the text committed in last.safetensors.
  void finish_commit(bool best_improved, const std::string& history_jsonl) const;
  // Rolls an interrupted step 3 forward or back (see above), given the best epoch the committed
  // last.safetensors names (0: none).
  void repair_best(int committed_best_epoch) const;

  // The files that make a run, in the order a listing shows them.
  static const std::vector<std::string>& run_files();

 private:
  std::string dir_;
  int lock_fd_ = -1;
};

// The pid written in `dir`/.lock, or 0 when there is none; for messages.
long lock_holder_pid(const std::string& dir);

// Whether another process holds `dir`'s lock now (a run in progress), with its pid. Takes and
// drops the lock to find out, so it must not be called by the holder itself.
bool run_directory_in_use(const std::string& dir, long* holder_pid = nullptr);

}  // namespace bp
