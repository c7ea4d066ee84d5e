// What every fuzz target shares: a private scratch directory for readers that take paths, a
// quiet single-threaded environment, and the rule for outcomes: a bp::Error is the reader
// refusing bad input (correct); any other exception is a bug and aborts, so libFuzzer keeps
// the input. Crashes and sanitizer reports abort on their own.
#pragma once
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"

namespace bp_fuzz {

namespace fs = std::filesystem;

// One directory per process (parallel fuzzers do not share files), removed at exit (not after
// a crash). Under $TMPDIR when set (scripts/test-fuzz.sh points it into its own scratch
// folder), else /dev/shm when writable (the readers' files then never touch a disk), else /tmp.
inline const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes the directory still needs the name.
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/dev/shm";
    if (::access(base.c_str(), W_OK) != 0) base = "/tmp";
    std::string pattern = base + "/brainprop-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("brainprop fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch_dir(), ec);
    });
    return new std::string(pattern);
  }();
  return *dir;
}

// Replaces `path` with `bytes` (creating its directory); aborts on failure, which would be a
// problem of the harness, not of the reader.
inline void write_file(const std::string& path, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(("brainprop fuzz: cannot write " + path).c_str());
    std::abort();
  }
}

// One OpenMP thread (reproducible runs, readable reports) and no decoded-image cache in the
// user's home.
inline void quiet_environment() {
  ::setenv("OMP_NUM_THREADS", "1", 1);
  ::unsetenv("BRAINPROP_CACHE_DIR");
  ::unsetenv("XDG_CACHE_HOME");
  ::unsetenv("HOME");
}

// Runs `body`; a bp::Error is a correct refusal, anything else aborts naming it.
template <class Body>
void expect_success_or_error(Body&& body) {
  try {
    body();
  } catch (const bp::Error&) {
    // the reader refused the input: the correct outcome for bad data
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brainprop fuzz: BUG: exception other than bp::Error: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "brainprop fuzz: BUG: non-standard exception\n");
    std::abort();
  }
}

// Runs `body`, which must not throw at all (e.g. reading back what was just written).
template <class Body>
void must_succeed(const char* what, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brainprop fuzz: BUG: %s: %s\n", what, e.what());
    std::abort();
  }
}

// A property the reader must keep (e.g. a round trip); aborts with `what` when it does not.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "brainprop fuzz: BUG: %s\n", what);
    std::abort();
  }
}

// Input split in two at a 2-byte little-endian length prefix: [n][n bytes: first][rest: second]
// (n clamped to what is there), for targets that need two files.
struct TwoParts {
  std::string_view first, second;
};
inline TwoParts split_two(const uint8_t* data, size_t size) {
  if (size < 2) return {{}, {reinterpret_cast<const char*>(data), size}};
  size_t n = size_t(data[0]) | size_t(data[1]) << 8;
  const char* rest = reinterpret_cast<const char*>(data) + 2;
  n = std::min(n, size - 2);
  return {{rest, n}, {rest + n, size - 2 - n}};
}

}  // namespace bp_fuzz
