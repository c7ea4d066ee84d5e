// Small helpers shared by the test files.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/error.h"

namespace bp::test {

// Expects body() to throw bp::Error whose message contains `needle`.
inline void expect_error(const std::function<void()>& body, const std::string& needle) {
  try {
    body();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
    return;
  }
  ADD_FAILURE() << "expected a bp::Error containing \"" << needle << "\"";
}

}  // namespace bp::test
