// `brainprop report`: the paper's tables (Markdown, CSV) and learning curves (curves.csv, and
// PNG/SVG figures through scripts/plot_report.py) from directories of finished runs.
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/report.h"

namespace bp::cli {

namespace {

const char* kReportHelp = R"(usage: brainprop report DIR [DIR ...] [--out REPORT_DIR] [--require-figures] [--no-figures]

Reads every run directory under each DIR (subdirectories up to two levels deep holding
config.json and history.jsonl or summary.json; a DIR that is a run directory itself is that
one run), groups the runs by (data, model, rule) and writes, under REPORT_DIR (by default
DIR/report, for several DIRs the first one's):
  table.md    the paper's table: per (data, model) BrainProp and EBP epochs to the best
              validation accuracy and that accuracy, mean (std) over seeds, the epochs ratio,
              test accuracies and the number of seeds (also printed here)
  table.csv   one row per (data, model, rule), unrounded, accuracies as fractions
  runs.csv    one row per run: directory, outcome (finished, failed, unfinished), reason, figures
  curves.csv  per epoch mean, std and n over the seeds that reached the epoch
  <data>-<model>-val_accuracy.png/.svg       validation accuracy, BrainProp vs EBP
  <data>-<model>-brainprop_reward.png/.svg   BrainProp reward and exploration rates
Several DIRs (the shards of a sweep, `sweep --shard K/N`, in separate directories) make one
report: their runs and the failures their sweep.json files record, merged. A run directory
reached through two DIRs (the same path) counts once; two run directories of the same data,
model, rule and seed count twice and are warned about ("seed S appears in 2 runs"). table.md,
table.csv and curves.csv do not name the DIRs: the merged report of a sweep's shards is the
report of the whole sweep, byte for byte, except where table.md lists failed or unfinished
runs or warnings by their directories (runs.csv lists every run's directory).
Every run is counted and the failed and unfinished ones are named, with their reason (here,
in table.md and in runs.csv). Finished runs make the means and curves. Failed runs (diverged:
stop_reason nan_loss or nonfinite_weights; or an error recorded in DIR/sweep.json) are
counted in the table's failed column and left out of the means and curves. Unfinished runs (no
summary.json yet, or interrupted) are left out of the table. A figure never measured is n/a in
table.md and an empty field in the CSV files, never 0.
The figures need python3 with matplotlib (apt-get install python3-matplotlib); without it
they are skipped with a warning, or, with --require-figures, the command fails.
  --out REPORT_DIR    where to write the report (created); default DIR/report (the first DIR's)
  --require-figures   exit 1 when the figures cannot be made
  --no-figures        write the tables and curves.csv only
environment: BRAINPROP_PYTHON (the Python to use), BRAINPROP_SCRIPTS (where plot_report.py is)
)";

}  // namespace

int run_report(const std::vector<std::string>& argv) {
  const Args args(argv, {"out"}, {"help", "require-figures", "no-figures"});
  if (args.flag("help") || args.positionals().empty()) {
    std::fputs(kReportHelp, args.flag("help") ? stdout : stderr);
    return args.flag("help") ? 0 : 2;
  }
  BP_CHECK(!(args.flag("require-figures") && args.flag("no-figures")),
           "--require-figures and --no-figures contradict each other");
  const std::vector<std::string>& dirs = args.positionals();
  for (const std::string& dir : dirs)
    BP_CHECK(report::is_run_dir(dir) || !report::read_sweep(dir).empty(),
             dir << ": no run directories in it (subdirectories, up to two levels deep, "
                    "holding config.json and history.jsonl or summary.json) and no failed "
                    "runs in its sweep.json");
  BP_CHECK(!args.has("out") || !args.get("out", "").empty(), "--out needs the report directory");
  const std::string report_dir =
      args.get("out", (std::filesystem::path(dirs[0]) / "report").string());
  if (dirs.size() > 1 && !args.has("out"))
    std::fprintf(stderr, "brainprop report: the report of the %zu directories goes to %s (the "
                         "first one's; --out REPORT_DIR to choose)\n",
                 dirs.size(), report_dir.c_str());

  report::ReportFiles files;
  const report::Sweep sweep = report::write_report(dirs, report_dir, &files);
  std::fputs(report::markdown_report(sweep).c_str(), stdout);
  for (const std::string& warning : sweep.warnings)
    std::fprintf(stderr, "brainprop report: warning: %s\n", warning.c_str());
  std::printf("\n%s\n", report::run_counts(sweep).c_str());
  std::printf("wrote %s, %s, %s, %s\n", files.table_md.c_str(), files.table_csv.c_str(),
              files.runs_csv.c_str(), files.curves_csv.c_str());

  if (args.flag("no-figures")) return 0;
  const std::vector<std::string> expected = report::expected_figures(sweep);
  if (expected.empty()) {
    std::printf("no curves to plot\n");
    return 0;
  }
  const report::PlotResult plot = report::plot_figures(files.report_dir);
  std::string missing;
  if (plot.ok)
    for (const std::string& name : expected)
      if (!std::filesystem::exists(std::filesystem::path(files.report_dir) / name))
        missing += " " + name;
  if (plot.ok && missing.empty()) {
    std::printf("figures (%zu files) in %s\n", expected.size(), files.report_dir.c_str());
    return 0;
  }
  const std::string reason =
      plot.ok ? "plot_report.py did not write:" + missing : plot.reason;
  std::fprintf(stderr, "brainprop report: warning: figures skipped: %s\n", reason.c_str());
  if (args.flag("require-figures")) {
    std::fprintf(stderr, "brainprop report: --require-figures: failing\n");
    return 1;
  }
  std::fprintf(stderr,
               "brainprop report: the tables and curves.csv are written; draw the figures later "
               "with: python3 %s/plot_report.py %s\n",
               report::scripts_directory().c_str(), files.report_dir.c_str());
  return 0;
}

}  // namespace bp::cli
