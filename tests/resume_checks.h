// What an interrupted and resumed run must equal: the uninterrupted run's history, epoch for
// epoch, and its last.safetensors, tensor for tensor (timings aside). Shared by the resume tests
// of every rule and feedback pathway.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "train/trainer.h"

namespace bp::test {

// The probe's figures without its timing.
inline nlohmann::json untimed_probe(nlohmann::json probe) {
  if (probe.is_object()) probe.erase("seconds");
  return probe;
}

inline void expect_same_history(const TrainResult& whole, const TrainResult& resumed) {
  ASSERT_EQ(resumed.history.size(), whole.history.size());
  for (size_t e = 0; e < whole.history.size(); ++e) {
    const EpochRecord &w = whole.history[e], &r = resumed.history[e];
    EXPECT_EQ(r.train_loss, w.train_loss) << "epoch " << e + 1;
    EXPECT_EQ(r.train_accuracy, w.train_accuracy) << "epoch " << e + 1;
    EXPECT_EQ(r.val_accuracy, w.val_accuracy) << "epoch " << e + 1;
    EXPECT_EQ(r.reward_rate, w.reward_rate) << "epoch " << e + 1;
    EXPECT_EQ(r.exploration_rate, w.exploration_rate) << "epoch " << e + 1;
    EXPECT_EQ(untimed_probe(r.probe), untimed_probe(w.probe)) << "epoch " << e + 1;
  }
}

// Expects RUN_A/last.safetensors and RUN_B/last.safetensors to hold the same tensors, byte for
// byte, and returns A's.
inline SafetensorsFile expect_same_last_checkpoint(const std::string& run_a, const std::string& run_b) {
  namespace fs = std::filesystem;
  SafetensorsFile a = load_safetensors((fs::path(run_a) / "last.safetensors").string());
  const SafetensorsFile b = load_safetensors((fs::path(run_b) / "last.safetensors").string());
  EXPECT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < std::min(a.tensors.size(), b.tensors.size()); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].bytes, b.tensors[i].bytes) << a.tensors[i].name;
  }
  return a;
}

}  // namespace bp::test
