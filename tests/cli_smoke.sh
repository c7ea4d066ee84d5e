#!/usr/bin/env bash
# End-to-end checks of the brainprop command line: a short real run, its files, eval, resume,
# sweep and report, and clear errors for bad input. Usage: cli_smoke.sh BRAINPROP_BINARY
set -uo pipefail
B=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
fails_with() {  # fails_with DESCRIPTION NEEDLE COMMAND...: must exit non-zero, stderr naming NEEDLE
  local what=$1 needle=$2; shift 2
  if "$@" > "$T/out" 2> "$T/err"; then
    echo "FAIL $what (exit 0)"; failures=$((failures + 1))
  elif grep -qF -- "$needle" "$T/err"; then
    echo "ok   $what"
  else
    echo "FAIL $what: stderr lacks '$needle':"; cat "$T/err"; failures=$((failures + 1))
  fi
}

cat > "$T/tiny.json" <<'JSON'
{"name": "tiny", "init_std": 0.05, "layers": [{"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "relu"}]}
JSON
printf '{"name": "broken", "layers": [' > "$T/broken.json"
printf '{"name": "bad", "layers": [{"type": "dense", "units": -3}]}' > "$T/bad.json"

check "info" bash -c "'$B' info | grep -q '^brainprop '"
fails_with "unknown command" "unknown command" "$B" frobnicate
fails_with "unknown option" "unknown option --epoch" "$B" train --epoch 3
fails_with "broken model JSON names the file" "$T/broken.json: not valid JSON" "$B" train --model "$T/broken.json"
fails_with "bad field names its JSON path" "layers[0].units: must be > 0" "$B" train --model "$T/bad.json"
fails_with "missing data directory" "/nonexistent" "$B" train --data mnist:/nonexistent --model "$T/tiny.json"

if [ -d /usr/share/datasets/fashion-mnist ]; then
  run="$T/run"
  check "train 2 epochs" "$B" train --data fashion-mnist --model "$T/tiny.json" --rule brainprop --epochs 2 \
      --train-limit 2000 --test-limit 500 --threads 1 --no-progress --out "$run"
  for f in config.json history.jsonl summary.json best.safetensors last.safetensors; do
    check "run directory has $f" test -s "$run/$f"
  done
  check "history has 2 epochs" test "$(wc -l < "$run/history.jsonl")" -eq 2
  check "eval prints the test accuracy" bash -c "'$B' eval '$run' --threads 1 | grep -q '\"test_accuracy\"'"
  check "resume to 3 epochs" "$B" train --resume "$run" --epochs 3 --threads 1 --no-progress
  check "history has 3 epochs" test "$(wc -l < "$run/history.jsonl")" -eq 3
  check "inspect" bash -c "'$B' inspect --data fashion-mnist | grep -q '\"classes\": 10'"
  check "sweep" "$B" sweep --data fashion-mnist --models "$T/tiny.json" --seeds 1 --epochs 1 \
      --train-limit 1000 --test-limit 200 --threads 1 --no-progress --out "$T/sweep"
  check "sweep again skips the finished runs" bash -c \
      "'$B' sweep --data fashion-mnist --models '$T/tiny.json' --seeds 1 --epochs 1 --train-limit 1000 --test-limit 200 --out '$T/sweep' --dry-run | grep -c ' done' | grep -q 2"
  check "report" bash -c "'$B' report '$T/sweep' --no-figures > /dev/null && test -s '$T/sweep/report/table.csv'"
else
  echo "skip training checks: /usr/share/datasets/fashion-mnist is missing (apt-get install dataset-fashion-mnist)"
fi
check "bench prints JSON" bash -c "'$B' bench --model '$T/tiny.json' --rule ebp --steps 2 --repeats 1 --warmup 1 --threads 1 | grep -q images_per_second"

echo "cli smoke: $failures failed"
exit $((failures > 0))
