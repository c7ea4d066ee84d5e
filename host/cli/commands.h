// The `brainprop` subcommands; each takes the arguments after its name, returns an exit code.
#pragma once
#include <string>
#include <vector>

namespace bp::cli {

int run_train(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_info(const std::vector<std::string>& args);
int run_sweep(const std::vector<std::string>& args);
int run_inspect(const std::vector<std::string>& args);
int run_report(const std::vector<std::string>& args);

}  // namespace bp::cli
