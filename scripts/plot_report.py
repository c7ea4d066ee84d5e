#!/usr/bin/env python3
"""Draws the figures of `brainprop report` (like Fig. 5 of the BrainProp paper).

usage: plot_report.py REPORT_DIR

Reads REPORT_DIR/curves.csv (written by `brainprop report SWEEP_DIR`; columns data, model,
rule, metric, epoch, mean, std, n) and writes, per (data, model):
  <data>-<model>-val_accuracy.png/.svg      validation accuracy per epoch, mean +- std over
                                            seeds, BrainProp and EBP on one plot, with the
                                            number of seeds that reached each epoch below
  <data>-<model>-brainprop_reward.png/.svg  BrainProp's reward rate and exploration rate per
                                            epoch, mean +- std, in two panels
  <data>-<model>-update_probe.png/.svg      the update probe (--probe): the angle between each
                                            rule's update and the true gradient of its loss,
                                            and the relative per-sample update variance (log
                                            scale), per epoch, one line per rule
  <data>-<model>-feedback_angle.png/.svg    the angle between W and the feedback weights B of
                                            each layer (fa, learned), per epoch
The mean at epoch e is over the seeds whose run reached epoch e (runs stop early at different
epochs), so the curves' tails rest on fewer seeds; the n panel shows how many.

Exit status: 0 done, 2 bad usage or input, 3 matplotlib is missing.
"""
import csv
import os
import re
import sys
from collections import defaultdict

EXIT_BAD_INPUT = 2
EXIT_NO_MATPLOTLIB = 3

RULE_STYLE = {
    "brainprop": ("BrainProp", "#1f77b4"),
    "ebp": ("EBP", "#d62728"),
    "reinforce": ("REINFORCE", "#2ca02c"),
}
RULE_ORDER = ["brainprop", "ebp", "reinforce"]


def file_safe(name):
    """Bytes outside [A-Za-z0-9._+-] become '_' (as bp::report::file_safe does)."""
    return re.sub(rb"[^A-Za-z0-9._+-]", b"_", name.encode("utf-8")).decode("ascii")


def read_curves(path):
    """{(data, model): {rule: {metric: [(epoch, mean, std, n), ...] sorted by epoch}}}"""
    curves = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    order = []  # (data, model) in file order
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"data", "model", "rule", "metric", "epoch", "mean", "std", "n"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                point = (int(row["epoch"]), float(row["mean"]), float(row["std"]), int(row["n"]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path} line {line_no}: {e}") from None
            key = (row["data"], row["model"])
            if key not in curves:
                order.append(key)
            curves[key][row["rule"]][row["metric"]].append(point)
    for by_rule in curves.values():
        for by_metric in by_rule.values():
            for points in by_metric.values():
                points.sort()
    return order, curves


def rules_in(by_rule):
    return [r for r in RULE_ORDER if r in by_rule] + sorted(r for r in by_rule if r not in RULE_ORDER)


def style(rule):
    return RULE_STYLE.get(rule, (rule, None))


def seeds(points):
    return max(p[3] for p in points) if points else 0


def seeds_phrase(counts):
    """'3 seeds' when every rule has the same count, else '3 BrainProp / 2 EBP seeds'."""
    values = set(counts.values())
    if len(values) == 1:
        n = values.pop()
        return f"{n} seed" if n == 1 else f"{n} seeds"
    return " / ".join(f"{n} {style(r)[0]}" for r, n in counts.items()) + " seeds"


def band(ax, points, rule, scale, label):
    """Mean line with a mean +- std band; markers when there are few epochs."""
    epochs = [p[0] for p in points]
    mean = [scale * p[1] for p in points]
    std = [scale * p[2] for p in points]
    name, color = style(rule)
    marker = "o" if len(points) <= 25 else None
    (line,) = ax.plot(epochs, mean, color=color, lw=1.6, marker=marker, ms=3.5, label=label)
    ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    color=line.get_color(), alpha=0.2, lw=0)
    return line


def finish_axes(ax, plt_ticker):
    ax.grid(True, alpha=0.35)
    ax.xaxis.set_major_locator(plt_ticker.MaxNLocator(integer=True))


NOTE = ("mean ± std at each epoch over the seeds whose run reached that epoch "
        "(runs stop at different epochs)")


def plot_val_accuracy(plt, ticker, data, model, by_rule, out_stem):
    rules = [r for r in rules_in(by_rule) if by_rule[r].get("val_accuracy")]
    if not rules:
        return []
    counts = {r: seeds(by_rule[r]["val_accuracy"]) for r in rules}
    fig, (ax, ax_n) = plt.subplots(2, 1, sharex=True, figsize=(7.5, 5.6),
                                   gridspec_kw={"height_ratios": [4, 1], "hspace": 0.08})
    for r in rules:
        points = by_rule[r]["val_accuracy"]
        band(ax, points, r, 100.0, f"{style(r)[0]} ({counts[r]} seed{'s' if counts[r] != 1 else ''})")
        ax_n.step([p[0] for p in points], [p[3] for p in points], where="mid",
                  color=style(r)[1], lw=2.4 if r == rules[0] else 1.4,
                  ls="-" if r == rules[0] else "--", label=style(r)[0])
    ax.set_title(f"{data} {model}: validation accuracy (mean ± std over {seeds_phrase(counts)})",
                 fontsize=11)
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(loc="lower right")
    finish_axes(ax, ticker)
    ax_n.set_ylabel("seeds")
    ax_n.set_xlabel("epoch")
    ax_n.set_ylim(0, max(counts.values()) + 0.5)
    ax_n.yaxis.set_major_locator(ticker.MaxNLocator(integer=True, nbins=4))
    finish_axes(ax_n, ticker)
    fig.text(0.5, 0.005, NOTE, ha="center", va="bottom", fontsize=8, color="0.35")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.13)
    return save(plt, fig, out_stem + "-val_accuracy")


def stacked_bands(plt, ticker, by_rule, rules, panels, scale):
    """One panel per (metric, label, log scale) of `panels`, stacked over a shared epoch axis,
    with a mean ± std band per rule that has the metric (values times `scale`)."""
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(7.5, 2.6 + 2.4 * len(panels)),
                             squeeze=False)
    for ax, (metric, label, log) in zip(axes[:, 0], panels):
        for r in rules:
            points = by_rule[r].get(metric)
            if points:
                n = seeds(points)
                band(ax, points, r, scale, f"{style(r)[0]} ({n} seed{'s' if n != 1 else ''})")
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(label)
        finish_axes(ax, ticker)
    axes[-1, 0].set_xlabel("epoch")
    return fig, axes


REWARD_RULES = ["brainprop", "reinforce"]  # the rules that act and are rewarded


def plot_brainprop_reward(plt, ticker, data, model, by_rule, out_stem):
    # BrainProp's reward and exploration rates, with REINFORCE's beside them when it was run
    # (the file keeps its name).
    rules = [r for r in REWARD_RULES if by_rule.get(r)]
    panels = [(m, t) for m, t in (("reward_rate", "reward rate (%)"),
                                  ("exploration_rate", "exploration rate (%)"))
              if any(by_rule[r].get(m) for r in rules)]
    if not panels:
        return []
    n = max(seeds(by_rule[r][m]) for r in rules for m, _ in panels if by_rule[r].get(m))
    fig, axes = stacked_bands(plt, ticker, by_rule, rules, [(m, t, False) for m, t in panels], 100.0)
    axes[0, 0].legend(loc="lower right")
    what = " and ".join(label.split(" (")[0] for _, label in panels)
    names = " and ".join(RULE_STYLE[r][0] for r in rules)
    fig.suptitle(f"{data} {model}: {names} {what}\n"
                 f"(mean ± std over {n} seed{'s' if n != 1 else ''})", fontsize=11)
    fig.text(0.5, 0.005, "reward rate: share of training trials rewarded; exploration rate: share "
             "whose chosen unit was not the greedy one\n" + NOTE,
             ha="center", va="bottom", fontsize=7.5, color="0.35")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.89, bottom=0.13, hspace=0.1)
    return save(plt, fig, out_stem + "-brainprop_reward")


def plot_update_probe(plt, ticker, data, model, by_rule, out_stem):
    panels = [(m, t, log) for m, t, log in (
        ("update_angle", "update ∠ true gradient (°)", False),
        ("update_variance", "relative update variance", True),
        ("sampling_variance", "action-sampling variance", True))
        if any(by_rule[r].get(m) for r in by_rule)]
    if not panels:
        return []
    rules = [r for r in rules_in(by_rule) if any(by_rule[r].get(m) for m, _, _ in panels)]
    fig, axes = stacked_bands(plt, ticker, by_rule, rules, panels, 1.0)
    axes[0, 0].legend(loc="best")
    fig.suptitle(f"{data} {model}: update probe (mean ± std over seeds)", fontsize=11)
    fig.text(0.5, 0.005, "one probe batch; variance: sum ||u - mean||² / (n-1) / ||mean||² over the "
             "per-sample updates;\nsampling: the same over 8 action draws\n" + NOTE,
             ha="center", va="bottom", fontsize=7.5, color="0.35")
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12, hspace=0.1)
    return save(plt, fig, out_stem + "-update_probe")


def plot_feedback_angle(plt, ticker, data, model, by_rule, out_stem):
    prefix = "feedback_angle."
    lines = [(r, m) for r in rules_in(by_rule) for m in sorted(by_rule[r]) if m.startswith(prefix)]
    if not lines:
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    styles = ["-", "--", ":", "-."]
    rules = [r for r in rules_in(by_rule) if any(rr == r for rr, _ in lines)]
    for r, m in lines:
        points = by_rule[r][m]
        epochs = [p[0] for p in points]
        ax.plot(epochs, [p[1] for p in points], ls=styles[rules.index(r) % len(styles)],
                marker="o" if len(points) <= 25 else None, ms=3,
                label=f"{style(r)[0]} {m[len(prefix):]}")
    ax.set_ylabel("W ∠ B (°)")
    ax.set_xlabel("epoch")
    ax.legend(loc="best", fontsize=8)
    finish_axes(ax, ticker)
    ax.set_title(f"{data} {model}: W ∠ B per layer (mean over seeds)",
                 fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
    return save(plt, fig, out_stem + "-feedback_angle")


def save(plt, fig, stem):
    written = []
    for ext in (".png", ".svg"):
        path = stem + ext
        fig.savefig(path, dpi=150)
        written.append(path)
    plt.close(fig)
    return written


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stdout if len(argv) == 2 else sys.stderr)
        return 0 if len(argv) == 2 else EXIT_BAD_INPUT
    report_dir = argv[1]
    curves_path = os.path.join(report_dir, "curves.csv")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as e:
        print(f"plot_report.py: matplotlib is not available to {sys.executable}: {e} "
              "(Debian: apt-get install python3-matplotlib)", file=sys.stderr)
        return EXIT_NO_MATPLOTLIB
    try:
        order, curves = read_curves(curves_path)
    except (OSError, ValueError) as e:
        print(f"plot_report.py: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    written = []
    for data, model in order:
        stem = os.path.join(report_dir, file_safe(data) + "-" + file_safe(model))
        written += plot_val_accuracy(plt, ticker, data, model, curves[(data, model)], stem)
        written += plot_brainprop_reward(plt, ticker, data, model, curves[(data, model)], stem)
        written += plot_update_probe(plt, ticker, data, model, curves[(data, model)], stem)
        written += plot_feedback_angle(plt, ticker, data, model, curves[(data, model)], stem)
    for path in written:
        print(f"plot_report.py: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
