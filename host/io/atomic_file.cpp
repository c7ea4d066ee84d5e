#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <cstring>

#include "core/error.h"

namespace bp {
namespace {

// The directory that holds `path`: the one whose entry the rename changes.
std::string parent_directory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// write(2) may write less than asked or be interrupted; loop until all is written.
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Writes and syncs the temporary file; returns 0 or the errno of the first failure.
int write_temporary(const std::string& tmp, std::string_view bytes) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = 0;
  if (!write_all(fd, bytes) || ::fsync(fd) != 0) err = errno;
  // close can report a deferred write error (e.g. on NFS), so it counts too.
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

// Makes the rename durable; returns 0 or the errno of the failure.
int sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = 0;
  // Some filesystems cannot fsync a directory; the data itself is already synced there.
  if (::fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) err = errno;
  ::close(fd);
  return err;
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int err = write_temporary(tmp, bytes);
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    BP_FAIL("cannot write " << path << " (via " << tmp << "): " << std::strerror(err));
  }
  err = sync_directory(parent_directory(path));
  BP_CHECK(err == 0, "wrote " << path << " but cannot sync its directory: " << std::strerror(err));
}

namespace {

// The PID of NAME.tmp.PID, or -1 for any other name.
long temporary_file_writer(const std::string& name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string::npos || at + 5 == name.size() || name.size() - at > 5 + 9) return -1;
  long pid = 0;
  for (size_t i = at + 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

}  // namespace

int remove_temporary_files(const std::string& dir, bool only_dead_writers) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const long pid = temporary_file_writer(entry.path().filename().string());
    if (pid < 0 || !entry.is_regular_file()) continue;
    if (only_dead_writers && (::kill(pid_t(pid), 0) == 0 || errno != ESRCH)) continue;
    std::error_code rm;
    fs::remove(entry.path(), rm);
    BP_CHECK(!rm, entry.path().string() << ": cannot remove this leftover temporary file: " << rm.message());
    ++removed;
  }
  BP_CHECK(!ec, dir << ": cannot list: " << ec.message());
  return removed;
}

void rename_file_durable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    BP_FAIL("cannot rename " << from << " to " << to << ": " << std::strerror(errno));
  const int err = sync_directory(parent_directory(to));
  BP_CHECK(err == 0, "renamed " << from << " to " << to << " but cannot sync the directory: "
                                << std::strerror(err));
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) BP_FAIL("cannot open " << path << ": " << std::strerror(errno));
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      BP_FAIL("cannot read " << path << ": " << std::strerror(err));
    }
    out.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace bp
