// Small helpers shared by the test files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace bp::test {

// Expects body() to throw bp::Error whose message contains every one of `needles`.
inline void expect_error_all(const std::function<void()>& body, const std::vector<std::string>& needles) {
  try {
    body();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos)
          << "message \"" << what << "\" lacks \"" << needle << "\"";
    return;
  }
  std::string wanted;
  for (const std::string& needle : needles) wanted += (wanted.empty() ? "\"" : ", \"") + needle + "\"";
  ADD_FAILURE() << "expected a bp::Error containing " << wanted;
}

// Expects body() to throw bp::Error whose message contains `needle`.
inline void expect_error(const std::function<void()>& body, const std::string& needle) {
  expect_error_all(body, {needle});
}

// A fresh, empty directory under the system temp dir (named prefix_PID_N), removed with
// everything in it when the object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "bp_test") {
    static std::atomic<unsigned> counter{0};
    const std::filesystem::path base = std::filesystem::temp_directory_path();
    do {  // create_directory is false when the name is taken (say, left by a crashed run)
      path_ = base / (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    } while (!std::filesystem::create_directory(path_));
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace bp::test
