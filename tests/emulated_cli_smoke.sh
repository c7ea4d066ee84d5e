#!/usr/bin/env bash
# The command line on the emulated CUDA device: `brainprop info` names it, and `--backend cuda`
# trains (CUDA graphs and all), evaluates and resumes on it. Usage: emulated_cli_smoke.sh BRAINPROP
set -euo pipefail
B=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B" info | tee "$T/info"
grep -q "brainprop emulated device" "$T/info"
cat > "$T/small.json" <<'JSON'
{"name": "small", "init_std": 0.05, "layers": [
  {"type": "conv2d", "filters": 4, "kernel": 3, "strides": 2, "padding": "same"}, {"type": "relu"},
  {"type": "batchnorm"}, {"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "relu"}]}
JSON
common=(--data fashion-mnist --model "$T/small.json" --rule brainprop --train-limit 600 --test-limit 200
        --batch 32 --no-progress --backend cuda)
"$B" train "${common[@]}" --epochs 1 --out "$T/run"
"$B" train --resume "$T/run" --epochs 2 --no-progress --backend cuda
test "$(wc -l < "$T/run/history.jsonl")" -eq 2
"$B" eval "$T/run" --backend cuda | tee "$T/eval"
grep -qi "accuracy" "$T/eval"
echo "emulated CLI smoke: ok"
