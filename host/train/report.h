// `brainprop report`: the paper's tables and learning curves from a directory of finished runs.
// Reading run directories (config.json, history.jsonl, summary.json), grouping them by
// (data, model, rule), mean and sample std over seeds, and the Markdown/CSV texts. The texts
// are pure functions of their inputs; read_run/read_sweep/write_report touch the disk.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bp::report {

// One epoch of a run's history.jsonl. A metric the line lacks (reward and exploration rates
// of an EBP run) or holds as null is absent from `metrics`.
struct EpochPoint {
  int epoch = 0;
  std::map<std::string, double> metrics;  // "val_accuracy", "reward_rate", ...
};

// What became of a run. Finished: it stopped by itself (max_epochs, early_stopping).
// Failed: it diverged (stop_reason nan_loss or nonfinite_weights), or the sweep recorded an
// error for it in sweep.json. Unfinished: no summary.json yet (running, killed) or
// interrupted (resumable with `brainprop train --resume` or by rerunning the sweep).
enum class Outcome { Finished, Failed, Unfinished };
const char* outcome_name(Outcome outcome);  // "finished", "failed", "unfinished"

struct RunRecord {
  std::string dir;         // the run directory
  std::string data;        // config.json "data": the data set spec
  std::string model;       // config.json "model"."name"
  std::string rule;        // config.json "rule": "brainprop" or "ebp"
  std::string val;         // config.json "val": "test" (the paper's protocol) or "holdout"
  unsigned long long seed = 0;
  std::vector<EpochPoint> history;
  Outcome outcome = Outcome::Unfinished;
  std::string reason;  // why failed or unfinished, for the listings ("" when finished)
  // From summary.json. A figure never measured (null in summary.json: no finished epoch, an
  // interrupted run's test accuracy) is nullopt, never 0.
  int best_epoch = 0;  // 0: no epoch finished
  int epochs_run = 0;
  std::optional<double> best_val_accuracy, test_accuracy;
  std::string stop_reason;  // "" without summary.json
};

// Subdirectories of `sweep_dir` (depth 1 or 2; a run directory's own subdirectories are not
// searched) holding config.json and history.jsonl (or summary.json: a run that diverged in
// its first epoch writes no history line), sorted.
// Throws bp::Error if `sweep_dir` is not a directory.
std::vector<std::string> find_run_dirs(const std::string& sweep_dir);

// Reads one run directory. Throws bp::Error naming the file and the reason on a missing or
// malformed config.json, history.jsonl line or summary.json.
RunRecord read_run(const std::string& dir);

// find_run_dirs + read_run, and the runs SWEEP_DIR/sweep.json (written by `brainprop sweep`)
// records as failed with an error: a run directory not finished is marked failed with that
// error; a run that left no directory (its data could not be loaded) gets a record of its
// own, with the data, model, rule and seed sweep.json names. Sorted by directory.
std::vector<RunRecord> read_sweep(const std::string& sweep_dir);

// Whether `dir` is a run directory: config.json and history.jsonl (or summary.json).
bool is_run_dir(const std::string& dir);

// The runs of several directories, merged (the shards of a sweep, `brainprop report DIR1
// DIR2 ...`): read_sweep of each, or read_run of a directory that is a run directory itself.
// A run directory reached through two of them (the same canonical path: a directory given
// twice, a sweep directory inside another, a run directory also given on its own) is one
// run, read once (a failure sweep.json records for it wins over "unfinished"). Two different
// run directories of the same (data, model, rule, seed) are two runs: `aggregate` warns about
// the duplicate seed, naming both. Sorted by directory.
std::vector<RunRecord> read_sweeps(const std::vector<std::string>& dirs);

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n - 1); 0 when n == 1
  int n = 0;                 // 0: nothing measured (mean and std mean nothing: "n/a")
};
MeanStd mean_std(const std::vector<double>& values);

// "51 (19)" with decimals = 0, "98.68 (0.07)" with decimals = 2 (values already scaled).
std::string format_mean_std(double mean, double std, int decimals);

// The finished runs of one (data, model, rule), and how many of its runs failed. The means
// are over the finished runs only (a failed run is counted in `failed`, not averaged in), and
// over those that measured the figure (MeanStd::n).
struct Group {
  std::string data;        // the data set spec
  std::string data_label;  // a short, file-name-safe name for it (unique within the sweep)
  std::string model, rule;
  std::vector<RunRecord> runs;  // the finished runs, sorted by seed, then directory
  int failed = 0;               // failed runs of this (data, model, rule): in Sweep::failed
  MeanStd best_epoch, best_val_accuracy, test_accuracy, epochs_run;  // accuracies as fractions
  std::string val;  // the validation protocols of the runs, comma-separated ("test")
};

struct Sweep {
  // The directory (or directories, ", "-separated) the runs were read from. Not in table.md,
  // table.csv or curves.csv: those depend on the runs, not on where they live (the listings of
  // failed and unfinished runs, the warnings and runs.csv name each run's own directory).
  std::string dir;
  std::vector<Group> groups;            // sorted by data label, model, rule
  std::vector<RunRecord> failed;        // counted in their group's `failed`, out of the means
                                        // and curves; sorted by dir
  std::vector<RunRecord> unfinished;    // left out of groups, table and curves; sorted by dir
  std::vector<std::string> warnings;    // duplicate seeds, mixed protocols, ...
};

// Groups the finished runs; counts and lists the failed ones; lists the unfinished ones.
Sweep aggregate(std::vector<RunRecord> runs, const std::string& sweep_dir = "");

// "12 runs: 10 finished, 1 failed (nan_loss in epoch 1: DIR), 1 unfinished (interrupted after
// 2 epochs: DIR)": every run counted, every failed and unfinished one named with its reason.
std::string run_counts(const Sweep& sweep);

// A short data label per data set spec: the spec's prefix ("fashion-mnist" for
// "fashion-mnist" and "fashion-mnist:/data/fm"), with the directory's base name appended when
// the prefix alone would be ambiguous or is "folder"; only [A-Za-z0-9._+-] characters.
std::map<std::string, std::string> data_labels(const std::vector<std::string>& specs);

// Characters outside [A-Za-z0-9._+-] become '_' (plot_report.py does the same).
std::string file_safe(const std::string& name);

// One table row per (data, model): BrainProp and EBP side by side (either may be missing).
// The pointers aim into the Sweep's groups: use rows while that Sweep lives, unchanged.
struct TableRow {
  std::string data_label, model;
  const Group* brainprop = nullptr;
  const Group* ebp = nullptr;
  const Group* reinforce = nullptr;  // the reward-only policy-gradient baseline, when run
};
std::vector<TableRow> table_rows(const Sweep& sweep);

// Ratio of the mean best epochs, BrainProp / EBP; nullopt when either is missing or has no
// measured best epoch, or EBP's is 0.
std::optional<double> epoch_ratio(const TableRow& row);

// The Markdown row of the table (no trailing newline), e.g.
// "| fashion-mnist | dense | 51 (19) | 98.68 (0.07) | 33 (19) | 98.54 (0.16) | 1.55 | ... | 10 | 0 |".
// "–": no runs of that rule; "n/a": runs, but none of them finished and measured the figure.
// With `reinforce` (some row of the sweep has REINFORCE runs) the row has REINFORCE's epochs,
// acc % and test acc % after EBP's test acc %; without, the table is BrainProp vs EBP only.
std::string markdown_row(const TableRow& row, bool reinforce = false);
// The header and separator lines of the table (two lines, each ending in '\n').
std::string markdown_header(bool reinforce = false);
// The whole table.md: title, table, notes on the columns, the run counts, the failed and the
// unfinished runs, warnings. The title does not name the sweep directory: the report of the
// shards of a sweep, merged, is the report of the sweep.
std::string markdown_report(const Sweep& sweep);

// table.csv: one row per (data, model, rule), unrounded, accuracies as fractions; a figure
// no finished run measured is an empty field.
std::string table_csv(const Sweep& sweep);

// runs.csv: one row per run (finished, failed, unfinished), sorted by directory: dir, data,
// data_spec, model, rule, val, seed, outcome, reason, stop_reason, epochs_run, best_epoch,
// best_val_accuracy, test_accuracy. An unmeasured figure is an empty field.
std::string runs_csv(const Sweep& sweep);

// Per (data, model, rule, metric, epoch): mean and std over the runs whose history reaches
// that epoch (and has the metric), and how many that is.
struct CurvePoint {
  std::string data_label, model, rule, metric;
  int epoch = 0;
  MeanStd stats;
};
std::vector<CurvePoint> aggregate_curves(const Sweep& sweep);
// curves.csv: data, model, rule, metric, epoch, mean, std, n (data = the data label).
std::string curves_csv(const std::vector<CurvePoint>& curves);

// The metrics aggregated into curves, in this order (a run contributes those it has).
const std::vector<std::string>& curve_metrics();

// The figure files plot_report.py writes for a sweep, relative to the report directory:
// "<data>-<model>-val_accuracy.{png,svg}" per (data, model), and
// "<data>-<model>-brainprop_reward.{png,svg}" where BrainProp runs have reward rates.
std::vector<std::string> expected_figures(const Sweep& sweep);

// Reads the sweep and writes report/table.md, report/table.csv, report/runs.csv and
// report/curves.csv under `sweep_dir` (the report directory is created). Returns the sweep it
// read.
struct ReportFiles {
  std::string report_dir, table_md, table_csv, runs_csv, curves_csv;
};
Sweep write_report(const std::string& sweep_dir, ReportFiles* files = nullptr);
// The same for the runs of several directories (read_sweeps), written to `report_dir`.
Sweep write_report(const std::vector<std::string>& dirs, const std::string& report_dir,
                   ReportFiles* files = nullptr);

// ---- figures: scripts/plot_report.py draws them from curves.csv ----

// $BRAINPROP_SCRIPTS, or the scripts/ directory of the source tree (BRAINPROP_SCRIPTS_DIR).
std::string scripts_directory();

struct PlotResult {
  bool ok = false;
  std::string python;  // the interpreter used (or tried last)
  std::string reason;  // why no figures were made, when !ok
};
// Runs `PYTHON scripts_directory()/plot_report.py report_dir`, its output passing through.
// PYTHON: $BRAINPROP_PYTHON if set, else the first of python3 and /usr/bin/python3 that can
// import matplotlib. Never throws for a missing Python, matplotlib or script: says why instead.
PlotResult plot_figures(const std::string& report_dir);

// Quotes a field for CSV (RFC 4180) when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);

}  // namespace bp::report
