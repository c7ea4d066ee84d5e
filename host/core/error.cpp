#include "core/error.h"

#include <cstring>

namespace bp::detail {

void throw_error(const char* file, int line, const std::string& message) {
  const char* slash = std::strrchr(file, '/');
  std::ostringstream out;
  out << message << " (" << (slash ? slash + 1 : file) << ":" << line << ")";
  throw Error(out.str());
}

}  // namespace bp::detail
