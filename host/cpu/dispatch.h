// Picks the float or double instance of a CPU op from a tensor's dtype.
#pragma once
#include <type_traits>

#include "core/tensor.h"

namespace bp::cpu {

// Calls fn with a null pointer of the tensor's floating type, to pick a template instance.
template <typename Fn>
void dispatch_float(DType dtype, const char* op, Fn&& fn) {
  if (dtype == DType::F32) {
    fn(static_cast<float*>(nullptr));
  } else if (dtype == DType::F64) {
    fn(static_cast<double*>(nullptr));
  } else {
    BP_FAIL(op << ": unsupported dtype " << dtype_name(dtype));
  }
}

#define BP_FLOAT_TYPE(tag) std::remove_pointer_t<decltype(tag)>

}  // namespace bp::cpu
