// The run directory's ownership (lock, refusing an existing run, --overwrite), its cleanup of a
// killed writer's temporary files, and the repair of an interrupted commit. Kills at every
// instant of a real run are tests/crash_resume.sh's job.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "model/net.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "train/run_directory.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& file, const std::string& text = "x") { std::ofstream(file) << text; }

TEST(RunDirectory, ASecondOwnerFailsAtOnceNamingTheHoldersPid) {
  const test::TempDir tmp("brainprop-rundir");
  const std::string dir = (tmp.path() / "run").string();
  {
    const RunDirectory first(dir, RunStart::New);
    EXPECT_EQ(lock_holder_pid(dir), long(::getpid()));
    // flock belongs to an open file description, so a second open conflicts even in-process.
    test::expect_error_all([&] { RunDirectory second(dir, RunStart::Resume); },
                           {dir + ": in use by another brainprop process",
                            "(pid " + std::to_string(::getpid()) + ")", ".lock"});
  }
  // The lock went with its owner; the .lock file left behind blocks nobody.
  EXPECT_TRUE(fs::exists(fs::path(dir) / ".lock"));
  const RunDirectory again(dir, RunStart::Resume);
  EXPECT_TRUE(again.enabled());
}

TEST(RunDirectory, ANewRunRefusesADirectoryHoldingARunWithTheWaysOut) {
  const test::TempDir tmp("brainprop-rundir");
  const fs::path dir = tmp.path() / "run";
  { const RunDirectory empty_is_fine(dir.string(), RunStart::New); }
  touch(dir / "config.json");
  touch(dir / "last.safetensors");
  test::expect_error_all([&] { RunDirectory r(dir.string(), RunStart::New); },
                         {"already holds a run (config.json, last.safetensors)",
                          "brainprop train --resume " + dir.string(), "new --out", "--overwrite"});
  EXPECT_TRUE(fs::exists(dir / "last.safetensors")) << "a refused start touches nothing";
  // The refused start released the lock.
  EXPECT_NO_THROW(RunDirectory(dir.string(), RunStart::Resume));
}

TEST(RunDirectory, ReplaceRemovesEveryRunFileAndNothingElse) {
  const test::TempDir tmp("brainprop-rundir");
  const fs::path dir = tmp.path() / "run";
  fs::create_directories(dir);
  for (const std::string& name : RunDirectory::run_files()) touch(dir / name);
  touch(dir / "notes.txt");
  const RunDirectory r(dir.string(), RunStart::Replace);
  for (const std::string& name : RunDirectory::run_files()) EXPECT_FALSE(fs::exists(dir / name)) << name;
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
}

TEST(RunDirectory, AKilledWritersTemporaryFilesAreRemovedAtTheNextStart) {
  const test::TempDir tmp("brainprop-rundir");
  const fs::path dir = tmp.path() / "run";
  fs::create_directories(dir);
  touch(dir / "last.safetensors.tmp.12345");
  touch(dir / "history.jsonl.tmp.7");
  touch(dir / "keep.tmp.notapid");
  touch(dir / "last.safetensors");
  const RunDirectory r(dir.string(), RunStart::Resume);
  EXPECT_FALSE(fs::exists(dir / "last.safetensors.tmp.12345"));
  EXPECT_FALSE(fs::exists(dir / "history.jsonl.tmp.7"));
  EXPECT_TRUE(fs::exists(dir / "keep.tmp.notapid"));
  EXPECT_TRUE(fs::exists(dir / "last.safetensors"));
}

TEST(RunDirectory, ASharedDirectoryLosesOnlyTheTemporaryFilesOfDeadWriters) {
  const test::TempDir tmp("brainprop-rundir");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);  // a PID that no longer runs
  const fs::path dead = tmp.path() / ("sweep.json.tmp." + std::to_string(child));
  const fs::path live = tmp.path() / ("sweep.json.tmp." + std::to_string(::getpid()));
  touch(dead);
  touch(live);
  EXPECT_EQ(remove_temporary_files(tmp.path().string(), true), 1);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live)) << "a running writer's file stays";
  EXPECT_EQ(remove_temporary_files(tmp.path().string(), false), 1);
  EXPECT_FALSE(fs::exists(live));
}

// A checkpoint of a tiny net whose metadata says `epoch`.
void write_checkpoint(const fs::path& file, int epoch) {
  auto be = make_cpu_backend(1);
  TrainConfig c;
  c.model.name = "tiny";
  c.model.layers = {{"flatten"}};
  c.model.output = {"dense", 0, false, 0.1, 0};
  Net net(c.model, {1, 1, 4}, 2, *be, 2, DType::F32, 1);
  save_checkpoint(file.string(), net, c, epoch);
}

TEST(RunDirectory, AnInterruptedCommitRollsForwardWhenCommittedAndBackOtherwise) {
  const test::TempDir tmp("brainprop-rundir");
  const fs::path dir = tmp.path() / "run";
  const RunDirectory r(dir.string(), RunStart::New);
  const fs::path next = dir / "best.next.safetensors", best = dir / "best.safetensors";
  write_checkpoint(best, 2);

  // Killed before last.safetensors named epoch 3 the best: the old best stays.
  write_checkpoint(next, 3);
  r.repair_best(2);
  EXPECT_FALSE(fs::exists(next));
  EXPECT_EQ(read_checkpoint_info(best.string()).epoch, 2);

  // Killed after last.safetensors committed epoch 3 as the best, before the rename.
  write_checkpoint(next, 3);
  r.repair_best(3);
  EXPECT_FALSE(fs::exists(next));
  EXPECT_EQ(read_checkpoint_info(best.string()).epoch, 3);

  // A half-written (unreadable) next file never was committed.
  touch(next, "garbage");
  r.repair_best(3);
  EXPECT_FALSE(fs::exists(next));
  EXPECT_EQ(read_checkpoint_info(best.string()).epoch, 3);
}

}  // namespace
}  // namespace bp
