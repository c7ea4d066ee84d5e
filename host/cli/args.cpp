#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace bp::cli {
namespace {

// What the parser treats as an option rather than a positional or a value.
bool looks_like_option(const std::string& a) { return a.size() >= 3 && a.compare(0, 2, "--") == 0; }

}  // namespace

uint64_t parse_uint64(const std::string& text, const std::string& what) {
  const size_t first = text.find_first_not_of(" \t");
  // strtoull accepts "-1" and wraps it to 2^64 - 1: refuse a sign before it sees one.
  BP_CHECK(first != std::string::npos && text[first] != '-',
           what << " expects a non-negative integer, got \"" << text << "\"");
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  BP_CHECK(end && *end == '\0', what << " expects a non-negative integer, got \"" << text << "\"");
  BP_CHECK(errno != ERANGE, what << " is out of range: " << text);
  return static_cast<uint64_t>(v);
}

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& value_options,
           const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (!looks_like_option(a)) {
      positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (flags.count(name) && !inline_value) {
      flags_.insert(name);
    } else if (value_options.count(name)) {
      if (!inline_value) {
        BP_CHECK(i + 1 < argv.size(), "option --" << name << " needs a value");
        // `--epochs --out X`: the next argument is another option, not this one's value.
        const std::string& next = argv[i + 1];
        BP_CHECK(!looks_like_option(next),
                 "option --" << name << " needs a value but got none: the next argument, " << next
                             << ", is an option (write --" << name
                             << "=VALUE for a value that starts with --)");
        value = argv[++i];
      }
      values_[name] = value;
    } else {
      std::string known;
      for (const auto& k : value_options) known += " --" + k;
      for (const auto& k : flags) known += " --" + k;
      BP_FAIL("unknown option --" << name << " (known:" << known << ")");
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

long long Args::get_int64(const std::string& name, long long fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  BP_CHECK(end && *end == '\0' && !it->second.empty(),
           "--" << name << " expects an integer, got \"" << it->second << "\"");
  // strtoll clamps an out-of-range value to LLONG_MIN/MAX and only says so through errno.
  BP_CHECK(errno != ERANGE, "--" << name << " is out of range: " << it->second);
  return v;
}

uint64_t Args::get_uint64(const std::string& name, uint64_t fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : parse_uint64(it->second, "--" + name);
}

int Args::get_int(const std::string& name, int fallback) const {
  const long long v = get_int64(name, fallback);
  BP_CHECK(v >= -(1LL << 31) && v < (1LL << 31), "--" << name << " is out of range: " << v);
  return static_cast<int>(v);
}

double Args::get_double(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  BP_CHECK(end && *end == '\0' && !it->second.empty(),
           "--" << name << " expects a number, got \"" << it->second << "\"");
  return v;
}

}  // namespace bp::cli
