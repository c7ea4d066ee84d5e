// `brainprop info`: version, the backends this build has, and the devices it can see.
#include <omp.h>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cpu/blas_gemm.h"
#include "device_info.h"
#include "model/model_spec.h"

namespace bp::cli {

int run_info(const std::vector<std::string>& argv) {
  const Args args(argv, {}, {"help", "json"});
  const cuda::CudaInventory cu = cuda::query_cuda();
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : cu.devices)
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"compute_capability", std::to_string(d.major) + "." + std::to_string(d.minor)},
                       {"memory_gib", double(d.total_memory) / (1 << 30)},
                       {"multiprocessors", d.multiprocessors},
                       {"usable", d.usable},
                       {"why_unusable", d.why_unusable}});
  const nlohmann::json info = {
      {"version", BRAINPROP_VERSION},
      {"backends", {{"cpu", {{"compiled", true},
                             {"blas", cpu::blas_name()},
                             {"threads", omp_get_max_threads()}}},
                    {"cuda", {{"compiled", cu.compiled},
                              {"architectures", cu.compiled_archs},
                              {"runtime_version", cu.runtime_version},
                              {"driver_version", cu.driver_version},
                              {"training_backend", true}, {"math_modes", {"fp32", "tf32"}}}}}},
      {"devices", devices},
      {"why_no_device", cu.why_no_device},
      {"models_directory", models_directory()}};
  if (args.flag("json")) {
    std::printf("%s\n", info.dump(2).c_str());
    return 0;
  }
  std::printf("brainprop %s\n", BRAINPROP_VERSION);
  std::printf("cpu backend: %s, %d OpenMP threads\n", cpu::blas_name().c_str(),
              omp_get_max_threads());
  if (cu.compiled) {
    std::printf("cuda: compiled for %s (runtime %d, driver %d); training backend: --backend cuda, --math fp32|tf32\n",
                cu.compiled_archs.c_str(), cu.runtime_version, cu.driver_version);
  } else {
    std::printf("cuda: not compiled in\n");
  }
  if (cu.devices.empty()) std::printf("devices: none (%s)\n", cu.why_no_device.c_str());
  for (const auto& d : cu.devices)
    std::printf("device %d: %s, sm_%d%d, %.1f GiB, %d SMs%s%s\n", d.index, d.name.c_str(), d.major,
                d.minor, double(d.total_memory) / (1 << 30), d.multiprocessors,
                d.usable ? "" : "; not usable: ", d.why_unusable.c_str());
  std::printf("models: %s\n", models_directory().c_str());
  return 0;
}

}  // namespace bp::cli
