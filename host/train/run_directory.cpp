#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "io/atomic_file.h"
#include "train/checkpoint.h"

namespace bp {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLockFile = ".lock";
constexpr const char* kBestNext = "best.next.safetensors";

void remove_or_fail(const fs::path& file) {
  std::error_code ec;
  fs::remove(file, ec);
  BP_CHECK(!ec, file.string() << ": cannot remove: " << ec.message());
}

}  // namespace

const std::vector<std::string>& RunDirectory::run_files() {
  static const std::vector<std::string> files = {"config.json",      "history.jsonl",
                                                 "summary.json",     "last.safetensors",
                                                 "best.safetensors", kBestNext};
  return files;
}

long lock_holder_pid(const std::string& dir) {
  std::string text;
  try {
    text = read_file(dir + "/" + kLockFile);
  } catch (const Error&) {
    return 0;
  }
  return std::strtol(text.c_str(), nullptr, 10);
}

bool run_directory_in_use(const std::string& dir, long* holder_pid) {
  const std::string lock_path = dir + "/" + kLockFile;
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // never locked
  const bool busy = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  if (busy && holder_pid) *holder_pid = lock_holder_pid(dir);
  return busy;
}

RunDirectory::RunDirectory(const std::string& dir, RunStart start) : dir_(dir) {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  BP_CHECK(!ec, dir_ << ": cannot create the run directory: " << ec.message());

  // The lock is the file's flock, not its existence: the kernel drops it when the holder dies,
  // even by kill -9, so a stale .lock never blocks anyone.
  const std::string lock_path = path(kLockFile);
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  BP_CHECK(lock_fd_ >= 0, lock_path << ": cannot open the run directory's lock: " << std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      const long pid = lock_holder_pid(dir_);
      BP_FAIL(dir_ << ": in use by another brainprop process"
                   << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string())
                   << ", which holds " << lock_path << "; wait for it to finish or stop it");
    }
    BP_FAIL(lock_path << ": cannot lock: " << std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
    BP_FAIL(lock_path << ": cannot record this process's pid: " << std::strerror(errno));

  // Holding the lock, every temporary file here is a dead writer's (its PID may be reused).
  remove_temporary_files(dir_, false);

  std::vector<std::string> present;
  for (const std::string& name : run_files())
    if (fs::exists(path(name))) present.push_back(name);
  if (start == RunStart::New && !present.empty()) {
    std::string listing;
    for (const std::string& name : present) listing += (listing.empty() ? "" : ", ") + name;
    const std::string message = dir_ + ": already holds a run (" + listing +
                                "); continue it with `brainprop train --resume " + dir_ +
                                "`, choose a new --out directory, or give --overwrite to replace it";
    ::close(lock_fd_);
    lock_fd_ = -1;
    BP_FAIL(message);
  }
  if (start == RunStart::Replace)
    for (const std::string& name : present) remove_or_fail(path(name));
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing drops the flock
}

void RunDirectory::repair_best(int committed_best_epoch) const {
  const std::string next = path(kBestNext);
  if (!enabled() || !fs::exists(next)) return;
  int next_epoch = -1;
  try {
    next_epoch = read_checkpoint_info(next).epoch;
  } catch (const Error&) {
    next_epoch = -1;  // unreadable: it was never committed, so it goes
  }
  if (next_epoch == committed_best_epoch && committed_best_epoch > 0)
    rename_file_durable(next, path("best.safetensors"));
  else
    remove_or_fail(next);
}

void RunDirectory::finish_commit(bool best_improved, const std::string& history_jsonl) const {
  if (!enabled()) return;
  if (best_improved) rename_file_durable(path(kBestNext), path("best.safetensors"));
  write_file_atomic(path("history.jsonl"), history_jsonl);
}

}  // namespace bp
