// Errors: every failure throws bp::Error with the place it was detected and the reason.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace bp {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace bp

// BP_FAIL("reason " << value): throws bp::Error("reason value (file.cpp:42)").
#define BP_FAIL(stream_expr)                                  \
  do {                                                        \
    std::ostringstream bp_fail_stream_;                       \
    bp_fail_stream_ << stream_expr;                           \
    ::bp::detail::throw_error(__FILE__, __LINE__, bp_fail_stream_.str()); \
  } while (0)

#define BP_CHECK(cond, stream_expr) \
  do {                              \
    if (!(cond)) BP_FAIL(stream_expr); \
  } while (0)
