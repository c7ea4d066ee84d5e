#!/usr/bin/env python3
"""Throughput of the whole machine with N concurrent training runs (issue #12).

Launches N `brainprop bench` processes at once for each N (default 1 2 4 8), model (conv,
deep) and rule (brainprop, ebp), each with --threads max(1, cores // N) on the CPU or, with
--backend cuda, all on one GPU, and reports per N the machine's images/s two ways:

  sum   the sum of the processes' own steady-state images/s (brainprop bench's
        images_per_second: median over --repeats of --steps steps, after --warmup);
  wall  the images all processes timed, divided by the wall time from launching them to the
        slowest one's exit: includes start-up (net build, synthetic data, warm-up), so it is a
        lower bound that approaches `sum` as --steps grows. With more processes than cores,
        `sum` can over-count: each process times its own steps, and those windows need not
        overlap (one may time while another is still starting), so read `wall` there.

BrainProp and EBP side by side. Writes a Markdown table to stdout and to OUT.md, and every
measurement to OUT.json (the machine, the command, one object per run) and OUT.csv.
Standard library only.

  python3 bench/concurrent_runs.py                          # CPU, build/host/brainprop
  python3 bench/concurrent_runs.py --backend cuda --gpu 0 --models conv
"""
import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUTS = {"dense": "28x28x1", "conv": "28x28x1", "loccon": "28x28x1", "deep": "32x32x3"}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gpu_name(index):
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader",
                              "-i", str(index)], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_group(args, model, rule, n, cores):
    """Starts n bench processes at once; returns their results and the group's wall time."""
    threads = max(1, cores // n) if args.backend == "cpu" else 1
    cmd = [args.brainprop, "bench", "--model", model, "--rule", rule, "--backend", args.backend,
           "--threads", str(threads), "--steps", str(args.steps), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--input", args.input or INPUTS.get(model, "28x28x1")]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.backend == "cuda":
        cmd += ["--math", args.math]
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.child_env)
    if args.backend == "cuda" and args.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=args.timeout)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.monotonic() - t0
    return cmd, threads, results, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainprop", default=os.environ.get("BP", os.path.join(ROOT, "build/host/brainprop")))
    ap.add_argument("--backend", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--gpu", type=int, default=None, help="with --backend cuda: the GPU (CUDA_VISIBLE_DEVICES)")
    ap.add_argument("--math", default="fp32", help="with --backend cuda: fp32 | tf32")
    ap.add_argument("--models", nargs="+", default=["conv", "deep"])
    ap.add_argument("--rules", nargs="+", default=["brainprop", "ebp"])
    ap.add_argument("--ns", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                    help="cores shared out as --threads max(1, cores // N) (default: all)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0, help="0: each model's own (128)")
    ap.add_argument("--input", default="", help="HxWxC for every model (default: conv 28x28x1, deep 32x32x3)")
    ap.add_argument("--child-env", action="append", default=[], metavar="KEY=VALUE",
                    help="set in the bench processes' environment (e.g. their LD_LIBRARY_PATH)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one process may take")
    ap.add_argument("--out", default="concurrent-runs", help="prefix of OUT.md, OUT.json, OUT.csv")
    args = ap.parse_args()
    for kv in args.child_env:
        if "=" not in kv:
            raise SystemExit(f"--child-env {kv}: expected KEY=VALUE")
    if not os.access(args.brainprop, os.X_OK):
        raise SystemExit(f"{args.brainprop}: not an executable (build it, or pass --brainprop / set BP)")

    machine = {"cpu": cpu_model(), "cores": args.cores, "nproc": os.cpu_count(),
               "host": platform.node(), "backend": args.backend,
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if args.backend == "cuda":
        machine["gpu"] = gpu_name(args.gpu or 0)
    rows, records = [], []
    started = time.monotonic()
    for model in args.models:
        for n in args.ns:
            row = {"model": model, "n": n}
            for rule in args.rules:
                cmd, threads, results, wall = run_group(args, model, rule, n, args.cores)
                timed = sum(r["batch"] * r["steps"] * r["repeats"] for r in results)
                total = sum(r["images_per_second"] for r in results)
                row[rule] = {"sum": total, "wall": timed / wall, "threads": threads}
                records.append({"model": model, "rule": rule, "n": n, "threads": threads,
                                "images_per_second_sum": total, "images_per_second_wall": timed / wall,
                                "wall_seconds": wall, "command": cmd, "runs": results})
                print(f"# {model} {rule} N={n} threads={threads}: sum {total:.0f} img/s, "
                      f"wall {timed / wall:.0f} img/s ({wall:.1f} s)", file=sys.stderr, flush=True)
            rows.append(row)
    elapsed = time.monotonic() - started

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = f"{machine['cpu']}, {machine['nproc']} cores (nproc)"
    if args.backend == "cuda":
        where = f"{machine.get('gpu') or 'GPU ' + str(args.gpu or 0)} (one GPU); host {where}"
    lines = [f"Machine: {where}. Backend {args.backend}; {date}; commit {git_commit()}; "
             f"{args.steps} steps x {args.repeats} repeats after {args.warmup} warm-up per process; "
             f"{elapsed:.0f} s in all.", "",
             "img/s of the whole machine: **sum** of the processes' steady-state img/s / "
             "**wall** (images timed / wall time to the slowest exit, start-up included).", ""]
    head = "| model | N | threads/run | " + " | ".join(f"{r} sum | {r} wall" for r in args.rules)
    if len(args.rules) == 2:
        head += f" | {args.rules[0]}/{args.rules[1]} (sum)"
    lines.append(head + " |")
    lines.append("|" + "---|" * (head.count("|")))
    for row in rows:
        cells = [row["model"], str(row["n"]), str(row[args.rules[0]]["threads"])]
        for r in args.rules:
            cells += [f"{row[r]['sum']:.0f}", f"{row[r]['wall']:.0f}"]
        if len(args.rules) == 2:
            cells.append(f"{row[args.rules[0]]['sum'] / row[args.rules[1]]['sum']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    sys.stdout.write(table)
    with open(args.out + ".md", "w") as f:
        f.write(table)
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": machine, "date": date, "commit": git_commit(), "argv": sys.argv,
                   "elapsed_seconds": elapsed, "records": records}, f, indent=1)
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "rule", "n", "threads", "images_per_second_sum", "images_per_second_wall",
                    "wall_seconds"])
        for r in records:
            w.writerow([r["model"], r["rule"], r["n"], r["threads"], f"{r['images_per_second_sum']:.1f}",
                        f"{r['images_per_second_wall']:.1f}", f"{r['wall_seconds']:.2f}"])


if __name__ == "__main__":
    main()
