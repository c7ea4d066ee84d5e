// Training options shared by `train` and `sweep`: their names, and applying them to a config
// whose data, model and rule are already set.
#pragma once
#include <optional>
#include <set>
#include <string>

#include "cli/args.h"
#include "train/run_directory.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace bp::cli {

// --batch, --lr, --epochs, --seed, --val, --backend, --threads, ... (value options).
const std::set<std::string>& training_value_options();
// Fills every field but data_spec, model_source, model, rule and out_dir. The model must be
// loaded first: its training block gives the batch size and lr defaults.
void apply_training_options(const Args& args, TrainConfig& c);

// The reference's data-set names (MNIST, fashion-mnist, CIFAR10, CIFAR100, TinyImageNet) to a spec.
std::string reference_data_spec(const std::string& dataset, const std::string& dir);
// A short file-name-safe name for a data spec: "fashion-mnist", "folder-cifar10-jpeg".
std::string data_short_name(const std::string& spec);

// "0.8123" (%.4f), or "n/a" for a figure that was never measured.
std::string format_figure(const std::optional<double>& value);
// "best val_acc 0.8123 at epoch 3, test_acc 0.8100", with n/a for what was not measured
// ("best val_acc n/a (no epoch finished), test_acc n/a").
std::string summary_figures(const TrainSummary& s);

// Prints the one-line header and runs train() with progress on stdout; returns the exit code.
int run_training(const TrainConfig& c, RunStart start);

}  // namespace bp::cli
