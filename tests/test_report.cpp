// `brainprop report`: finding run directories, grouping, mean (std) over seeds, the Markdown
// and CSV texts, curves over runs of different lengths, errors on malformed files, and (when
// python3 has matplotlib) the figures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_helpers.h"
#include "train/report.h"

namespace bp {
namespace {

namespace fs = std::filesystem;
using report::Sweep;

struct FakeRun {
  std::string rel_dir, rule;
  unsigned long long seed;
  std::vector<double> val_curve;  // history.jsonl's val_accuracy per epoch, from epoch 1
  bool finished;
  int best_epoch;
  double best_val, test;
};

// The fake sweep: BrainProp and EBP on one (data, model), 3 seeds each, EBP's runs one level
// deeper; one unfinished BrainProp run; a run three levels deep that must not be found.
//   BrainProp best epochs 10, 20, 30 -> 20 (10); val 0.90 0.92 0.94 -> 92.00 (2.00);
//             test 0.89 0.91 0.93 -> 91.00 (2.00); curves of 3, 4 and 5 epochs.
//   EBP       best epochs 5, 10, 15 -> 10 (5); val 0.95 0.96 0.97 -> 96.00 (1.00);
//             test 0.94 0.95 0.96 -> 95.00 (1.00); curves of 2 epochs.
//   ratio 20 / 10 = 2.00
const std::vector<FakeRun>& fake_runs() {
  static const std::vector<FakeRun> runs = {
      {"fm-dense-brainprop-s1", "brainprop", 1, {0.1, 0.2, 0.3}, true, 10, 0.90, 0.89},
      {"fm-dense-brainprop-s2", "brainprop", 2, {0.3, 0.4, 0.5, 0.6}, true, 20, 0.92, 0.91},
      {"fm-dense-brainprop-s3", "brainprop", 3, {0.5, 0.6, 0.7, 0.8, 0.9}, true, 30, 0.94, 0.93},
      {"ebp/fm-dense-ebp-s1", "ebp", 1, {0.5, 0.7}, true, 5, 0.95, 0.94},
      {"ebp/fm-dense-ebp-s2", "ebp", 2, {0.6, 0.8}, true, 10, 0.96, 0.95},
      {"ebp/fm-dense-ebp-s3", "ebp", 3, {0.7, 0.9}, true, 15, 0.97, 0.96},
      {"fm-dense-brainprop-s4", "brainprop", 4, {0.2, 0.3}, false, 0, 0, 0},
      {"too/deep/fm-dense-ebp-s9", "ebp", 9, {0.1}, true, 1, 0.1, 0.1},
  };
  return runs;
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const FakeRun& r : fake_runs()) write_run(r, "fashion-mnist", "dense");
  }

  std::string sweep() const { return dir_.string(); }
  std::string run_path(const std::string& rel) const { return (dir_ / rel).string(); }

  void write_run(const FakeRun& r, const std::string& data, const std::string& model) const {
    const fs::path d = dir_ / r.rel_dir;
    fs::create_directories(d);
    const nlohmann::json config = {{"data", data},      {"model", {{"name", model}}},
                                   {"rule", r.rule},    {"seed", r.seed},
                                   {"val", "test"},     {"lr", 0.1}};
    std::ofstream(d / "config.json") << config.dump(2) << "\n";
    std::ofstream history(d / "history.jsonl");
    for (size_t e = 0; e < r.val_curve.size(); ++e) {
      nlohmann::json line = {{"epoch", e + 1},
                             {"val_accuracy", r.val_curve[e]},
                             {"train_accuracy", r.val_curve[e]},
                             {"train_loss", 1.0 - r.val_curve[e]}};
      if (r.rule == "brainprop" || r.rule == "reinforce") {
        line["reward_rate"] = r.val_curve[e] / 2;
        line["exploration_rate"] = 0.02;
      }
      history << line.dump() << "\n";
    }
    if (r.finished) {
      const nlohmann::json summary = {{"best_epoch", r.best_epoch},
                                      {"best_val_accuracy", r.best_val},
                                      {"epochs_run", r.best_epoch + 45},
                                      {"stop_reason", "early_stopping"},
                                      {"test_accuracy", r.test},
                                      {"total_seconds", 1.5},
                                      {"val_protocol", "test"}};
      std::ofstream(d / "summary.json") << summary.dump(2) << "\n";
    }
  }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  const test::TempDir tmp_{"bp_report_test"};
  const fs::path dir_ = tmp_.path();
};

class ReportDiscovery : public ReportTest {};
class ReportAggregate : public ReportTest {};
class ReportTable : public ReportTest {};
class ReportCurves : public ReportTest {};
class ReportErrors : public ReportTest {};
class ReportFiles : public ReportTest {};
class ReportFigures : public ReportTest {};

// ---- statistics and formatting (no files) ----

TEST(ReportStats, MeanAndSampleStandardDeviation) {
  const report::MeanStd s = report::mean_std({10, 20, 30});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(s.mean, 20);
  EXPECT_DOUBLE_EQ(s.std, 10);  // sqrt((100 + 0 + 100) / (3 - 1))
  const report::MeanStd one = report::mean_std({0.5});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.5);
  EXPECT_EQ(one.std, 0);  // one seed: 0, not NaN
  EXPECT_EQ(report::mean_std({}).n, 0);
}

TEST(ReportStats, FormatsLikeThePapersTables) {
  EXPECT_EQ(report::format_mean_std(51.2, 19.4, 0), "51 (19)");
  EXPECT_EQ(report::format_mean_std(98.678, 0.0712, 2), "98.68 (0.07)");
  EXPECT_EQ(report::format_mean_std(100, 0, 2), "100.00 (0.00)");
}

TEST(ReportStats, DataLabelsAreShortUniqueAndFileSafe) {
  auto labels = report::data_labels({"fashion-mnist", "cifar10:/data/a/", "cifar10:/data/b",
                                     "folder:/img/cifar10-jpeg", "mnist:/x y/mnist"});
  EXPECT_EQ(labels["fashion-mnist"], "fashion-mnist");
  EXPECT_EQ(labels["cifar10:/data/a/"], "cifar10-a");  // the prefix alone would be ambiguous
  EXPECT_EQ(labels["cifar10:/data/b"], "cifar10-b");
  EXPECT_EQ(labels["folder:/img/cifar10-jpeg"], "folder-cifar10-jpeg");
  EXPECT_EQ(labels["mnist:/x y/mnist"], "mnist");
  EXPECT_EQ(report::file_safe("a b/c:d+e.f"), "a_b_c_d+e.f");
  EXPECT_EQ(report::csv_field("plain"), "plain");
  EXPECT_EQ(report::csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
}

// ---- reading a sweep ----

TEST_F(ReportDiscovery, FindsRunDirectoriesOneAndTwoLevelsDown) {
  const std::vector<std::string> dirs = report::find_run_dirs(sweep());
  const std::vector<std::string> expected = {
      run_path("ebp/fm-dense-ebp-s1"),   run_path("ebp/fm-dense-ebp-s2"),
      run_path("ebp/fm-dense-ebp-s3"),   run_path("fm-dense-brainprop-s1"),
      run_path("fm-dense-brainprop-s2"), run_path("fm-dense-brainprop-s3"),
      run_path("fm-dense-brainprop-s4")};
  EXPECT_EQ(dirs, expected);  // too/deep/... is three levels down: not a run of this sweep
}

TEST_F(ReportDiscovery, InterruptedRunIsUnfinished) {
  std::ofstream(dir_ / "fm-dense-brainprop-s3" / "summary.json")
      << R"({"best_epoch": 2, "best_val_accuracy": 0.5, "epochs_run": 3,
            "stop_reason": "interrupted", "test_accuracy": 0})";
  const report::RunRecord run = report::read_run(run_path("fm-dense-brainprop-s3"));
  EXPECT_EQ(run.outcome, report::Outcome::Unfinished);
  EXPECT_NE(run.reason.find("interrupted after 3 finished epochs"), std::string::npos) << run.reason;
  // An old summary's 0: an interrupted run's test accuracy is never measured.
  EXPECT_FALSE(run.test_accuracy.has_value());
  EXPECT_EQ(run.best_val_accuracy, 0.5);  // epochs 1 and 2 were measured
}

// The summary of a run stopped by NaN in its first epoch: its figures are null (unmeasured).
const char* kNanInEpochOne = R"({"best_epoch": null, "best_val_accuracy": null, "epochs_run": 1,
    "stop_reason": "nan_loss", "test_accuracy": null, "total_seconds": 0.5, "val_protocol": "test"})";

TEST_F(ReportDiscovery, NullFiguresAreReadAsUnmeasuredAndADivergedRunAsFailed) {
  std::ofstream(dir_ / "fm-dense-brainprop-s4" / "summary.json") << kNanInEpochOne;
  const report::RunRecord run = report::read_run(run_path("fm-dense-brainprop-s4"));
  EXPECT_EQ(run.outcome, report::Outcome::Failed);
  EXPECT_EQ(run.reason, "nan_loss in epoch 1");
  EXPECT_EQ(run.stop_reason, "nan_loss");
  EXPECT_EQ(run.best_epoch, 0);
  EXPECT_FALSE(run.best_val_accuracy.has_value());
  EXPECT_FALSE(run.test_accuracy.has_value());
}

TEST_F(ReportAggregate, GroupsByDataModelRuleAndLeavesUnfinishedRunsOut) {
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].rule, "brainprop");  // BrainProp before EBP
  EXPECT_EQ(s.groups[1].rule, "ebp");
  for (const report::Group& g : s.groups) {
    EXPECT_EQ(g.data, "fashion-mnist");
    EXPECT_EQ(g.data_label, "fashion-mnist");
    EXPECT_EQ(g.model, "dense");
    EXPECT_EQ(g.val, "test");
    ASSERT_EQ(g.runs.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(g.runs[i].seed, i + 1);  // sorted by seed
  }
  ASSERT_EQ(s.unfinished.size(), 1u);
  EXPECT_EQ(s.unfinished[0].dir, run_path("fm-dense-brainprop-s4"));
  EXPECT_EQ(s.unfinished[0].reason, "no summary.json (still running, or killed)");
  EXPECT_TRUE(s.failed.empty());
  EXPECT_TRUE(s.warnings.empty());
  EXPECT_EQ(report::run_counts(s),
            "7 runs: 6 finished, 0 failed, 1 unfinished (no summary.json (still running, or "
            "killed): " + run_path("fm-dense-brainprop-s4") + ")");
}

// A diverged run is not dropped and not averaged in as 0: it is counted in its group's failed
// column, listed with its directory and reason, and left out of the means and curves.
TEST_F(ReportAggregate, DivergedRunsAreCountedAndListedButNotAveraged) {
  std::ofstream(dir_ / "fm-dense-brainprop-s4" / "summary.json") << kNanInEpochOne;
  // A run that diverged in epoch 7 after a best epoch 5: measured, but failed all the same.
  std::ofstream(dir_ / "ebp" / "fm-dense-ebp-s3" / "summary.json")
      << R"({"best_epoch": 5, "best_val_accuracy": 0.5, "epochs_run": 7,
            "stop_reason": "nonfinite_weights", "test_accuracy": 0.5})";
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].runs.size(), 3u);
  EXPECT_EQ(s.groups[0].failed, 1);
  EXPECT_EQ(s.groups[1].runs.size(), 2u);
  EXPECT_EQ(s.groups[1].failed, 1);
  EXPECT_NEAR(s.groups[1].best_val_accuracy.mean, 0.955, 1e-12);  // 0.95, 0.96; not the 0.5
  EXPECT_TRUE(s.unfinished.empty());
  ASSERT_EQ(s.failed.size(), 2u);
  EXPECT_EQ(s.failed[0].dir, run_path("ebp/fm-dense-ebp-s3"));
  EXPECT_EQ(s.failed[0].reason, "nonfinite_weights in epoch 7");
  EXPECT_EQ(s.failed[1].dir, run_path("fm-dense-brainprop-s4"));
  EXPECT_EQ(report::run_counts(s),
            "7 runs: 5 finished, 2 failed (nonfinite_weights in epoch 7: " +
                run_path("ebp/fm-dense-ebp-s3") + "; nan_loss in epoch 1: " +
                run_path("fm-dense-brainprop-s4") + "), 0 unfinished");

  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(report::markdown_row(rows[0]),
            "| fashion-mnist | dense | 20 (10) | 92.00 (2.00) | 8 (4) | 95.50 (0.71) | 2.67 | "
            "91.00 (2.00) | 94.50 (0.71) | 3 / 2 | 1 |");
  const std::string md = report::markdown_report(s);
  EXPECT_NE(md.find("## Failed runs"), std::string::npos) << md;
  EXPECT_NE(md.find("- `" + run_path("fm-dense-brainprop-s4") + "`: fashion-mnist dense brainprop "
                    "seed 4, 2 epochs in history.jsonl, nan_loss in epoch 1\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("Runs: 7 runs: 5 finished, 2 failed"), std::string::npos) << md;
  EXPECT_NE(md.find("left out of the means"), std::string::npos) << md;  // the rule, in the notes

  // runs.csv: every run, the unmeasured figures empty.
  std::istringstream csv(report::runs_csv(s));
  std::vector<std::string> lines;
  for (std::string line; std::getline(csv, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0],
            "dir,data,data_spec,model,rule,val,seed,outcome,reason,stop_reason,epochs_run,"
            "best_epoch,best_val_accuracy,test_accuracy");
  EXPECT_EQ(lines.back(), run_path("fm-dense-brainprop-s4") +
                              ",fashion-mnist,fashion-mnist,dense,brainprop,test,4,failed,"
                              "nan_loss in epoch 1,nan_loss,1,,,");
  EXPECT_EQ(lines[1].substr(0, lines[1].find(",0.9")),
            run_path("ebp/fm-dense-ebp-s1") +
                ",fashion-mnist,fashion-mnist,dense,ebp,test,1,finished,,early_stopping,50,5");
}

// A group whose every run failed keeps its table row: n/a for what no run measured, never 0.
TEST_F(ReportTable, AGroupWithOnlyFailedRunsShowsNotMeasured) {
  FakeRun conv = fake_runs()[0];
  conv.rel_dir = "fm-conv-ebp-s1";
  conv.rule = "ebp";
  conv.finished = false;
  write_run(conv, "fashion-mnist", "conv");
  std::ofstream(dir_ / "fm-conv-ebp-s1" / "summary.json") << kNanInEpochOne;
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(report::markdown_row(rows[1]),
            "| fashion-mnist | conv | – | – | n/a | n/a | – | – | n/a | 0 | 1 |");
  const std::string csv = report::table_csv(s);
  // No finished run: nothing measured, every figure an empty field; 1 failed.
  EXPECT_NE(csv.find("\nfashion-mnist,fashion-mnist,conv,ebp,test,0,,,,,,,,,,,1\n"), std::string::npos)
      << csv;
}

// `brainprop sweep` records a run that failed with an error in sweep.json; a run that left no
// directory (its data could not be loaded) is still counted and named.
TEST_F(ReportAggregate, ErrorsRecordedInSweepJsonAreFailedRuns) {
  const nlohmann::json record = {
      {"runs",
       {{{"name", "fm-dense-brainprop-s4"}, {"outcome", "error"}, {"failed", true},
         {"error", "disk full"}},
        {{"name", "mnist-dense-ebp-s1"}, {"dir", run_path("mnist-dense-ebp-s1")},
         {"data", "mnist:/nonexistent"}, {"model", "dense"}, {"rule", "ebp"}, {"seed", 1},
         {"outcome", "error"}, {"failed", true}, {"error", "/nonexistent: no such directory"}},
        {{"name", "fm-dense-brainprop-s1"}, {"outcome", "error"}, {"error", "stale"}},
        {{"name", "fm-dense-brainprop-s2"}, {"outcome", "max_epochs"}, {"failed", false}}}}};
  std::ofstream(dir_ / "sweep.json") << record.dump(2);
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  ASSERT_EQ(s.failed.size(), 2u);
  EXPECT_EQ(s.failed[0].dir, run_path("fm-dense-brainprop-s4"));  // its directory, unfinished
  EXPECT_NE(s.failed[0].reason.find("error (sweep.json): disk full"), std::string::npos) << s.failed[0].reason;
  EXPECT_EQ(s.failed[1].dir, run_path("mnist-dense-ebp-s1"));  // no directory at all
  EXPECT_NE(s.failed[1].reason.find("error (sweep.json): /nonexistent: no such directory"), std::string::npos);
  EXPECT_TRUE(s.unfinished.empty());
  ASSERT_EQ(s.groups.size(), 3u);  // mnist dense ebp, then fashion-mnist dense brainprop and ebp
  EXPECT_EQ(s.groups[0].failed, 1);
  EXPECT_EQ(s.groups[1].runs.size(), 3u);  // s1 finished since its error: counted as finished
  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].data_label, "mnist");  // the paper's order: MNIST first
  EXPECT_EQ(report::markdown_row(rows[0]),
            "| mnist | dense | – | – | n/a | n/a | – | – | n/a | 0 | 1 |");
}

TEST_F(ReportAggregate, MeanAndStdOverSeedsComputedByHand) {
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const report::Group& bp = s.groups[0];
  EXPECT_DOUBLE_EQ(bp.best_epoch.mean, 20);
  EXPECT_DOUBLE_EQ(bp.best_epoch.std, 10);
  EXPECT_NEAR(bp.best_val_accuracy.mean, 0.92, 1e-12);
  EXPECT_NEAR(bp.best_val_accuracy.std, 0.02, 1e-12);
  EXPECT_NEAR(bp.test_accuracy.mean, 0.91, 1e-12);
  EXPECT_NEAR(bp.test_accuracy.std, 0.02, 1e-12);
  const report::Group& ebp = s.groups[1];
  EXPECT_DOUBLE_EQ(ebp.best_epoch.mean, 10);
  EXPECT_DOUBLE_EQ(ebp.best_epoch.std, 5);
  EXPECT_NEAR(ebp.best_val_accuracy.mean, 0.96, 1e-12);
  EXPECT_NEAR(ebp.best_val_accuracy.std, 0.01, 1e-12);
}

TEST_F(ReportAggregate, DuplicateSeedsAreWarnedAbout) {
  FakeRun dup = fake_runs()[0];
  dup.rel_dir = "copy-of-s1";
  write_run(dup, "fashion-mnist", "dense");
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("seed 1 appears in 2 runs"), std::string::npos) << s.warnings[0];
}

// ---- the table ----

TEST_F(ReportTable, MarkdownRowAndRatio) {
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_TRUE(report::epoch_ratio(rows[0]).has_value());
  EXPECT_DOUBLE_EQ(*report::epoch_ratio(rows[0]), 2.0);
  EXPECT_EQ(report::markdown_row(rows[0]),
            "| fashion-mnist | dense | 20 (10) | 92.00 (2.00) | 10 (5) | 96.00 (1.00) | 2.00 | "
            "91.00 (2.00) | 95.00 (1.00) | 3 | 0 |");
  const std::string md = report::markdown_report(s);
  EXPECT_NE(md.find(report::markdown_header()), std::string::npos);
  EXPECT_NE(md.find("--val test"), std::string::npos);  // says test acc coincides then
  EXPECT_NE(md.find("Unfinished runs"), std::string::npos);
  EXPECT_NE(md.find(run_path("fm-dense-brainprop-s4")), std::string::npos);
}

// REINFORCE runs get their own columns beside BrainProp's and EBP's (only when some were run),
// and their own table.csv rows; the seed counts of three rules are "a / b / c" when they differ.
TEST_F(ReportTable, ReinforceRunsGetTheirOwnColumns) {
  write_run({"fm-dense-reinforce-s1", "reinforce", 1, {0.4, 0.6}, true, 2, 0.80, 0.79},
            "fashion-mnist", "dense");
  write_run({"fm-dense-reinforce-s2", "reinforce", 2, {0.5, 0.7}, true, 4, 0.84, 0.83},
            "fashion-mnist", "dense");
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_NE(rows[0].reinforce, nullptr);
  EXPECT_EQ(report::markdown_row(rows[0], true),
            "| fashion-mnist | dense | 20 (10) | 92.00 (2.00) | 10 (5) | 96.00 (1.00) | 2.00 | "
            "91.00 (2.00) | 95.00 (1.00) | 3 (1) | 82.00 (2.83) | 81.00 (2.83) | 3 / 3 / 2 | 0 |");
  const std::string md = report::markdown_report(s);
  EXPECT_NE(md.find(report::markdown_header(true)), std::string::npos) << md;
  EXPECT_NE(md.find("REINFORCE acc %"), std::string::npos) << md;
  EXPECT_NE(report::table_csv(s).find(",dense,reinforce,test,2,1;2,3,"), std::string::npos)
      << report::table_csv(s);
  // A row of REINFORCE runs only still gets the reward figure.
  write_run({"conv-reinforce", "reinforce", 1, {0.4, 0.6}, true, 2, 0.80, 0.79}, "fashion-mnist",
            "conv");
  const Sweep with_conv = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<std::string> figures = report::expected_figures(with_conv);
  EXPECT_NE(std::find(figures.begin(), figures.end(), "fashion-mnist-conv-brainprop_reward.png"),
            figures.end());
}

TEST_F(ReportTable, RowWithOneRuleOnlyAndUnequalSeedCounts) {
  FakeRun only_bp = fake_runs()[0];
  only_bp.rel_dir = "conv-bp";
  write_run(only_bp, "fashion-mnist", "conv");
  fs::remove(dir_ / "ebp" / "fm-dense-ebp-s3" / "summary.json");
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<report::TableRow> rows = report::table_rows(s);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].model, "dense");  // the paper's net order: dense before conv
  EXPECT_EQ(report::markdown_row(rows[0]),
            "| fashion-mnist | dense | 20 (10) | 92.00 (2.00) | 8 (4) | 95.50 (0.71) | 2.67 | "
            "91.00 (2.00) | 94.50 (0.71) | 3 / 2 | 0 |");
  EXPECT_FALSE(report::epoch_ratio(rows[1]).has_value());
  EXPECT_EQ(report::markdown_row(rows[1]),
            "| fashion-mnist | conv | 10 (0) | 90.00 (0.00) | – | – | – | 89.00 (0.00) | – | 1 | 0 |");
}

TEST_F(ReportTable, CsvHasOneUnroundedRowPerRule) {
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  std::istringstream csv(report::table_csv(s));
  std::vector<std::string> lines;
  for (std::string line; std::getline(csv, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "data,data_spec,model,rule,val,seeds,seed_list,best_epoch_mean,best_epoch_std,"
            "best_val_accuracy_mean,best_val_accuracy_std,test_accuracy_mean,test_accuracy_std,"
            "epochs_run_mean,epochs_run_std,epoch_ratio_brainprop_over_ebp,failed");
  EXPECT_EQ(lines[1].substr(0, lines[1].find(",0.9")),
            "fashion-mnist,fashion-mnist,dense,brainprop,test,3,1;2;3,20,10");
  EXPECT_EQ(lines[2].substr(0, lines[2].find(",0.9")),
            "fashion-mnist,fashion-mnist,dense,ebp,test,3,1;2;3,10,5");
  // Unrounded: the fields read back as the exact means.
  std::vector<std::string> f;
  std::stringstream row(lines[1]);
  for (std::string field; std::getline(row, field, ',');) f.push_back(field);
  ASSERT_EQ(f.size(), 17u);
  EXPECT_EQ(std::stod(f[9]), s.groups[0].best_val_accuracy.mean);
  EXPECT_EQ(std::stod(f[10]), s.groups[0].best_val_accuracy.std);
  EXPECT_EQ(std::stod(f[11]), s.groups[0].test_accuracy.mean);
  EXPECT_EQ(std::stod(f[13]), 65);  // epochs_run: best + 45
  EXPECT_EQ(std::stod(f[15]), 2);   // the ratio, on both rows of the pair
  EXPECT_EQ(f[16], "0");            // no failed runs
}

// ---- curves ----

TEST_F(ReportCurves, MeanAtEachEpochIsOverTheSeedsThatReachedIt) {
  const Sweep s = report::aggregate(report::read_sweep(sweep()), sweep());
  const std::vector<report::CurvePoint> curves = report::aggregate_curves(s);
  std::map<int, report::MeanStd> bp_val;
  int ebp_reward_points = 0, bp_reward_points = 0;
  for (const report::CurvePoint& p : curves) {
    if (p.rule == "brainprop" && p.metric == "val_accuracy") bp_val[p.epoch] = p.stats;
    if (p.metric == "reward_rate") ++(p.rule == "ebp" ? ebp_reward_points : bp_reward_points);
  }
  // BrainProp runs of 3, 4 and 5 epochs (the unfinished run is left out).
  ASSERT_EQ(bp_val.size(), 5u);
  EXPECT_EQ(bp_val[1].n, 3);
  EXPECT_NEAR(bp_val[1].mean, 0.3, 1e-12);  // (0.1 + 0.3 + 0.5) / 3
  EXPECT_NEAR(bp_val[1].std, 0.2, 1e-12);
  EXPECT_EQ(bp_val[3].n, 3);
  EXPECT_EQ(bp_val[4].n, 2);
  EXPECT_NEAR(bp_val[4].mean, 0.7, 1e-12);  // (0.6 + 0.8) / 2
  EXPECT_NEAR(bp_val[4].std, std::sqrt(0.02), 1e-12);
  EXPECT_EQ(bp_val[5].n, 1);
  EXPECT_NEAR(bp_val[5].mean, 0.9, 1e-12);
  EXPECT_EQ(bp_val[5].std, 0);
  EXPECT_EQ(bp_reward_points, 5);
  EXPECT_EQ(ebp_reward_points, 0);  // EBP histories have no reward rate

  const std::string csv = report::curves_csv(curves);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "data,model,rule,metric,epoch,mean,std,n");
  EXPECT_NE(csv.find("\nfashion-mnist,dense,brainprop,val_accuracy,5,0.9,0,1\n"),
            std::string::npos);
  const std::string ebp_epoch2 = "\nfashion-mnist,dense,ebp,val_accuracy,2,";
  const size_t at = csv.find(ebp_epoch2);
  ASSERT_NE(at, std::string::npos) << csv;
  std::stringstream fields(csv.substr(at + ebp_epoch2.size(), csv.find('\n', at + 1) - at));
  double mean = 0, sd = 0;
  char comma1 = 0, comma2 = 0;
  int n = 0;
  fields >> mean >> comma1 >> sd >> comma2 >> n;
  EXPECT_DOUBLE_EQ(mean, report::mean_std({0.7, 0.8, 0.9}).mean);  // unrounded
  EXPECT_NEAR(sd, 0.1, 1e-12);
  EXPECT_EQ(n, 3);

  const std::vector<std::string> figures = report::expected_figures(s);
  const std::vector<std::string> expected = {
      "fashion-mnist-dense-val_accuracy.png", "fashion-mnist-dense-brainprop_reward.png",
      "fashion-mnist-dense-val_accuracy.svg", "fashion-mnist-dense-brainprop_reward.svg"};
  EXPECT_EQ(figures, expected);
}

// ---- errors ----

TEST_F(ReportErrors, MalformedSummaryNamesTheFileAndTheReason) {
  const std::string path = run_path("fm-dense-brainprop-s2") + "/summary.json";
  std::ofstream(path) << R"({"best_epoch": 3, "best_val_accuracy": "high"})";
  test::expect_error([&] { report::read_sweep(sweep()); }, path);
  test::expect_error([&] { report::read_sweep(sweep()); }, "\"best_val_accuracy\"");
  std::ofstream(path) << "{not json";
  test::expect_error([&] { report::read_sweep(sweep()); }, path + ": not valid JSON");
  std::ofstream(path) << R"({"best_val_accuracy": 0.9, "test_accuracy": 0.9})";
  test::expect_error([&] { report::read_sweep(sweep()); }, "best_epoch");
}

TEST_F(ReportErrors, MalformedHistoryLineNamesTheFileAndLine) {
  const std::string path = run_path("ebp/fm-dense-ebp-s1") + "/history.jsonl";
  std::ofstream(path, std::ios::app) << "{\"epoch\": 3, \"val_acc\n";
  test::expect_error([&] { report::read_sweep(sweep()); }, path + " line 3: not valid JSON");
  std::ofstream(path) << "{\"epoch\": 1, \"val_accuracy\": 0.5}\n{\"epoch\": 2}\n";
  test::expect_error([&] { report::read_sweep(sweep()); },
                     path + " line 2: no numeric \"val_accuracy\"");
  std::ofstream(path) << "{\"epoch\": 2, \"val_accuracy\": 0.5}\n{\"epoch\": 1, \"val_accuracy\": 0.5}\n";
  test::expect_error([&] { report::read_sweep(sweep()); }, "epoch 1 after epoch 2");
}

TEST_F(ReportErrors, MissingSweepDirectoryAndBadConfig) {
  test::expect_error([&] { report::find_run_dirs(sweep() + "/nope"); },
                     sweep() + "/nope: no such directory");
  const std::string config = run_path("fm-dense-brainprop-s1") + "/config.json";
  std::ofstream(config) << R"({"data": "fashion-mnist", "rule": "brainprop", "seed": 1})";
  test::expect_error([&] { report::read_sweep(sweep()); },
                     config + ": not a brainprop run configuration");
}

// ---- files ----

TEST_F(ReportFiles, WriteReportWritesTheTablesAndCurves) {
  report::ReportFiles files;
  const Sweep s = report::write_report(sweep(), &files);
  EXPECT_EQ(files.report_dir, (dir_ / "report").string());
  const std::string md = slurp(files.table_md);
  EXPECT_NE(md.find(report::markdown_row(report::table_rows(s)[0])), std::string::npos);
  EXPECT_EQ(slurp(files.table_csv), report::table_csv(s));
  EXPECT_EQ(slurp(files.curves_csv), report::curves_csv(report::aggregate_curves(s)));
  // The report directory itself is not mistaken for a run on the next report.
  EXPECT_EQ(report::find_run_dirs(sweep()).size(), 7u);
}

// ---- several directories merged (the shards of a sweep) ----

class ReportMerge : public ReportTest {
 protected:
  // A grid of 2 models x 2 rules x 3 seeds, finished runs with curves of different lengths,
  // written under `root` (relative to the test directory); `keep(i)` picks the runs.
  template <typename Keep>
  void write_grid(const std::string& root, Keep keep) const {
    int i = 0;
    for (const char* model : {"dense", "conv"})
      for (const char* rule : {"brainprop", "ebp"})
        for (unsigned long long seed = 1; seed <= 3; ++seed, ++i) {
          if (!keep(i)) continue;
          FakeRun r;
          r.rel_dir = root + "/fm-" + model + "-" + rule + "-s" + std::to_string(seed);
          r.rule = rule;
          r.seed = seed;
          for (int e = 0; e < 2 + i % 4; ++e) r.val_curve.push_back(0.1 + 0.07 * e + 0.013 * i);
          r.finished = true;
          r.best_epoch = 3 + i;
          r.best_val = 0.8 + 0.011 * i;
          r.test = 0.79 + 0.009 * i;
          write_run(r, "fashion-mnist", model);
        }
  }
  std::string at(const std::string& rel) const { return (dir_ / rel).string(); }
  // table.md, table.csv and curves.csv of a report directory.
  std::vector<std::string> texts(const report::ReportFiles& f) const {
    return {slurp(f.table_md), slurp(f.table_csv), slurp(f.curves_csv)};
  }
};

// `report A B` of a sweep split in two equals `report` of the whole sweep, byte for byte, in
// table.md, table.csv and curves.csv (runs.csv names the directories, which differ).
TEST_F(ReportMerge, ShardsInTwoDirectoriesMakeTheReportOfOneDirectory) {
  write_grid("whole", [](int) { return true; });
  write_grid("shard-a", [](int i) { return i % 3 != 1; });
  write_grid("shard-b", [](int i) { return i % 3 == 1; });
  report::ReportFiles whole, merged;
  const Sweep w = report::write_report(at("whole"), &whole);
  const Sweep m = report::write_report({at("shard-a"), at("shard-b")}, at("merged"), &merged);
  EXPECT_EQ(merged.report_dir, at("merged"));
  ASSERT_EQ(w.groups.size(), 4u);
  ASSERT_EQ(m.groups.size(), 4u);
  for (const report::Group& g : m.groups) EXPECT_EQ(g.runs.size(), 3u);
  EXPECT_TRUE(m.warnings.empty());
  const std::vector<std::string> expected = texts(whole), got = texts(merged);
  EXPECT_EQ(got[0], expected[0]);  // table.md
  EXPECT_EQ(got[1], expected[1]);  // table.csv
  EXPECT_EQ(got[2], expected[2]);  // curves.csv
  EXPECT_EQ(report::run_counts(m), "12 runs: 12 finished, 0 failed, 0 unfinished");
  // runs.csv: the same runs, each in its own directory.
  const std::string runs = slurp(merged.runs_csv);
  EXPECT_NE(runs.find(at("shard-b") + "/fm-dense-brainprop-s2,"), std::string::npos) << runs;
  EXPECT_NE(runs.find(at("shard-a") + "/fm-dense-brainprop-s1,"), std::string::npos) << runs;
}

// A directory given twice, a sweep directory inside another, a run directory given on its own:
// each run directory counts once.
TEST_F(ReportMerge, ARunReachedTwiceCountsOnce) {
  write_grid("whole", [](int) { return true; });
  write_grid("nest", [](int i) { return i < 6; });
  write_grid("nest/inner", [](int i) { return i >= 6; });  // two levels down from nest
  report::ReportFiles whole, merged;
  report::write_report(at("whole"), &whole);
  const Sweep m = report::write_report(
      {at("nest"), at("nest/inner"), at("nest") + "/", at("nest/inner/fm-conv-ebp-s3"),
       at("nest/../nest/inner/fm-conv-ebp-s3")},
      at("merged"), &merged);
  size_t finished = 0;
  for (const report::Group& g : m.groups) finished += g.runs.size();
  EXPECT_EQ(finished, 12u);
  EXPECT_TRUE(m.warnings.empty()) << m.warnings[0];
  EXPECT_EQ(texts(merged), texts(whole));
  // A run directory as the only directory: its report, under it.
  report::ReportFiles one;
  const Sweep single = report::write_report(at("whole/fm-conv-ebp-s3"), &one);
  EXPECT_EQ(one.report_dir, at("whole/fm-conv-ebp-s3/report"));
  ASSERT_EQ(single.groups.size(), 1u);
  EXPECT_EQ(single.groups[0].runs.size(), 1u);
}

// A run reached twice, once through the sweep directory whose sweep.json records its error:
// failed, whichever way it is reached first.
TEST_F(ReportMerge, ARecordedFailureWinsOverUnfinishedWhenReachedTwice) {
  write_grid("sweep", [](int i) { return i < 3; });
  fs::remove(dir_ / "sweep" / "fm-dense-brainprop-s2" / "summary.json");  // unfinished
  const nlohmann::json record = {
      {"runs", {{{"name", "fm-dense-brainprop-s2"}, {"outcome", "error"}, {"error", "killed"}}}}};
  std::ofstream(dir_ / "sweep" / "sweep.json") << record.dump(2);
  for (const std::vector<std::string>& dirs :
       {std::vector<std::string>{at("sweep/fm-dense-brainprop-s2"), at("sweep")},
        std::vector<std::string>{at("sweep"), at("sweep/fm-dense-brainprop-s2")}}) {
    const Sweep m = report::aggregate(report::read_sweeps(dirs));
    EXPECT_TRUE(m.unfinished.empty());
    ASSERT_EQ(m.failed.size(), 1u);
    EXPECT_EQ(m.failed[0].reason, "error (sweep.json): killed");
  }
}

// Two different run directories of the same (data, model, rule, seed), e.g. two shards that both
// ran one grid point: both count, and a warning names both directories.
TEST_F(ReportMerge, TheSameRunInTwoDirectoriesIsWarnedAbout) {
  write_grid("shard-a", [](int i) { return i < 8; });
  write_grid("shard-b", [](int i) { return i >= 5; });  // 5, 6, 7 in both
  const Sweep m = report::aggregate(report::read_sweeps({at("shard-a"), at("shard-b")}));
  ASSERT_EQ(m.warnings.size(), 3u);
  EXPECT_NE(m.warnings[0].find("seed 1 appears in 2 runs (" + at("shard-a") +
                               "/fm-conv-brainprop-s1, " + at("shard-b") +
                               "/fm-conv-brainprop-s1); each counts as a seed"),
            std::string::npos)
      << m.warnings[0];
  EXPECT_NE(report::markdown_report(m).find("## Warnings"), std::string::npos);
}

// The failures each directory's sweep.json records merge too.
TEST_F(ReportMerge, FailuresRecordedInEachSweepJsonMerge) {
  write_grid("shard-a", [](int i) { return i % 2 == 0; });
  write_grid("shard-b", [](int i) { return i % 2 == 1; });
  auto record_error = [&](const std::string& shard, const std::string& name) {
    const nlohmann::json record = {
        {"runs",
         {{{"name", name}, {"data", "mnist:/nonexistent"}, {"model", "dense"}, {"rule", "ebp"},
           {"seed", 1}, {"outcome", "error"}, {"failed", true}, {"error", "no data"}}}}};
    std::ofstream(dir_ / shard / "sweep.json") << record.dump(2);
  };
  record_error("shard-a", "mnist-dense-ebp-s1");
  record_error("shard-b", "mnist-dense-ebp-s2");
  const Sweep m = report::aggregate(report::read_sweeps({at("shard-a"), at("shard-b")}));
  ASSERT_EQ(m.failed.size(), 2u);
  EXPECT_EQ(m.failed[0].dir, at("shard-a/mnist-dense-ebp-s1"));
  EXPECT_EQ(m.failed[1].dir, at("shard-b/mnist-dense-ebp-s2"));
  EXPECT_EQ(m.failed[1].reason, "error (sweep.json): no data");
  EXPECT_EQ(m.groups[0].data_label, "mnist");
  EXPECT_EQ(m.groups[0].failed, 2);
  // Given twice, a recorded failure still counts once.
  EXPECT_EQ(report::aggregate(report::read_sweeps({at("shard-a"), at("shard-a")})).failed.size(), 1u);
}

// ---- figures ----

TEST_F(ReportFigures, MissingPythonIsAReasonNotAnError) {
  report::write_report(sweep());
  ::setenv("BRAINPROP_PYTHON", "/nonexistent/python3", 1);
  const report::PlotResult r = report::plot_figures((dir_ / "report").string());
  ::unsetenv("BRAINPROP_PYTHON");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("no Python with matplotlib"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("/nonexistent/python3: not found"), std::string::npos) << r.reason;
}

TEST_F(ReportFigures, PlotScriptWritesPngAndSvg) {
  if (std::system("python3 -c 'import matplotlib' >/dev/null 2>&1") != 0 &&
      std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import matplotlib "
                    "(apt-get install python3-matplotlib)";
  const Sweep s = report::write_report(sweep());
  const std::string report_dir = (dir_ / "report").string();
  const report::PlotResult r = report::plot_figures(report_dir);
  ASSERT_TRUE(r.ok) << r.reason;
  for (const std::string& name : report::expected_figures(s)) {
    SCOPED_TRACE(name);
    const fs::path p = fs::path(report_dir) / name;
    ASSERT_TRUE(fs::exists(p));
    EXPECT_GT(fs::file_size(p), 1000u);
  }
  const std::string png = slurp(fs::path(report_dir) / "fashion-mnist-dense-val_accuracy.png");
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const std::string svg = slurp(fs::path(report_dir) / "fashion-mnist-dense-val_accuracy.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
}

// Runs with a feedback variant and the update probe's figures in their history.
class ReportProbe : public ReportTest {
 protected:
  void write_probe_run(const std::string& rel, const std::string& rule, unsigned long long seed,
                       double angle, double variance) const {
    const fs::path d = dir_ / rel;
    fs::create_directories(d);
    const nlohmann::json config = {{"data", "mnist"}, {"model", {{"name", "conv"}, {"feedback", "fa"}}},
                                   {"rule", rule},    {"seed", seed},
                                   {"val", "test"},   {"lr", 0.1}};
    std::ofstream(d / "config.json") << config.dump(2) << "\n";
    std::ofstream history(d / "history.jsonl");
    for (int e = 1; e <= 2; ++e) {
      const nlohmann::json probe = {
          {"size", 8}, {"seconds", 0.1}, {"update_angle", angle * e}, {"update_variance", variance * e},
          {"update_norm", 1.0},
          {"layers", {{{"layer", "conv2d1"}, {"update_angle", 2 * angle * e}, {"update_variance", 1.0},
                       {"update_norm", 0.5}, {"feedback_angle", 80.0 / e}},
                      {{"layer", "output"}, {"update_angle", 0.0}, {"update_variance", nullptr},
                       {"update_norm", 0.0}, {"feedback_angle", 70.0}}}}};
      history << nlohmann::json({{"epoch", e}, {"val_accuracy", 0.5}, {"probe", probe}}).dump() << "\n";
    }
    const nlohmann::json summary = {{"best_epoch", 2},         {"best_val_accuracy", 0.5},
                                    {"epochs_run", 2},         {"stop_reason", "max_epochs"},
                                    {"test_accuracy", 0.5},    {"total_seconds", 1.5},
                                    {"val_protocol", "test"}};
    std::ofstream(d / "summary.json") << summary.dump(2) << "\n";
  }
};

TEST_F(ReportProbe, FeedbackVariantsAreRowsAndTheProbeIsTabulatedAndPlotted) {
  write_probe_run("mnist-conv-fa-brainprop-s1", "brainprop", 1, 10.0, 2.0);
  write_probe_run("mnist-conv-fa-brainprop-s2", "brainprop", 2, 20.0, 4.0);
  const Sweep s = report::write_report(sweep());
  bool found = false;
  for (const report::Group& g : s.groups) found = found || (g.model == "conv+fa" && g.rule == "brainprop");
  EXPECT_TRUE(found) << "a fa run is its own row, conv+fa";
  const std::string md = slurp(dir_ / "report" / "table.md");
  // Last epoch: angles 20, 40 -> 30 (14.1); variance 4, 8 -> 6.00 (2.83); first layer 40, 80 -> 60
  // (28.3); W-B angle 40, 40.
  EXPECT_NE(md.find("| mnist | conv+fa | brainprop | 30.0 (14.1) | 6.00 (2.83) | n/a | 60.0 (28.3) | 40.0 (0.0) | 2 |"),
            std::string::npos) << md;
  const std::string curves = slurp(dir_ / "report" / "curves.csv");
  EXPECT_NE(curves.find("mnist,conv+fa,brainprop,update_variance,2,6,"), std::string::npos) << curves;
  EXPECT_NE(curves.find("mnist,conv+fa,brainprop,feedback_angle.conv2d1,1,80,0,2"), std::string::npos);
  EXPECT_EQ(curves.find("update_variance.output"), std::string::npos) << "null figures are not curves";
  const std::vector<std::string> figures = report::expected_figures(s);
  for (const char* name : {"mnist-conv+fa-update_probe.png", "mnist-conv+fa-feedback_angle.svg"})
    EXPECT_NE(std::find(figures.begin(), figures.end(), name), figures.end()) << name;
  EXPECT_EQ(std::find(figures.begin(), figures.end(), "fashion-mnist-dense-update_probe.png"), figures.end());
}

}  // namespace
}  // namespace bp
