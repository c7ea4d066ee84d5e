#!/usr/bin/env python3
"""Time one training step of a paper net: PyTorch (CPU) vs the brainprop engine.

For each rule (BrainProp, EBP) the PyTorch port of the model (the dense net in
pytorch_dense_reference.py; the conv, loccon and deep nets in
pytorch_paper_nets.py) is timed in-process, and the engine is timed by running
`brainprop bench --model M --rule R --input HxWxC --classes C ... --backend cpu`,
which prints one JSON object. Both use the same model, input shape, classes,
batch, thread count, warm-up, steps and repeats, and report the median over
repeats of the mean ms per step.

Examples:
  python3 bench/compare_pytorch_cpu.py                      # dense net, both engines, 2 threads
  python3 bench/compare_pytorch_cpu.py --model conv --input 32x32x3   # conv net on CIFAR shapes
  python3 bench/compare_pytorch_cpu.py --model loccon       # batch 32, the reference's
  python3 bench/compare_pytorch_cpu.py --skip-brainprop     # PyTorch only
  python3 bench/compare_pytorch_cpu.py --json-out results.jsonl
  python3 bench/compare_pytorch_cpu.py --selfcheck --model deep   # does the port learn?
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CALLER_ENV = dict(os.environ)  # before load_reference() adds torch's settings
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BRAINPROP = REPO_ROOT / "build" / "host" / "brainprop"
MODELS = ("dense", "conv", "loccon", "deep")
# The reference's batch per model, as training.batch_size in models/<model>.json
# (read from there when the file is readable; this table is the fallback).
REFERENCE_BATCH = {"dense": 128, "conv": 128, "loccon": 32, "deep": 128}
ENGINE_KEYS = ("ms_per_step_median", "ms_per_step_min", "images_per_second")
RULES = ("brainprop", "ebp")  # as in pytorch_dense_reference, which needs torch to import


def parse_input_shape(text):
    """'28x28x1' -> (28, 28, 1): height, width, channels, as the engine takes them."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected HxWxC such as 28x28x1, got {text!r}")
    return shape


def reference_batch(model):
    try:
        with open(REPO_ROOT / "models" / f"{model}.json") as f:
            return int(json.load(f)["training"]["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return REFERENCE_BATCH[model]


def shape_text(shape):
    return "x".join(str(d) for d in shape)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--model", choices=MODELS, default="dense",
                   help="net to time (default: dense)")
    p.add_argument("--input", type=parse_input_shape, default=(28, 28, 1), metavar="HxWxC",
                   help="input shape, height x width x channels (default: 28x28x1; "
                        "32x32x3 for CIFAR)")
    p.add_argument("--classes", type=int, default=10, help="output units (default: 10)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both engines")
    p.add_argument("--steps", type=int, default=50, help="training steps per repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median is reported)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before the repeats")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default: the model's reference batch, 128; loccon 32)")
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brainprop", type=Path, default=DEFAULT_BRAINPROP,
                   help=f"engine binary (default: {DEFAULT_BRAINPROP.relative_to(REPO_ROOT)})")
    p.add_argument("--skip-brainprop", action="store_true", help="time PyTorch only")
    p.add_argument("--json-out", type=Path,
                   help="append one JSON line per measurement to this file")
    p.add_argument("--selfcheck", action="store_true",
                   help="check that the PyTorch port of --model has the right shapes and "
                        "learns with both rules (on its own small inputs), then exit")
    args = p.parse_args(argv)
    if args.batch is None:
        args.batch = reference_batch(args.model)
    for name in ("threads", "steps", "repeats", "batch", "classes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    args.rules = list(dict.fromkeys(args.rules))  # each rule once, in the order given
    return args


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ torch

def load_reference(threads, model="dense"):
    """Import torch and the PyTorch ports with thread pools fit for a fair timing.

    Returns (pytorch_dense_reference, pytorch_paper_nets or None for dense).

    Debian's torch runs its own ops on libgomp threads and its GEMMs on
    OpenBLAS's separate pthread pool. With libgomp's default spin-waiting the two
    pools fight for the cores: on 2 cores a step took ~80 ms instead of ~27 ms.
    Both variables are read when the libraries load, hence set before the import;
    values already in the environment win. The engine is run with the caller's
    environment untouched.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))  # default: all cores
    try:
        import torch
    except ImportError:
        sys.exit(f"{sys.executable} cannot import torch; run this script with a Python "
                 "that has PyTorch, e.g. /usr/bin/python3 (Debian's python3-torch).")
    torch.set_num_threads(threads)
    import pytorch_dense_reference as ref
    assert tuple(ref.RULES) == RULES
    nets = None
    if model != "dense":
        import pytorch_paper_nets as nets
    return ref, nets


# ------------------------------------------------------------------ machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit():
    """HEAD of the repo, or None (no git, no commit yet); read-only."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(torch_version):
    # The load average (taken before timing) is recorded because other jobs on
    # a small machine distort CPU timings badly (threads get preempted).
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "torch": torch_version,
        "torch_env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")},
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------ PyTorch

def time_steps(step, x, labels, steps, repeats):
    """Mean ms per step of each repeat."""
    per_repeat = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step(x, labels)
        per_repeat.append((time.perf_counter() - start) * 1000.0 / steps)
    return per_repeat


def measurement(rule, args, ms_per_repeat):
    median = statistics.median(ms_per_repeat)
    return {
        "model": args.model, "rule": rule, "backend": "cpu", "batch": args.batch,
        "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
        "repeats": args.repeats,
        "ms_per_step_median": round(median, 4),
        "ms_per_step_min": round(min(ms_per_repeat), 4),
        "images_per_second": round(args.batch / (median / 1000.0), 1),
        "input_shape": list(args.input), "classes": args.classes,
    }


def build_pytorch(ref, nets, args, gen):
    """(net, optimizer, one fixed batch) of the PyTorch port of args.model.

    The dense net takes HWC images (it flattens them); the others take NCHW,
    PyTorch's native layout. The batch is uniform [0, 1] with random labels:
    the cost of a step does not depend on the values.
    """
    if args.model == "dense":
        h, w, c = args.input
        net = ref.build_dense_net(in_features=h * w * c, classes=args.classes)
        optimizer = ref.make_optimizer(net)
        batch = ref.synthetic_batch(args.batch, generator=gen, shape=args.input,
                                    classes=args.classes)
    else:
        net = nets.build_net(args.model, args.input, args.classes)
        optimizer = nets.make_optimizer(net)  # with the model's L2 as weight decay
        batch = nets.synthetic_batch(args.batch, args.input, args.classes, generator=gen)
    net.train()  # dropout and batch norm as in training, as the engine's bench
    return net, optimizer, batch


def time_pytorch(ref, nets, rule, args):
    ref.torch.manual_seed(args.seed)
    gen = ref.torch.Generator().manual_seed(args.seed)
    net, optimizer, (x, labels) = build_pytorch(ref, nets, args, gen)
    step = ref.make_train_step(rule, net, optimizer, generator=gen)
    # Validate before timing: a step must give a finite loss.
    loss = step(x, labels).item()
    if not math.isfinite(loss):
        raise SystemExit(f"PyTorch {rule} step gave a non-finite loss ({loss})")
    for _ in range(args.warmup):
        step(x, labels)
    ms_per_repeat = time_steps(step, x, labels, args.steps, args.repeats)
    record = measurement(rule, args, ms_per_repeat)
    record.update(engine="pytorch", device=cpu_model(),
                  ms_per_step_repeats=[round(ms, 4) for ms in ms_per_repeat])
    return record


# ------------------------------------------------------------------ engine

def engine_command(binary, rule, args):
    return [str(binary), "bench", "--model", args.model, "--rule", rule,
            "--steps", str(args.steps), "--repeats", str(args.repeats),
            "--warmup", str(args.warmup), "--batch", str(args.batch),
            "--threads", str(args.threads), "--backend", "cpu",
            "--input", shape_text(args.input), "--classes", str(args.classes)]


def check_engine_binary(binary):
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise SystemExit(
            f"brainprop engine not found (or not executable) at {binary}.\n"
            "Build it (cmake -S . -B build && cmake --build build -j), pass "
            "--brainprop PATH, or time PyTorch alone with --skip-brainprop.")


def parse_engine_json(stdout):
    """The last stdout line that starts with '{' is the result."""
    lines = [l for l in stdout.splitlines() if l.lstrip().startswith("{")]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def time_engine(rule, args):
    cmd = engine_command(args.brainprop, rule, args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=CALLER_ENV)
    result = parse_engine_json(proc.stdout) if proc.returncode == 0 else None
    if result is None or any(key not in result for key in ENGINE_KEYS):
        raise SystemExit(
            f"brainprop bench failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout (tail)\n{proc.stdout[-2000:]}\n--- stderr (tail)\n{proc.stderr[-2000:]}")
    expected = {"rule": rule, "model": args.model, "batch": args.batch,
                "input_shape": list(args.input), "classes": args.classes}
    if any(result.get(key) not in (None, want) for key, want in expected.items()):
        raise SystemExit(f"brainprop bench answered for another configuration: {result}")
    result["engine"] = "brainprop"
    return result


# ------------------------------------------------------------------ report

def ratio(num, den):
    return num / den if den else float("nan")


def format_report(records, machine):
    by_key = {(r["rule"], r["engine"]): r for r in records}
    first = records[0]
    lines = [
        f"{first['model']} net, input {shape_text(first['input_shape'])}, "
        f"{first['classes']} classes, batch {first['batch']}, {first['threads']} threads, "
        f"{first['warmup']} warm-up + {first['repeats']} x {first['steps']} steps",
        f"cpu: {machine['cpu']} ({machine['cores']} cores, load {machine['loadavg_1min']}), "
        f"torch {machine['torch']}",
        "",
        f"{'rule':10s} {'engine':10s} {'ms/step med':>12s} {'ms/step min':>12s} {'images/s':>10s}",
    ]
    for r in records:
        lines.append(f"{r['rule']:10s} {r['engine']:10s} {r['ms_per_step_median']:12.2f} "
                     f"{r['ms_per_step_min']:12.2f} {r['images_per_second']:10.0f}")

    speedups = [(rule, ratio(by_key[(rule, "brainprop")]["images_per_second"],
                             by_key[(rule, "pytorch")]["images_per_second"]))
                for rule in RULES
                if (rule, "brainprop") in by_key and (rule, "pytorch") in by_key]
    if speedups:
        lines += ["", "brainprop engine / PyTorch, images/s (>1: engine faster):"]
        lines += [f"  {rule:10s} {s:6.2f}x" for rule, s in speedups]

    engines = sorted({r["engine"] for r in records}, reverse=True)  # pytorch first
    costs = [(e, ratio(by_key[("brainprop", e)]["ms_per_step_median"],
                       by_key[("ebp", e)]["ms_per_step_median"]))
             for e in engines if ("brainprop", e) in by_key and ("ebp", e) in by_key]
    if costs:
        lines += ["", "BrainProp step / EBP step, ms (<1: BrainProp cheaper):"]
        lines += [f"  {engine:10s} {c:6.2f}" for engine, c in costs]
    return "\n".join(lines)


def write_json_lines(path, records, machine):
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps({**r, "machine": machine}) + "\n")


# ------------------------------------------------------------------ main

def warn_if_busy(machine):
    cores = machine["cores_available"] or machine["cores"] or 1
    if machine["loadavg_1min"] > 0.25 * cores:
        log(f"warning: load average {machine['loadavg_1min']} on {cores} cores before "
            "timing; other jobs make the figures noisy and slow")


def main(argv=None):
    args = parse_args(argv)
    ref, nets = load_reference(args.threads, args.model)
    if args.selfcheck:
        if args.model == "dense":
            return 0 if ref.selfcheck(seed=args.seed, log=log) else 1
        return 0 if nets.selfcheck(models=[args.model], seed=args.seed, log=log) else 1

    if not args.skip_brainprop:
        check_engine_binary(args.brainprop)  # fail before spending time on PyTorch
    machine = machine_info(ref.torch.__version__)
    warn_if_busy(machine)
    records = []
    for rule in args.rules:
        log(f"timing PyTorch {args.model} {rule} ...")
        records.append(time_pytorch(ref, nets, rule, args))
        if not args.skip_brainprop:
            log(f"timing brainprop engine {args.model} {rule} ...")
            records.append(time_engine(rule, args))

    print(format_report(records, machine))
    if args.json_out:
        write_json_lines(args.json_out, records, machine)
        log(f"appended {len(records)} JSON lines to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
