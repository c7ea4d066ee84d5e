// Sweeps: grid naming and order, and what a restarted sweep does with each run directory.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "io/atomic_file.h"
#include "test_helpers.h"
#include "train/run_directory.h"
#include "train/sweep.h"
#include "train/trainer.h"

namespace bp {
namespace {

Dataset two_class_data() {
  Dataset d;
  d.name = "dots";
  d.source = "synthetic";
  d.classes = 2;
  d.class_names = {"dark", "bright"};
  for (ImageSet* set : {&d.train, &d.test}) {
    set->count = 200;
    set->height = set->width = 4;
    set->channels = 1;
    for (int i = 0; i < 200; ++i) {
      set->labels.push_back(i % 2);
      for (int p = 0; p < 16; ++p) set->pixels.push_back(uint8_t(i % 2 ? 200 + p : 10 + p));
    }
  }
  return d;
}

TEST(Sweep, GridNamesEveryRunAndUsesEachModelsDefaults) {
  TrainConfig base;
  base.batch_size = 0;  // each model's own
  base.lr = 0;
  const auto runs = sweep_grid(base, {"fashion-mnist", "folder:/x/cifar10-jpeg"},
                               {"fashion-mnist", "folder-cifar10-jpeg"}, {"dense", "loccon"},
                               {Rule::BrainProp, Rule::Ebp}, {1, 2, 3}, "/tmp/s");
  ASSERT_EQ(runs.size(), 2u * 2 * 2 * 3);
  EXPECT_EQ(runs[0].name, "fashion-mnist-dense-brainprop-s1");
  EXPECT_EQ(runs[0].config.out_dir, "/tmp/s/fashion-mnist-dense-brainprop-s1");
  EXPECT_EQ(runs.back().name, "folder-cifar10-jpeg-loccon-ebp-s3");
  EXPECT_EQ(runs[0].config.batch_size, 128);
  EXPECT_EQ(runs[6].config.batch_size, 32) << "loccon's own batch size";
  EXPECT_EQ(runs.back().config.seed, 3u);
}

TEST(Sweep, RestartSkipsFinishedRunsResumesOthersAndRefusesChangedSettings) {
  const test::TempDir dir("brainprop-sweep");
  TrainConfig c;
  c.model = load_model("dense");
  c.model.layers = {{"flatten"}, {"dense", 8, false, 0.1, 0}, {"relu"}};
  c.max_epochs = 2;
  c.val = "test";
  c.progress = false;
  c.out_dir = (dir.path() / "run").string();
  EXPECT_EQ(run_status(c), RunStatus::Fresh);

  const Dataset data = two_class_data();
  auto be = make_cpu_backend(1);
  c.halt_after_steps = 1;  // interrupted inside the first epoch
  train(c, data, *be, nullptr);
  c.halt_after_steps = -1;
  EXPECT_EQ(run_status(c), RunStatus::Resume);
  train(c, data, *be, nullptr, RunStart::Resume);
  EXPECT_EQ(run_status(c), RunStatus::Done);
  TrainConfig longer = c;
  longer.max_epochs = 3;
  EXPECT_EQ(run_status(longer), RunStatus::Resume) << "a raised epoch limit continues the run";
  TrainConfig changed = c;
  changed.lr = 0.5;
  test::expect_error([&] { run_status(changed); }, "made with lr = 0.1");

  // A damaged summary.json or config.json is a bp::Error naming it, never a JSON library
  // exception: a number too large for a double, a field of another type, not an object.
  const std::string summary = (dir.path() / "run" / "summary.json").string();
  for (const char* text : {"{\"stop_reason\": \"max_epochs\", \"epochs_run\": 1e999}",
                           "{\"stop_reason\": 3}", "[]"}) {
    write_file_atomic(summary, text);
    test::expect_error([&] { run_status(c); }, summary + ": not a valid summary");
  }
  const std::string config = (dir.path() / "run" / "config.json").string();
  write_file_atomic(config, "{\"lr\": 1e999}");
  test::expect_error([&] { run_status(c); }, config + ": not valid JSON");
  write_file_atomic(config, "[1]");
  test::expect_error([&] { run_status(c); }, config + ": not a JSON object");
}

// A run that diverged is a result, not something to retry: even one that diverged in its first
// epoch, which leaves a summary.json but no checkpoint.
TEST(Sweep, ADivergedRunIsDoneEvenWithoutACheckpoint) {
  const test::TempDir dir("brainprop-sweep-diverged");
  TrainConfig c;
  c.model = load_model("dense");
  c.model.layers = {{"flatten"}, {"dense", 8, false, 0.1, 0}, {"relu"}};
  c.max_epochs = 3;
  c.val = "test";
  c.progress = false;
  c.rule = Rule::Ebp;
  c.lr = 1e30;  // diverges in the first epoch
  c.out_dir = (dir.path() / "run").string();
  const Dataset data = two_class_data();
  auto be = make_cpu_backend(1);
  const TrainResult r = train(c, data, *be, nullptr);
  ASSERT_TRUE(diverged(r.summary.stop_reason)) << r.summary.stop_reason;
  ASSERT_FALSE(std::filesystem::exists(dir.path() / "run" / "last.safetensors"));
  EXPECT_EQ(stored_stop_reason(c.out_dir), r.summary.stop_reason);
  EXPECT_EQ(run_status(c), RunStatus::Done);
  EXPECT_EQ(stored_stop_reason((dir.path() / "nothing").string()), "");
}

}  // namespace
}  // namespace bp

namespace bp {
namespace {

TEST(SweepShard, ParsesKOfNAndRefusesTheRest) {
  const Shard s = parse_shard("2/5");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.text(), "2/5");
  for (const char* bad : {"0/3", "4/3", "2", "a/b", "1/0", "1/2x", "-1/2", ""})
    test::expect_error([&] { parse_shard(bad); }, "--shard");
}

TEST(SweepShard, TheShardsOfAGridHoldEveryRunExactlyOnce) {
  for (int n = 1; n <= 5; ++n)
    for (size_t run = 0; run < 23; ++run) {
      int holders = 0;
      for (int k = 1; k <= n; ++k) holders += in_shard(run, Shard{k, n}) ? 1 : 0;
      EXPECT_EQ(holders, 1) << "run " << run << " of " << n << " shards";
    }
  // Round-robin: consecutive runs (the seeds of one model and rule) go to different shards.
  EXPECT_TRUE(in_shard(0, Shard{1, 3}) && in_shard(1, Shard{2, 3}) && in_shard(2, Shard{3, 3}));
}

TEST(SweepPlacement, RunsGoRoundRobinAndSlotsShareOutTheJobs) {
  const Placement p = make_placement(5, {3, 1});
  EXPECT_EQ(p.slots, (std::vector<int>{3, 2}));
  EXPECT_EQ(p.gpu_of(0), 3);
  EXPECT_EQ(p.gpu_of(1), 1);
  EXPECT_EQ(p.gpu_of(2), 3);
  EXPECT_EQ(make_placement(2, {}).gpu_of(0), -1) << "no GPUs: the backend's default";
  test::expect_error([] { make_placement(0, {}); }, "--jobs must be >= 1");
  test::expect_error([] { make_placement(1, {0, 1}); }, "--jobs 1 cannot use 2 GPUs");
  test::expect_error([] { make_placement(2, {0, 0}); }, "names GPU 0 twice");
}

TEST(SweepProgressLine, EtaIsRemainingEpochsTimesMeanEpochOverConcurrentRuns) {
  SweepProgress p;
  p.runs_total = 8;
  p.runs_done = 2;
  p.runs_running = 2;
  EXPECT_FALSE(sweep_eta_seconds(p)) << "no epoch timed yet";
  EXPECT_NE(sweep_progress_line(p).find("ETA after the first epoch"), std::string::npos);
  p.epochs_timed = 10;
  p.epoch_seconds = 50;  // 5 s an epoch
  p.epochs_remaining = 48;
  p.concurrency = 2;
  ASSERT_TRUE(sweep_eta_seconds(p));
  EXPECT_DOUBLE_EQ(*sweep_eta_seconds(p), 120.0);
  EXPECT_EQ(sweep_progress_line(p, 8), "sweep [##......] 2/8 runs done, 2 running, ETA <= 2m00s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(7380), "2h03m");
}

TEST(SweepState, ARunAnotherProcessHoldsIsRunningWithItsPid) {
  const test::TempDir dir("brainprop-sweep-state");
  TrainConfig c;
  c.model = load_model("dense");
  c.max_epochs = 4;
  c.out_dir = (dir.path() / "run").string();
  EXPECT_EQ(describe_run(c).state, "not started");
  {
    const RunDirectory held(c.out_dir, RunStart::New);
    const RunState s = describe_run(c);
    EXPECT_EQ(s.state, "running");
    EXPECT_EQ(s.running_pid, long(::getpid()));
    EXPECT_NE(s.detail.find("epoch 0/4"), std::string::npos) << s.detail;
  }
  EXPECT_EQ(describe_run(c).state, "not started") << "the lock went with its holder";
}

}  // namespace
}  // namespace bp
