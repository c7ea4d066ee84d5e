// A small command-line parser: --name value, --name=value, --flag, and positionals.
// Every option must be declared; an unknown one is an error that lists the known ones.
// `--name value` takes the next argument unless it looks like an option itself (`--epochs --out X`
// is an error); a value that starts with -- needs the `--name=value` form.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace bp::cli {

// Parses a non-negative decimal integer; `what` (say "--seed") starts the error message.
uint64_t parse_uint64(const std::string& text, const std::string& what);

class Args {
 public:
  // value_options take a value; flags do not.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& value_options,
       const std::set<std::string>& flags);

  bool has(const std::string& name) const { return values_.count(name) || flags_.count(name); }
  std::string get(const std::string& name, const std::string& fallback) const;
  int get_int(const std::string& name, int fallback) const;
  long long get_int64(const std::string& name, long long fallback) const;
  // A non-negative integer up to 2^64 - 1 (a seed): "-1" is an error, not 2^64 - 1.
  uint64_t get_uint64(const std::string& name, uint64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positionals_;
};

}  // namespace bp::cli
