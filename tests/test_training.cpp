// Whole training runs on the CPU: real learning on a Fashion-MNIST subset, determinism,
// the NaN stop, early stopping, the run directory's files and the data plumbing.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/model_spec.h"
#include "model/net.h"
#include "resume_checks.h"
#include "synthetic_data.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "train/device_data.h"
#include "train/interrupt.h"
#include "train/trainer.h"
#include "train/training_step.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

ModelSpec small_mlp() {
  ModelSpec spec;
  spec.name = "small_mlp";
  spec.layers = {{"flatten"}, {"dense", 256, false, 0.05, 0}, {"relu"},
                 {"dense", 128, false, 0.05, 0}, {"relu"}};
  spec.output = {"dense", 0, false, 0.05, 0};
  return spec;
}

using test::synthetic_halves;

TrainConfig quick_config(Rule rule, int epochs) {
  TrainConfig c;
  c.model = small_mlp();
  c.rule = rule;
  c.max_epochs = epochs;
  c.val = "test";
  c.progress = false;
  c.eval_batch = 500;
  return c;
}

const char* kFashion = "/usr/share/datasets/fashion-mnist";

class FashionMnistSubset : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashion))
      GTEST_SKIP() << kFashion << " is missing (apt-get install dataset-fashion-mnist)";
  }
};

TEST_F(FashionMnistSubset, BothRulesClearlyLearn) {
  const Dataset data = load_dataset("fashion-mnist", DataLimits{10000, 2000});
  auto be = make_cpu_backend(2);
  // Chance is 0.10. Deterministic for the seed; the margins leave room for BLAS rounding.
  const TrainResult ebp = train(quick_config(Rule::Ebp, 3), data, *be, nullptr);
  EXPECT_GT(ebp.summary.best_val_accuracy.value_or(-1), 0.65);
  const TrainResult bp = train(quick_config(Rule::BrainProp, 3), data, *be, nullptr);
  EXPECT_GT(bp.summary.best_val_accuracy.value_or(-1), 0.35);
  // BrainProp's reward rate rises as it learns; exploration stays near eps * (1 - p_best).
  EXPECT_GT(bp.history.back().reward_rate, bp.history.front().reward_rate);
  EXPECT_LT(bp.history.back().exploration_rate, 0.03);
}

// A run's history and weights do not depend on --threads (so `sweep --jobs 2 --threads 1` and
// `--jobs 1 --threads 2` give the same runs). OpenBLAS's own threading splits x W^T with K = 784
// differently on 2 threads, and per-thread batch-norm partial sums depended on the thread count.
TEST_F(FashionMnistSubset, HistoryAndWeightsAreTheSameForAnyThreadCount) {
  const Dataset data = load_dataset("fashion-mnist", DataLimits{1000, 200});
  const test::TempDir tmp("brainprop-threads");
  ModelSpec tiny;  // x W^T with K = 784, N = 32 at batch 128: the product OpenBLAS splits
  tiny.name = "tiny";
  tiny.layers = {{"flatten"}, {"dense", 32, false, 0.05, 0}, {"relu"}};
  tiny.output = {"dense", 0, false, 0.05, 0};
  for (const auto& [rule, model] : {std::pair{Rule::BrainProp, load_model("conv")}, std::pair{Rule::Ebp, tiny},
                                    std::pair{Rule::BrainProp, tiny}}) {
    TrainConfig c = quick_config(rule, 1);
    c.model = model;
    c.batch_size = 128;
    c.lr = 0.1;
    std::vector<EpochRecord> first;
    std::map<std::string, std::vector<uint8_t>> first_weights;
    for (int threads : {1, 2, 3}) {
      auto be = make_cpu_backend(threads);
      c.out_dir = (tmp.path() / (model.name + rule_name(rule) + std::to_string(threads))).string();
      const TrainResult r = train(c, data, *be, nullptr);
      const auto weights = read_checkpoint_tensors(c.out_dir + "/last.safetensors", DType::F32);
      if (threads == 1) {
        first = r.history;
        first_weights = weights;
        continue;
      }
      ASSERT_EQ(r.history.size(), first.size());
      EXPECT_EQ(r.history[0].train_loss, first[0].train_loss) << threads << " threads";
      EXPECT_EQ(r.history[0].val_accuracy, first[0].val_accuracy) << threads << " threads";
      for (const auto& [name, bytes] : first_weights)
        EXPECT_TRUE(weights.at(name) == bytes) << model.name << " " << rule_name(rule) << ": " << name
                                               << " differs with " << threads << " threads";
    }
  }
}

TEST(Training, SameSeedSameHistory) {
  const Dataset data = synthetic_halves(1500, 300, 5);
  for (Rule rule : {Rule::BrainProp, Rule::Ebp}) {
    auto be = make_cpu_backend(2);
    const TrainResult a = train(quick_config(rule, 2), data, *be, nullptr);
    const TrainResult b = train(quick_config(rule, 2), data, *be, nullptr);
    ASSERT_EQ(a.history.size(), b.history.size());
    for (size_t e = 0; e < a.history.size(); ++e) {
      EXPECT_EQ(a.history[e].train_loss, b.history[e].train_loss);
      EXPECT_EQ(a.history[e].train_accuracy, b.history[e].train_accuracy);
      EXPECT_EQ(a.history[e].val_accuracy, b.history[e].val_accuracy);
      EXPECT_EQ(a.history[e].reward_rate, b.history[e].reward_rate);
    }
    TrainConfig other = quick_config(rule, 2);
    other.seed = 2;
    const TrainResult c = train(other, data, *be, nullptr);
    EXPECT_NE(a.history[0].train_loss, c.history[0].train_loss) << "the seed must matter";
  }
}

nlohmann::json read_summary(const std::string& run_dir) {
  return nlohmann::json::parse(std::ifstream(fs::path(run_dir) / "summary.json"));
}

// A run stopped before any epoch finished measured nothing: its figures are null, not 0.
void expect_nothing_measured(const TrainResult& r, const std::string& run_dir) {
  EXPECT_FALSE(r.summary.best_val_accuracy.has_value());
  EXPECT_FALSE(r.summary.test_accuracy.has_value());
  EXPECT_EQ(r.summary.best_epoch, 0);
  const nlohmann::json summary = read_summary(run_dir);
  for (const char* figure : {"best_val_accuracy", "test_accuracy", "best_epoch"}) {
    ASSERT_TRUE(summary.contains(figure)) << figure;
    EXPECT_TRUE(summary.at(figure).is_null()) << figure << " is " << summary.at(figure).dump();
  }
}

TEST(Training, StopsOnNanLossKeepingEarlierCheckpoints) {
  const Dataset data = synthetic_halves(1000, 200, 6);
  auto be = make_cpu_backend(2);
  TrainConfig c = quick_config(Rule::Ebp, 5);
  c.lr = 1e30;  // diverges within the first epoch
  const test::TempDir tmp("brainprop-test-nan");
  c.out_dir = (tmp.path() / "run").string();
  const TrainResult r = train(c, data, *be, nullptr);
  EXPECT_EQ(r.summary.stop_reason, "nan_loss");
  EXPECT_EQ(r.summary.epochs_run, 1);
  EXPECT_TRUE(r.history.empty());
  EXPECT_FALSE(fs::exists(fs::path(c.out_dir) / "last.safetensors")) << "no NaN weights saved";
  EXPECT_TRUE(fs::exists(fs::path(c.out_dir) / "summary.json"));
  expect_nothing_measured(r, c.out_dir);
  EXPECT_EQ(read_summary(c.out_dir).at("stop_reason"), "nan_loss");
}

// The case: EBP on the conv net at lr 10 drives dense1.weight to NaN while the loss,
// behind the ReLU, stays finite. The run must stop naming the tensor and write no checkpoint.
TEST_F(FashionMnistSubset, StopsOnNonFiniteWeightsBehindAFiniteLoss) {
  const Dataset data = load_dataset("fashion-mnist", DataLimits{2000, 500});
  auto be = make_cpu_backend(2);
  TrainConfig c = quick_config(Rule::Ebp, 2);
  c.model = load_model("conv");
  c.lr = 10;
  c.batch_size = 128;
  const test::TempDir tmp("brainprop-test-nonfinite");
  c.out_dir = (tmp.path() / "run").string();
  std::string said;
  const TrainResult r = train(c, data, *be, [&](const std::string& line) { said += line + "\n"; });
  EXPECT_EQ(r.summary.stop_reason, "nonfinite_weights") << said;
  EXPECT_NE(said.find("dense1.weight"), std::string::npos) << said;
  EXPECT_TRUE(r.history.empty());
  EXPECT_FALSE(fs::exists(fs::path(c.out_dir) / "last.safetensors")) << "no NaN weights saved";
  EXPECT_FALSE(fs::exists(fs::path(c.out_dir) / "best.safetensors")) << "no NaN weights saved";
  expect_nothing_measured(r, c.out_dir);
}

TEST(Checkpoints, ANonFiniteCheckpointIsRefusedNamingTheTensor) {
  const test::TempDir tmp("brainprop-test-nancheckpoint");
  const std::string path = (tmp.path() / "bad.safetensors").string();
  std::vector<float> values = {1.f, 2.f, std::nanf(""), INFINITY};
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  save_safetensors(path, {NamedTensor{"dense1.weight", DType::F32, {2, 2}, bytes}}, {});
  try {
    read_checkpoint_tensors(path, DType::F32);
    FAIL() << "a checkpoint with NaN and Inf was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense1.weight holds 2 non-finite values"), std::string::npos)
        << e.what();
  }
}

TEST(Training, EarlyStoppingEndsTheRun) {
  const Dataset data = synthetic_halves(600, 200, 7);
  auto be = make_cpu_backend(1);
  TrainConfig c = quick_config(Rule::Ebp, 50);
  c.patience = 2;
  c.min_delta = 2.0;  // no epoch after the first can improve by 2
  const TrainResult r = train(c, data, *be, nullptr);
  EXPECT_EQ(r.summary.stop_reason, "early_stopping");
  EXPECT_EQ(r.summary.epochs_run, 3);
}

TEST(Training, RunDirectoryHoldsConfigHistorySummaryAndCheckpoints) {
  const Dataset data = synthetic_halves(800, 300, 8);
  auto be = make_cpu_backend(2);
  TrainConfig c = quick_config(Rule::BrainProp, 3);
  c.val = "holdout";
  c.epsilon = 0.2;  // explore more: with two classes the greedy policy can sit on one for a while
  const test::TempDir tmp("brainprop-test-rundir");
  c.out_dir = (tmp.path() / "run").string();
  const TrainResult r = train(c, data, *be, nullptr);
  const fs::path dir(c.out_dir);
  for (const char* f : {"config.json", "history.jsonl", "summary.json", "best.safetensors", "last.safetensors"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  std::ifstream hist(dir / "history.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(hist, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* k : {"epoch", "lr", "train_loss", "train_accuracy", "val_accuracy", "seconds",
                          "images_per_second", "reward_rate", "exploration_rate"})
      EXPECT_TRUE(j.contains(k)) << k;
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  const auto summary = nlohmann::json::parse(std::ifstream(dir / "summary.json"));
  EXPECT_EQ(summary.at("best_epoch").get<int>(), r.summary.best_epoch);
  EXPECT_EQ(summary.at("stop_reason").get<std::string>(), "max_epochs");
  const auto config = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  EXPECT_EQ(config.at("rule").get<std::string>(), "brainprop");
  EXPECT_EQ(config.at("model").at("layers").size(), 5u);

  // The best checkpoint rebuilds the net and reproduces the summary's test accuracy.
  const CheckpointInfo info = read_checkpoint_info((dir / "best.safetensors").string());
  EXPECT_EQ(info.epoch, r.summary.best_epoch);
  Net net(info.config.model, {8, 8, 1}, 2, *be, 100, DType::F32, 123);
  load_checkpoint_weights((dir / "best.safetensors").string(), net);
  DeviceImages test(*be, data.test);
  BatchLoader loader(*be, test, 100, DType::F32);
  Tensor stats = be->empty({kStatCount}, DType::F64);
  ASSERT_TRUE(r.summary.test_accuracy.has_value());
  EXPECT_DOUBLE_EQ(evaluate_accuracy(net, loader, 100, stats), *r.summary.test_accuracy);
  EXPECT_GT(*r.summary.test_accuracy, 0.9) << "the halves task is easy";
  EXPECT_EQ(summary.at("test_accuracy").get<double>(), *r.summary.test_accuracy);
  EXPECT_EQ(summary.at("best_val_accuracy").get<double>(), r.summary.best_val_accuracy.value_or(-1));

  // A flipped bit in the last byte (the last tensor's data) stops the load, naming file and tensor.
  std::string bytes = read_file((dir / "best.safetensors").string());
  bytes.back() = static_cast<char>(bytes.back() ^ 0x10);
  const std::string flipped = (dir / "flipped.safetensors").string();
  std::ofstream(flipped, std::ios::binary) << bytes;
  const SafetensorsFile good = load_safetensors((dir / "best.safetensors").string());
  test::expect_error_all([&] { read_checkpoint_info(flipped); },
                         {flipped, "tensor '" + good.tensors.back().name + "' fails its CRC-32 checksum"});
}

TEST(Training, CheckpointMetadataThatIsNotAnEpochOrJsonIsABpError) {
  const test::TempDir dir("brainprop-ckpt-meta");
  const std::string path = (dir.path() / "x.safetensors").string();
  const NamedTensor t{"w", DType::F32, {1}, {0, 0, 0, 0}};
  auto write = [&](const std::string& epoch, const std::string& config) {
    save_safetensors(path, {t}, {{"epoch", epoch}, {"config", config}});
  };
  TrainConfig c;
  c.model = load_model("dense");
  const std::string config = config_to_json(c).dump();
  write("4", config);
  EXPECT_EQ(read_checkpoint_info(path).epoch, 4);
  for (const std::string epoch : {"", "abc", "3abc", "-1", "99999999999999999999"}) {
    write(epoch, config);
    test::expect_error([&] { read_checkpoint_info(path); },
                       path + ": metadata \"epoch\" is \"" + epoch + "\", not an epoch number");
  }
  // nlohmann::json reports a number too large for a double as out_of_range, not parse_error.
  write("3", "{\"lr\": 1e999}");
  test::expect_error([&] { read_checkpoint_info(path); }, path + ": metadata \"config\" is not valid JSON");
}

TEST(Training, CtrlCCheckpointsAtABatchBoundaryAndStops) {
  const Dataset data = synthetic_halves(1000, 100, 11);
  auto be = make_cpu_backend(1);
  TrainConfig c = quick_config(Rule::BrainProp, 5);
  const test::TempDir tmp("brainprop-test-interrupt");
  c.out_dir = (tmp.path() / "run").string();
  install_interrupt_handler();
  std::raise(SIGINT);  // as if Ctrl-C came during the first batch
  const TrainResult r = train(c, data, *be, nullptr);
  clear_interrupt();
  std::signal(SIGINT, SIG_DFL);
  EXPECT_EQ(r.summary.stop_reason, "interrupted");
  const fs::path last = fs::path(c.out_dir) / "last.safetensors";
  ASSERT_TRUE(fs::exists(last));
  const SafetensorsFile file = load_safetensors(last.string());
  const auto state = nlohmann::json::parse(file.metadata.at("trainer_state"));
  EXPECT_EQ(state.at("epoch").get<int>(), 0);
  EXPECT_EQ(state.at("batch").get<int>(), 1) << "stopped after the first batch";
  EXPECT_TRUE(fs::exists(fs::path(c.out_dir) / "summary.json"));
  expect_nothing_measured(r, c.out_dir);  // no test accuracy for an interrupted run
}

// A net with every stochastic and stateful piece: dropout masks and batch-norm averages.
ModelSpec small_conv_bn_dropout() {
  LayerSpec conv;
  conv.type = "conv2d";
  conv.filters = 4;
  conv.padding = "same";
  conv.init_std = 0.1;
  LayerSpec bn;
  bn.type = "batchnorm";
  LayerSpec drop;
  drop.type = "dropout";
  drop.rate = 0.3;
  ModelSpec spec;
  spec.name = "small_conv";
  spec.layers = {conv, {"relu"}, bn, drop, {"flatten"}, {"dense", 16, false, 0.1, 1e-3}, {"relu"}};
  spec.output = {"dense", 0, false, 0.1, 0};
  return spec;
}

TEST(Training, InterruptedAndResumedRunMatchesTheUninterruptedHistory) {
  const Dataset data = synthetic_halves(700, 200, 12);
  auto be = make_cpu_backend(2);
  for (Rule rule : {Rule::BrainProp, Rule::Ebp}) {
    TrainConfig c = quick_config(rule, 4);
    c.model = small_conv_bn_dropout();
    c.batch_size = 64;  // 11 batches an epoch, the last one partial
    const test::TempDir tmp("brainprop-test-resume");
    c.out_dir = (tmp.path() / "whole").string();
    const TrainResult whole = train(c, data, *be, nullptr);

    TrainConfig cut = c;
    cut.out_dir = (tmp.path() / "cut").string();
    cut.halt_after_steps = 15;  // inside epoch 2
    const TrainResult first = train(cut, data, *be, nullptr);
    EXPECT_EQ(first.summary.stop_reason, "interrupted");
    // Epoch 1 finished: its best validation accuracy was measured; the test accuracy was not.
    EXPECT_EQ(first.summary.best_epoch, 1);
    EXPECT_EQ(first.summary.best_val_accuracy, whole.history[0].val_accuracy);
    EXPECT_FALSE(first.summary.test_accuracy.has_value());
    const nlohmann::json cut_summary = read_summary(cut.out_dir);
    EXPECT_TRUE(cut_summary.at("test_accuracy").is_null()) << cut_summary.dump();
    EXPECT_EQ(cut_summary.at("best_val_accuracy").get<double>(), whole.history[0].val_accuracy);
    cut.halt_after_steps = 33;  // epoch 3 ends at step 33: finishes it, then halts inside epoch 4
    train(cut, data, *be, nullptr, RunStart::Resume);
    cut.halt_after_steps = -1;
    const TrainResult resumed = train(cut, data, *be, nullptr, RunStart::Resume);

    test::expect_same_history(whole, resumed);
    EXPECT_EQ(resumed.summary.best_epoch, whole.summary.best_epoch);
    EXPECT_EQ(resumed.summary.best_val_accuracy, whole.summary.best_val_accuracy);
    ASSERT_TRUE(whole.summary.test_accuracy.has_value());
    EXPECT_EQ(resumed.summary.test_accuracy, whole.summary.test_accuracy);
    test::expect_same_last_checkpoint(c.out_dir, cut.out_dir);
  }
}

TEST(DataPlumbing, LastPartialBatchIsKeptAndScaledToUnit) {
  const Dataset data = synthetic_halves(1000, 10, 9);
  auto be = make_cpu_backend(1);
  DeviceImages dev(*be, data.train);
  BatchLoader loader(*be, dev, 128, DType::F32);
  ASSERT_EQ(loader.batches(128), 8);
  loader.load(7, 128);
  EXPECT_EQ(loader.x().dim(0), 1000 - 7 * 128);
  const int64_t first = 7 * 128;
  EXPECT_FLOAT_EQ(loader.x().data<float>()[5], float(data.train.pixels[size_t(first * 64 + 5)]) / 255.0f);
  EXPECT_EQ(loader.y().data<int32_t>()[3], data.train.labels[size_t(first + 3)]);
}

TEST(DataPlumbing, HoldoutSplitIsDisjointAndSized) {
  Dataset data = synthetic_halves(1000, 10, 10);
  for (int64_t i = 0; i < data.train.count; ++i) data.train.pixels[size_t(i * 64)] = uint8_t(i % 251);
  ImageSet train_part, val_part;
  split_holdout(data.train, 0.1, 3, train_part, val_part);
  EXPECT_EQ(val_part.count, 100);
  EXPECT_EQ(train_part.count, 900);
  ImageSet again_train, again_val;
  split_holdout(data.train, 0.1, 3, again_train, again_val);
  EXPECT_EQ(val_part.pixels, again_val.pixels) << "the split depends on the seed only";
}

}  // namespace
}  // namespace bp
