#!/usr/bin/env bash
# The command line on the emulated CUDA device: `brainprop info` names it, and `--backend cuda`
# trains (CUDA graphs and all), evaluates and resumes on it; a sweep placed on it checks its
# runs fit the device memory. Usage: emulated_cli_smoke.sh BRAINPROP
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

# A sweep placed on the (emulated) GPU checks that its runs fit the device's memory first: with
# 64 MiB, two of these runs at once cannot, and the refusal gives the numbers.
sweep=(--data fashion-mnist --models "$T/small.json" --rules brainprop --seeds 2 --train-limit 600
       --test-limit 200 --batch 32 --epochs 1 --no-progress --backend cuda --gpus 0 --jobs 2)
if BRAINPROP_EMU_DEVICE_MEMORY=$((64 << 20)) "$B" sweep "${sweep[@]}" --out "$T/tight" > "$T/tight.log" 2>&1; then
  echo "FAIL: a sweep that cannot fit the GPU ran"; cat "$T/tight.log"; exit 1
fi
grep -q "checking the GPUs' memory before the sweep: GPU 0 .*: 2 concurrent runs need" "$T/tight.log" || { cat "$T/tight.log"; exit 1; }
test ! -e "$T/tight/fashion-mnist-small-brainprop-s1" || { echo "FAIL: a run started"; exit 1; }
"$B" sweep "${sweep[@]}" --out "$T/fits" | tee "$T/fits.log"
grep -q "^memory: GPU 0: 2 runs at once need at most" "$T/fits.log"
test "$(grep -c '^\[done\]' "$T/fits.log")" -eq 2
echo "emulated sweep on the GPU: ok"
