#!/usr/bin/env python3
"""Checks that a run directory holds exactly what an uninterrupted run's holds: the same history,
summary, trainer state and tensor bytes in last.safetensors and best.safetensors; timings and
how it executed (threads, backend, math mode in the config) aside.
Also that no temporary file or uncommitted best.next.safetensors is left behind.
Usage: compare_runs.py REFERENCE_RUN_DIR RUN_DIR   (exit 1 with the differences)"""
import json
import os
import re
import struct
import sys

TIMINGS = {"seconds", "images_per_second", "total_seconds", "partial_seconds"}
EXECUTION = {"threads", "backend", "math"}


def untimed(record):
    """The record without timings, at any depth (the update probe's "seconds" is nested)."""
    if isinstance(record, dict):
        return {k: untimed(v) for k, v in record.items() if k not in TIMINGS}
    if isinstance(record, list):
        return [untimed(v) for v in record]
    return record


def history(text):
    return [untimed(json.loads(line)) for line in text.splitlines() if line.strip()]


def safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {name: data[base + t["data_offsets"][0]:base + t["data_offsets"][1]]
               for name, t in header.items()}
    if "history" in meta:
        meta["history"] = history(meta["history"])
    if "config" in meta:  # how a run executes may differ; what it computes may not
        meta["config"] = {k: v for k, v in json.loads(meta["config"]).items() if k not in EXECUTION}
    if "trainer_state" in meta:
        meta["trainer_state"] = untimed(json.loads(meta["trainer_state"]))
    return tensors, meta


def main(ref, run):
    problems = []
    with open(os.path.join(ref, "history.jsonl")) as a, open(os.path.join(run, "history.jsonl")) as b:
        ha, hb = history(a.read()), history(b.read())
    if ha != hb:
        problems.append(f"history.jsonl differs: {len(ha)} epochs vs {len(hb)}; first difference at epoch "
                        f"{next((i + 1 for i, (x, y) in enumerate(zip(ha, hb)) if x != y), min(len(ha), len(hb)) + 1)}")
    with open(os.path.join(ref, "summary.json")) as a, open(os.path.join(run, "summary.json")) as b:
        sa, sb = untimed(json.load(a)), untimed(json.load(b))
    if sa != sb:
        problems.append(f"summary.json differs: {sa} vs {sb}")
    for name in ("last.safetensors", "best.safetensors"):
        ta, ma = safetensors(os.path.join(ref, name))
        tb, mb = safetensors(os.path.join(run, name))
        if ta.keys() != tb.keys():
            problems.append(f"{name}: tensors {sorted(ta)} vs {sorted(tb)}")
        for t in sorted(set(ta) & set(tb)):
            if ta[t] != tb[t]:
                problems.append(f"{name}: tensor {t} differs")
        for key in sorted(set(ma) | set(mb)):
            if ma.get(key) != mb.get(key):
                problems.append(f"{name}: metadata {key} differs: {ma.get(key)} vs {mb.get(key)}")
    leftovers = [f for f in os.listdir(run) if re.search(r"\.tmp\.\d+$", f) or f == "best.next.safetensors"]
    if leftovers:
        problems.append(f"left behind: {leftovers}")
    for p in problems:
        print(f"{run}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
