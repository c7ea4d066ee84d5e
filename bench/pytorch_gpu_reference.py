#!/usr/bin/env python3
"""Time one PyTorch training step of the paper nets on a CUDA GPU (the engine's GPU reference).

The nets are the PyTorch ports that bench/compare_pytorch_cpu.py times on the CPU: the
bias-free dense net of pytorch_dense_reference.py, and the conv, loccon (locally connected on
F.unfold + torch.bmm) and deep nets of pytorch_paper_nets.py, built from models/*.json. One
step is forward, loss, backward and a plain SGD update, in training mode (dropout on, batch
norm on batch statistics):
  * EBP: softmax cross-entropy, mean over the batch;
  * BrainProp: Max-Boltzmann action selection (greedy with probability 1 - 0.02, else a sample
    of softmax(outputs)), reward r = (s == label), loss mean_b 1/2 (r_b - a_b[s_b])^2, so only
    the selected unit gets a gradient (pytorch_dense_reference.brainprop_loss). The action is
    drawn on the device (two uniforms per sample, the sample by inverse CDF), so a step never
    waits for the host and can be captured in a CUDA graph.

Timing: one checked step (finite loss), --warmup steps, then --repeats runs of --steps steps,
each timed with CUDA events (host clock and synchronize on the CPU); the median over repeats
of the mean ms per step is reported, as `brainprop bench` does. --cuda-graphs captures one
step in a torch.cuda.CUDAGraph and times its replays. One JSON line per configuration on
stdout (keys as `brainprop bench`'s where they mean the same, plus "framework": "pytorch").

Examples:
  python3 bench/pytorch_gpu_reference.py --model dense
  python3 bench/pytorch_gpu_reference.py --config dense --config conv --config loccon:32x32x3:32 \
      --config deep:32x32x3 --config deep:64x64x3:128:200 --math fp32 tf32 --graphs off on
  python3 bench/pytorch_gpu_reference.py --model conv --tf32 --cuda-graphs --json-out r.jsonl
  /usr/bin/python3 bench/pytorch_gpu_reference.py --device cpu --model loccon --batch 4 \
      --steps 2 --repeats 1 --warmup 1            # a quick check without a GPU
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
# Shape parsing and the models' batch sizes are the CPU comparison's (it imports no torch).
from compare_pytorch_cpu import cpu_model, parse_input_shape, reference_batch  # noqa: E402
from compare_pytorch_cpu import git_commit as checkout_commit  # noqa: E402

MODELS = ("dense", "conv", "loccon", "deep")
RULES = ("brainprop", "ebp")
EPSILON = 0.02  # the engine's and the reference's exploration rate
DEFAULT_INPUT = {"dense": (28, 28, 1), "conv": (28, 28, 1), "loccon": (28, 28, 1),
                 "deep": (32, 32, 3)}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_config(text, default_input=None, default_batch=None, default_classes=10):
    """MODEL[:HxWxC[:BATCH[:CLASSES]]] -> dict; empty fields take the defaults."""
    parts = text.split(":")
    model = parts[0]
    if model not in MODELS or len(parts) > 4:
        raise argparse.ArgumentTypeError(
            f"--config expects MODEL[:HxWxC[:BATCH[:CLASSES]]] with MODEL one of "
            f"{', '.join(MODELS)}, got {text!r}")
    shape = parse_input_shape(parts[1]) if len(parts) > 1 and parts[1] else (
        default_input or DEFAULT_INPUT[model])
    batch = int(parts[2]) if len(parts) > 2 and parts[2] else (
        default_batch or reference_batch(model))
    classes = int(parts[3]) if len(parts) > 3 and parts[3] else default_classes
    if batch < 1 or classes < 2:
        raise argparse.ArgumentTypeError(f"--config {text!r}: batch >= 1 and classes >= 2")
    return {"model": model, "input": shape, "batch": batch, "classes": classes}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--model", choices=MODELS, help="one net (default: dense unless --config)")
    p.add_argument("--input", type=parse_input_shape, metavar="HxWxC",
                   help="input shape for --model (default: 28x28x1; deep 32x32x3)")
    p.add_argument("--batch", type=int, help="batch for --model (default: the model's "
                   "reference batch, 128; loccon 32)")
    p.add_argument("--classes", type=int, default=10, help="output units for --model (10)")
    p.add_argument("--config", action="append", default=[], metavar="M[:HxWxC[:B[:C]]]",
                   help="a configuration to time; repeatable (instead of --model ...)")
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    p.add_argument("--math", nargs="+", choices=("fp32", "tf32"), default=None,
                   help="float32 GEMM/convolution mode(s) to time (default: fp32)")
    p.add_argument("--tf32", action="store_true", help="same as --math tf32")
    p.add_argument("--graphs", nargs="+", choices=("off", "on"), default=None,
                   help="time eager steps (off) and/or CUDA-graph replays (on); default off")
    p.add_argument("--cuda-graphs", action="store_true", help="same as --graphs on")
    p.add_argument("--steps", type=int, default=30, help="steps per timed repeat (30)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; median reported (5)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (10)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave cudnn.benchmark off (default: on, cuDNN autotunes each shape)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (--device cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if args.config and (args.model or args.input or args.batch):
        p.error("give either --config ... or --model/--input/--batch, not both")
    try:
        args.configs = ([parse_config(c) for c in args.config] if args.config else
                        [parse_config(args.model or "dense", args.input, args.batch,
                                      args.classes)])
    except (argparse.ArgumentTypeError, ValueError) as e:
        p.error(str(e))
    args.math = list(dict.fromkeys((args.math or (["tf32"] if args.tf32 else ["fp32"])) +
                                   (["tf32"] if args.tf32 and args.math else [])))
    args.graphs = list(dict.fromkeys((args.graphs or (["on"] if args.cuda_graphs else ["off"])) +
                                     (["on"] if args.cuda_graphs and args.graphs else [])))
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    return args


# ------------------------------------------------------------------ torch set-up

def import_torch(args):
    if args.device == "cpu":  # Debian's torch: see compare_pytorch_cpu.py on thread pools
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if args.threads:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    try:
        import torch
    except ImportError:
        sys.exit(f"{sys.executable} cannot import torch")
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    return torch


def _has(obj, name):
    """hasattr that also survives torch.backends.cuda.matmul's AssertionError (torch < 2)."""
    try:
        getattr(obj, name)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not there"
        return False


def set_math(torch, math_mode):
    """float32 matmuls and convolutions in IEEE fp32 or TF32; returns what was set.

    PyTorch >= 2.9 has the fp32_precision settings (the allow_tf32 flags are deprecated and
    must not be mixed with them); older versions have only the flags. Note that cuDNN's
    allow_tf32 defaults to True, so fp32 must switch it off explicitly.
    """
    tf32 = math_mode == "tf32"
    matmul = torch.backends.cuda.matmul
    if _has(matmul, "fp32_precision") and _has(torch.backends.cudnn, "conv"):
        value = "tf32" if tf32 else "ieee"
        try:
            matmul.fp32_precision = value
            torch.backends.cudnn.conv.fp32_precision = value
            return {"matmul.fp32_precision": matmul.fp32_precision,
                    "cudnn.conv.fp32_precision": torch.backends.cudnn.conv.fp32_precision}
        except (AttributeError, RuntimeError, ValueError) as e:  # fall back to the flags
            log(f"fp32_precision not settable ({e}); using allow_tf32")
    matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return {"matmul.allow_tf32": matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}


def select_actions_on_device(torch, outputs, epsilon=EPSILON):
    """Max-Boltzmann with device RNG only: greedy unless u0 < epsilon, else the first unit
    whose softmax CDF reaches u1. No host sync, so it can live in a CUDA graph."""
    with torch.no_grad():
        batch, classes = outputs.shape
        u = torch.rand(2, batch, device=outputs.device)
        greedy = outputs.argmax(dim=1)
        cdf = torch.softmax(outputs, dim=1).cumsum(dim=1)
        sampled = (cdf < u[1].unsqueeze(1)).sum(dim=1).clamp_(max=classes - 1)
        return torch.where(u[0] < epsilon, sampled, greedy)


def build(torch, ref, nets, cfg, device, seed):
    """(net, optimizer, x, labels) on the device; x is HWC for dense (it flattens), else
    NCHW, uniform [0, 1], labels uniform: a step's cost does not depend on the values."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    h, w, c = cfg["input"]
    if cfg["model"] == "dense":
        net = ref.build_dense_net(in_features=h * w * c, classes=cfg["classes"])
        optimizer_of = ref.make_optimizer
        x, labels = ref.synthetic_batch(cfg["batch"], generator=gen, shape=cfg["input"],
                                        classes=cfg["classes"])
    else:
        net = nets.build_net(cfg["model"], cfg["input"], cfg["classes"])
        optimizer_of = nets.make_optimizer  # the model's L2 as weight decay
        x, labels = nets.synthetic_batch(cfg["batch"], cfg["input"], cfg["classes"],
                                         generator=gen)
    net = net.to(device).train()
    return net, optimizer_of(net), x.to(device), labels.to(device)


def make_step(torch, ref, rule, net, optimizer, x, labels):
    def step():
        optimizer.zero_grad(set_to_none=True)
        outputs = net(x)
        if rule == "ebp":
            loss = ref.ebp_loss(outputs, labels)
        else:
            actions = select_actions_on_device(torch, outputs.detach())
            loss = ref.brainprop_loss(outputs, labels, actions)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


def capture_graph(torch, step):
    """Whole-step capture as PyTorch's CUDA-graph notes do it: warm up on a side stream,
    then capture one step; replay() reruns it on the same (static) tensors."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = step()
    return graph, loss


def time_repeats(torch, run_one, steps, repeats, cuda):
    per_repeat = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                run_one()
            end.record()
            end.synchronize()
            per_repeat.append(start.elapsed_time(end) / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                run_one()
            per_repeat.append((time.perf_counter() - t0) * 1000.0 / steps)
    return per_repeat


def time_config(torch, ref, nets, cfg, rule, math_mode, graphs, args, device):
    cuda = device.type == "cuda"
    precision = set_math(torch, math_mode) if cuda else {}
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    net, optimizer, x, labels = build(torch, ref, nets, cfg, device, args.seed)
    step = make_step(torch, ref, rule, net, optimizer, x, labels)
    loss = step().item()  # checked before timing
    if not math.isfinite(loss):
        raise RuntimeError(f"first step gave a non-finite loss ({loss})")
    if graphs == "on":
        graph, graph_loss = capture_graph(torch, step)
        graph.replay()
        torch.cuda.synchronize()
        if not math.isfinite(graph_loss.item()):
            raise RuntimeError("graph replay gave a non-finite loss")
        run_one = graph.replay
    else:
        run_one = step
    for _ in range(args.warmup):
        run_one()
    if cuda:
        torch.cuda.synchronize()
    ms = time_repeats(torch, run_one, args.steps, args.repeats, cuda)
    med = statistics.median(ms)
    record = {
        "framework": "pytorch", "engine": "pytorch",
        "model": cfg["model"], "rule": rule, "backend": device.type,
        "device": torch.cuda.get_device_name(device) if cuda else cpu_model(),
        "batch": cfg["batch"], "math": math_mode, "graphs": graphs == "on",
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
        "input_shape": list(cfg["input"]), "classes": cfg["classes"],
        "ms_per_step_median": round(med, 5), "ms_per_step_min": round(min(ms), 5),
        "images_per_second": round(cfg["batch"] / (med / 1000.0), 1),
        "ms_per_step_repeats": [round(v, 5) for v in ms],
        "first_loss": round(loss, 6), "layout": "NHWC (flattened)" if cfg["model"] == "dense"
        else "NCHW",
    }
    if cuda:
        record["precision"] = precision
        record["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        record["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    del net, optimizer, x, labels, step, run_one
    if graphs == "on":
        del graph
    return record


# ------------------------------------------------------------------ machine

def git_commit():
    """HEAD, or on the device copy (no .git) the COMMIT file bench/fetch_device_debs.sh wrote."""
    head = checkout_commit()
    if head:
        return head
    for commit_file in (REPO_ROOT / "COMMIT", REPO_ROOT / ".device-debs" / "COMMIT"):
        if commit_file.is_file():
            return commit_file.read_text().strip()
    return None


def machine_info(torch, device):
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu": cpu_model(), "cores": os.cpu_count(), "git_commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    gpu=props.name, gpu_memory_mib=props.total_memory // 2**20,
                    multiprocessors=props.multi_processor_count,
                    capability=f"{props.major}.{props.minor}")
    return info


# ------------------------------------------------------------------ main

def main(argv=None):
    args = parse_args(argv)
    torch = import_torch(args)
    import pytorch_dense_reference as ref
    import pytorch_paper_nets as nets
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("torch sees no CUDA device (use --device cpu for a check without a GPU)")
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    elif "on" in args.graphs:
        sys.exit("--cuda-graphs / --graphs on needs a CUDA device")
    machine = machine_info(torch, device)
    log(f"pytorch {machine['torch']} on {machine.get('gpu', machine['cpu'])}")
    failures = 0
    out = open(args.json_out, "a") if args.json_out else None
    for cfg in args.configs:
        for math_mode in (args.math if device.type == "cuda" else ["fp32"]):
            for graphs in args.graphs:
                for rule in args.rules:
                    what = (f"{cfg['model']} {'x'.join(map(str, cfg['input']))} batch "
                            f"{cfg['batch']} classes {cfg['classes']} {rule} {math_mode} "
                            f"graphs {graphs}")
                    try:
                        record = time_config(torch, ref, nets, cfg, rule, math_mode, graphs,
                                             args, device)
                    except Exception as e:  # report, go on with the next configuration
                        failures += 1
                        log(f"FAILED {what}: {type(e).__name__}: {e}")
                        record = {"framework": "pytorch", "model": cfg["model"], "rule": rule,
                                  "batch": cfg["batch"], "math": math_mode,
                                  "graphs": graphs == "on", "input_shape": list(cfg["input"]),
                                  "classes": cfg["classes"],
                                  "error": f"{type(e).__name__}: {e}"[:500]}
                    else:
                        log(f"{what}: {record['ms_per_step_median']:.3f} ms/step, "
                            f"{record['images_per_second']:.0f} img/s")
                    line = json.dumps({**record, "machine": machine})
                    print(line, flush=True)
                    if out:
                        out.write(line + "\n")
                        out.flush()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    if out:
        out.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
