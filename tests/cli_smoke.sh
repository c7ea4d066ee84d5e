#!/usr/bin/env bash
# End-to-end checks of the brainprop command line: a short real run, its files, eval, resume,
# sweep and report, and clear errors for bad input. Usage: cli_smoke.sh BRAINPROP_BINARY
set -uo pipefail
B=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/shell_checks.sh"

cat > "$T/tiny.json" <<'JSON'
{"name": "tiny", "init_std": 0.05, "layers": [{"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "relu"}]}
JSON
printf '{"name": "broken", "layers": [' > "$T/broken.json"
printf '{"name": "bad", "layers": [{"type": "dense", "units": -3}]}' > "$T/bad.json"
printf '{"name": "dup", "layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "units": 1000}]}' > "$T/dup.json"
printf '{"name": "../../etc/x", "layers": [{"type": "flatten"}]}' > "$T/escape.json"

check "info" bash -c "'$B' info | grep -q '^brainprop '"
fails_with "unknown command" "unknown command" "$B" frobnicate
fails_with "unknown option" "unknown option --epoch" "$B" train --epoch 3
fails_with "broken model JSON names the file" "$T/broken.json: not valid JSON" "$B" train --model "$T/broken.json"
fails_with "bad field names its JSON path" "layers[0].units: must be > 0" "$B" train --model "$T/bad.json"
fails_with "duplicate key names the file and its JSON path" "$T/dup.json: layers[1].units: duplicate key" \
    "$B" train --model "$T/dup.json"
fails_with "model name with a path is refused" "$T/escape.json: name:" "$B" train --model "$T/escape.json"
# Bad option values are refused before any data is read (train and sweep share them).
tiny_train=("$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 1 --threads 1 --no-progress)
fails_with "--train-limit -3" "--train-limit must be >= 1" "${tiny_train[@]}" --train-limit -3 --out "$T/r1"
fails_with "--test-limit 0" "--test-limit must be >= 1" "${tiny_train[@]}" --test-limit 0 --out "$T/r2"
fails_with "--lr nan" "--lr must be a finite number > 0" "${tiny_train[@]}" --lr nan --out "$T/r3"
fails_with "--lr 0" "--lr must be a finite number > 0" "${tiny_train[@]}" --lr 0 --out "$T/r3"
fails_with "--patience -1" "--patience must be >= 0" "${tiny_train[@]}" --patience -1 --out "$T/r4"
fails_with "--seed -1" "--seed expects a non-negative integer" "${tiny_train[@]}" --seed -1 --out "$T/r5"
fails_with "--seed abc" "--seed expects a non-negative integer" "${tiny_train[@]}" --seed abc --out "$T/r5"
fails_with "--out \"\"" "--out needs a directory" "${tiny_train[@]}" --train-limit 100 --test-limit 100 --out ""
fails_with "--epochs with no number" "option --epochs needs a value but got none" \
    "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs --out "$T/r6"
fails_with "sweep --out \"\"" "--out needs the sweep directory" \
    "$B" sweep --data fashion-mnist --models "$T/tiny.json" --seeds 1 --out "" --dry-run
fails_with "sweep --seed-list -1" "--seed-list expects a non-negative integer" \
    "$B" sweep --data fashion-mnist --models "$T/tiny.json" --seed-list 1,-1 --out "$T/s0" --dry-run
check "no run directory was made by a refused command" bash -c "! ls -d '$T'/r? '$T/s0' 2> /dev/null"
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
  fails_with "resume names the options that contradict the run" "--lr 0.5 (the run has 0.1" \
      "$B" train --resume "$run" --lr 0.5 --seed 7 --epochs 3 --threads 1 --no-progress
  fails_with "resume names every contradicting option" "--seed 7 (the run has 1)" \
      "$B" train --resume "$run" --lr 0.5 --seed 7 --epochs 3 --threads 1 --no-progress
  fails_with "resume refuses another --out" "--out $T/elsewhere" \
      "$B" train --resume "$run" --out "$T/elsewhere" --threads 1 --no-progress
  check "history still has 2 epochs" test "$(wc -l < "$run/history.jsonl")" -eq 2
  # The run's own values (and a higher --epochs) are no contradiction.
  check "resume to 3 epochs" "$B" train --resume "$run" --epochs 3 --seed 1 --train-limit 2000 \
      --out "$run" --threads 1 --no-progress
  check "history has 3 epochs" test "$(wc -l < "$run/history.jsonl")" -eq 3
  # The reward-only policy-gradient baseline: its rule round-trips through config.json, its
  # history has the reward columns, its trainer state the baseline, and it resumes.
  rf="$T/reinforce"
  check "train --rule reinforce" "$B" train --data fashion-mnist --model "$T/tiny.json" --rule reinforce \
      --epochs 1 --train-limit 1000 --test-limit 200 --threads 1 --no-progress --out "$rf"
  check "... config.json names the rule" grep -q '"rule": "reinforce"' "$rf/config.json"
  check "... history has the reward rate" grep -q '"reward_rate"' "$rf/history.jsonl"
  check "... the checkpoint holds the baseline" grep -aq 'reinforce_baseline' "$rf/last.safetensors"
  check "... resumes to 2 epochs" "$B" train --resume "$rf" --epochs 2 --threads 1 --no-progress
  check "... history has 2 epochs" test "$(wc -l < "$rf/history.jsonl")" -eq 2
  fails_with "unknown rule lists reinforce" "known: brainprop, ebp, reinforce" \
      "$B" train --data fashion-mnist --model "$T/tiny.json" --rule sarsa --out "$T/r7"
  # A run directory is owned: a new run there is refused with the ways out, and is locked.
  fails_with "--out onto an existing run is refused" "already holds a run" \
      "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 1 --train-limit 200 --test-limit 100 \
      --threads 1 --no-progress --out "$run"
  check "the refused run left the old one alone" test "$(wc -l < "$run/history.jsonl")" -eq 3
  fails_with "--resume with --overwrite is a contradiction" "give one of them" \
      "$B" train --resume "$run" --overwrite --threads 1 --no-progress
  check "a run to replace" "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 1 \
      --train-limit 200 --test-limit 100 --threads 1 --no-progress --out "$T/run2"
  check "--overwrite replaces the run" "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 2 \
      --train-limit 200 --test-limit 100 --threads 1 --no-progress --out "$T/run2" --overwrite
  check "the replaced run has only its own epochs" test "$(wc -l < "$T/run2/history.jsonl")" -eq 2
  # A second process on a run directory in use fails at once, naming the holder.
  "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 500 --patience 500 --threads 1 \
      --no-progress --out "$T/busy" > "$T/busy.log" 2>&1 &
  holder=$!
  for _ in $(seq 100); do [ -s "$T/busy/.lock" ] && break; sleep 0.1; done
  fails_with "a run directory in use is refused naming the holder's pid" "(pid $holder)" \
      "$B" train --data fashion-mnist --model "$T/tiny.json" --epochs 1 --threads 1 --no-progress \
      --out "$T/busy" --overwrite
  for _ in $(seq 100); do [ -s "$T/busy/config.json" ] && break; sleep 0.1; done
  fails_with "a resume of a run in use is refused naming the holder's pid" "(pid $holder)" \
      "$B" train --resume "$T/busy" --threads 1 --no-progress
  # (A background job of a script ignores SIGINT; SIGTERM checkpoints the same way.)
  kill -TERM $holder; wait $holder
  check "the stopped holder's checkpoint resumes" "$B" train --resume "$T/busy" --epochs 1 --threads 1 --no-progress
  check "inspect" bash -c "'$B' inspect --data fashion-mnist | grep -q '\"classes\": 10'"
  check "inspect --memory" bash -c "'$B' inspect --data fashion-mnist --memory --model conv --rule ebp \
      --batch 64 | grep -E '^  (tensors|total) ' | grep -c ' [0-9.]* [MG]iB ' | grep -qx 2"
  fails_with "inspect --model without --memory" "add --memory" "$B" inspect --data fashion-mnist --model conv
  check "sweep" "$B" sweep --data fashion-mnist --models "$T/tiny.json" --seeds 1 --epochs 1 \
      --train-limit 1000 --test-limit 200 --threads 1 --no-progress --out "$T/sweep"
  check "sweep again skips the finished runs" bash -c \
      "'$B' sweep --data fashion-mnist --models '$T/tiny.json' --seeds 1 --epochs 1 --train-limit 1000 --test-limit 200 --out '$T/sweep' --dry-run | grep -c ' done' | grep -q 2"
  check "report" bash -c "'$B' report '$T/sweep' --no-figures > /dev/null && test -s '$T/sweep/report/table.csv'"
  check "report counts the runs" bash -c "'$B' report '$T/sweep' --no-figures | grep -q '^2 runs: 2 finished, 0 failed, 0 unfinished$'"
  # Several directories make one report: the sweep split in two (one run directory each) is the
  # sweep; a directory given twice counts once.
  mkdir -p "$T/shard1" "$T/shard2"
  cp -r "$T"/sweep/*-brainprop-s1 "$T/shard1/"
  cp -r "$T"/sweep/*-ebp-s1 "$T/shard2/"
  check "report of two shard directories" bash -c "'$B' report '$T/shard1' '$T/shard2' --out '$T/merged' --no-figures \
      | grep -q '^2 runs: 2 finished, 0 failed, 0 unfinished$' && test -s '$T/merged/table.csv'"
  for f in table.md table.csv curves.csv; do
    check "... its $f is the whole sweep's" cmp "$T/merged/$f" "$T/sweep/report/$f"
  done
  check "report of a directory given twice counts its runs once" bash -c "'$B' report '$T/sweep' '$T/sweep/' \
      --out '$T/twice' --no-figures | grep -q '^2 runs: 2 finished' && cmp '$T/twice/table.csv' '$T/sweep/report/table.csv'"

  # A figure never measured is null in summary.json and n/a in text: EBP on conv at lr 10 has
  # non-finite weights in epoch 1 (exit status 3).
  nan_run="$T/nan"
  check "a run that diverges in epoch 1 exits 3" test "$(status_of "$B" train --data fashion-mnist \
      --model conv --rule ebp --lr 10 --train-limit 2000 --test-limit 200 --epochs 2 --threads 1 \
      --no-progress --out "$nan_run")" -eq 3
  check "... prints n/a for what it never measured" grep -q "best val_acc n/a (no epoch finished), test_acc n/a" "$T/status.out"
  for figure in test_accuracy best_val_accuracy best_epoch; do
    check "... its summary.json has $figure null" grep -q "\"$figure\": null" "$nan_run/summary.json"
  done

  # A sweep goes on past a run that fails (here: missing data), exits 1 and lists the failure.
  fail_sweep="$T/sweep-fail"
  check "a sweep with a failing run exits 1" test "$(status_of "$B" sweep --data mnist:/nonexistent,fashion-mnist \
      --models "$T/tiny.json" --rules ebp --seeds 1 --epochs 1 --train-limit 500 --test-limit 200 \
      --threads 1 --no-progress --out "$fail_sweep")" -eq 1
  check "... and lists the failed run" grep -q "^  mnist-nonexistent-tiny-ebp-s1: error: /nonexistent" "$T/status.out"
  check "... after finishing the other run" grep -q '"stop_reason": "max_epochs"' "$fail_sweep/fashion-mnist-tiny-ebp-s1/summary.json"
  check "... recording the error in sweep.json" grep -q '"error": "/nonexistent' "$fail_sweep/sweep.json"
  check "report names the failed run" bash -c "'$B' report '$fail_sweep' --no-figures | grep -q \
      '^2 runs: 1 finished, 1 failed (error (sweep.json): /nonexistent.*: $fail_sweep/mnist-nonexistent-tiny-ebp-s1), 0 unfinished$'"
  check "runs.csv lists both runs" test "$(wc -l < "$fail_sweep/report/runs.csv")" -eq 3

  # A diverged run is a result: the sweep lists it as failed, and run again skips it.
  nan_sweep="$T/sweep-nan"
  nan_sweep_cmd=("$B" sweep --data fashion-mnist --models conv --rules ebp --seeds 1 --lr 10 --epochs 2
                 --train-limit 2000 --test-limit 200 --threads 1 --no-progress --out "$nan_sweep")
  check "a sweep with a diverged run exits 1" test "$(status_of "${nan_sweep_cmd[@]}")" -eq 1
  check "... and lists it" grep -q "^  fashion-mnist-conv-ebp-s1: nonfinite_weights$" "$T/status.out"
  check "run again, it exits 1 again" test "$(status_of "${nan_sweep_cmd[@]}")" -eq 1
  check "... skipping the diverged run" bash -c "! grep -qF '[1/1]' '$T/status.out'"
  check "... and still listing it" grep -qF "fashion-mnist-conv-ebp-s1: nonfinite_weights (an earlier sweep's result, not retried)" "$T/status.out"
  check "report lists the diverged run with n/a" bash -c "'$B' report '$nan_sweep' --no-figures > '$T/report.out' && \
      grep -q '1 failed (nonfinite_weights in epoch 1: $nan_sweep/fashion-mnist-conv-ebp-s1)' '$T/report.out' && \
      grep -q '| fashion-mnist | conv | – | – | n/a | n/a | – | – | n/a | 0 | 1 |' '$T/report.out'"
else
  echo "skip training checks: /usr/share/datasets/fashion-mnist is missing (apt-get install dataset-fashion-mnist)"
fi
check "bench prints JSON" bash -c "'$B' bench --model '$T/tiny.json' --rule ebp --steps 2 --repeats 1 --warmup 1 --threads 1 | grep -q images_per_second"

echo "cli smoke: $failures failed"
exit $((failures > 0))
