#include "train/child_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace bp {

std::string ChildExit::describe() const {
  if (signal == 0) return "exit status " + std::to_string(code);
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

std::string self_executable() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  BP_CHECK(n > 0, "cannot find this program's executable (/proc/self/exe): " << std::strerror(errno));
  return std::string(path, size_t(n));
}

pid_t spawn_child(const ChildSpec& spec) {
  BP_CHECK(!spec.argv.empty(), "spawn_child: no argv");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& [key, value] : spec.env) replaced |= entry.rfind(key + "=", 0) == 0;
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& [key, value] : spec.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (const std::string& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const int log = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  BP_CHECK(log >= 0, spec.log_path << ": cannot open the run's log: " << std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log);
    BP_FAIL("cannot start " << spec.executable << ": fork: " << std::strerror(err));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(125);  // the sweep died before prctl took effect
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::execve(spec.executable.c_str(), argv.data(), envp.data());
    const char* why = std::strerror(errno);
    (void)!::write(STDERR_FILENO, "brainprop sweep: cannot exec the run: ", 38);
    (void)!::write(STDERR_FILENO, why, std::strlen(why));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(127);
  }
  ::close(log);
  ::setpgid(pid, pid);  // also here, so the group exists whichever runs first
  return pid;
}

namespace {

ChildExit decode(int status) {
  ChildExit e;
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  else e.code = WEXITSTATUS(status);
  return e;
}

}  // namespace

std::optional<ChildExit> poll_child(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  BP_CHECK(r >= 0, "waitpid(" << pid << "): " << std::strerror(errno));
  if (r == 0) return std::nullopt;
  return decode(status);
}

ChildExit wait_child(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  BP_CHECK(r >= 0, "waitpid(" << pid << "): " << std::strerror(errno));
  return decode(status);
}

}  // namespace bp
