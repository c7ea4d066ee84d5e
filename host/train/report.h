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

struct RunRecord {
  std::string dir;         // the run directory
  std::string data;        // config.json "data": the data set spec
  std::string model;       // config.json "model"."name"
  std::string rule;        // config.json "rule": "brainprop" or "ebp"
  std::string val;         // config.json "val": "test" (the paper's protocol) or "holdout"
  unsigned long long seed = 0;
  std::vector<EpochPoint> history;
  // From summary.json. A run is finished when summary.json exists and its stop_reason is not
  // "interrupted" (an interrupted run writes a summary but can be resumed).
  bool finished = false;
  std::string unfinished_reason;  // why not finished, for the listing
  int best_epoch = 0, epochs_run = 0;
  double best_val_accuracy = 0, test_accuracy = 0;
  std::string stop_reason;
};

// Subdirectories of `sweep_dir` (depth 1 or 2; a run directory's own subdirectories are not
// searched) holding config.json and history.jsonl (or summary.json: a run that diverged in
// its first epoch writes no history line), sorted.
// Throws bp::Error if `sweep_dir` is not a directory.
std::vector<std::string> find_run_dirs(const std::string& sweep_dir);

// Reads one run directory. Throws bp::Error naming the file and the reason on a missing or
// malformed config.json, history.jsonl line or summary.json.
RunRecord read_run(const std::string& dir);

// find_run_dirs + read_run.
std::vector<RunRecord> read_sweep(const std::string& sweep_dir);

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n - 1); 0 when n == 1
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// "51 (19)" with decimals = 0, "98.68 (0.07)" with decimals = 2 (values already scaled).
std::string format_mean_std(double mean, double std, int decimals);

// The finished runs of one (data, model, rule).
struct Group {
  std::string data;        // the data set spec
  std::string data_label;  // a short, file-name-safe name for it (unique within the sweep)
  std::string model, rule;
  std::vector<RunRecord> runs;  // sorted by seed, then directory
  MeanStd best_epoch, best_val_accuracy, test_accuracy, epochs_run;  // accuracies as fractions
  std::string val;  // the validation protocols of the runs, comma-separated ("test")
};

struct Sweep {
  std::string dir;
  std::vector<Group> groups;            // sorted by data label, model, rule
  std::vector<RunRecord> unfinished;    // left out of groups, table and curves; sorted by dir
  std::vector<std::string> warnings;    // duplicate seeds, mixed protocols, ...
};

// Groups the finished runs; lists the unfinished ones.
Sweep aggregate(std::vector<RunRecord> runs, const std::string& sweep_dir = "");

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
};
std::vector<TableRow> table_rows(const Sweep& sweep);

// Ratio of the mean best epochs, BrainProp / EBP; nullopt when either is missing or EBP's is 0.
std::optional<double> epoch_ratio(const TableRow& row);

// The Markdown row of the table (no trailing newline), e.g.
// "| fashion-mnist | dense | 51 (19) | 98.68 (0.07) | 33 (19) | 98.54 (0.16) | 1.55 | ... | 10 |".
std::string markdown_row(const TableRow& row);
// The header and separator lines of the table (two lines, each ending in '\n').
std::string markdown_header();
// The whole table.md: title, table, notes on the columns, the unfinished runs, warnings.
std::string markdown_report(const Sweep& sweep);

// table.csv: one row per (data, model, rule), unrounded, accuracies as fractions.
std::string table_csv(const Sweep& sweep);

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

// Reads the sweep and writes report/table.md, report/table.csv and report/curves.csv under
// `sweep_dir` (the report directory is created). Returns the sweep it read.
struct ReportFiles {
  std::string report_dir, table_md, table_csv, curves_csv;
};
Sweep write_report(const std::string& sweep_dir, ReportFiles* files = nullptr);

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
