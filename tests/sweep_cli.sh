#!/usr/bin/env bash
# Sweeps at scale, end to end: --jobs (child processes; histories independent of the schedule),
# --plan and `sweep status`, --shard K/N (every run exactly once; the shards' report is the
# whole sweep's), a failing child, and Ctrl-C of a parallel sweep. Usage: sweep_cli.sh BRAINPROP
set -uo pipefail
B=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null; rm -rf "$T"' EXIT
source "$HERE/shell_checks.sh"
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "sweep_cli: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"; exit 1
fi
cat > "$T/tiny.json" <<'JSON'
{"name": "tiny", "init_std": 0.05, "layers": [{"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "relu"}]}
JSON
grid=(--data fashion-mnist --models "$T/tiny.json" --seeds 2 --epochs 2 --train-limit 1000 --test-limit 200
      --threads 1 --no-progress)

# --plan: the grid and each run's state, nothing run.
check "--plan --json lists 4 runs not started" bash -c "'$B' sweep ${grid[*]@Q} --out '$T/j2' --jobs 2 --plan --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"counts\"] == {\"not started\": 4}, d; assert len(d[\"runs\"]) == 4'"
check "--plan ran nothing" test ! -e "$T/j2"

# --jobs 2 --threads 1: each run its own process; the same histories and weights as one after
# another on 2 threads (a run's results depend on neither the schedule nor the thread count).
check "sweep --jobs 1 --threads 2" "$B" sweep "${grid[@]}" --threads 2 --out "$T/j1" > "$T/j1.log"
check "sweep --jobs 2" "$B" sweep "${grid[@]}" --out "$T/j2" --jobs 2 > "$T/j2.log"
check "... prints a line per finished run" test "$(grep -c '^\[done\]' "$T/j2.log")" -eq 4
check "... and the sweep's progress" grep -q '^sweep \[####################\] 4/4 runs done' "$T/j2.log"
check "... writes a log per run" test "$(ls "$T/j2/logs" | wc -l)" -eq 4
for run in $(cd "$T/j1" && ls -d fashion-mnist-*); do
  check "$run is the same with --jobs 2 --threads 1" python3 "$HERE/compare_runs.py" "$T/j1/$run" "$T/j2/$run"
done
check "sweep status: 4 done" bash -c "'$B' sweep status '$T/j2' | grep -q '^4 done$'"

# --shard K/N: every run of the grid exactly once, shared directory or separate ones.
for k in 1 2; do
  check "shard $k/2 in a shared directory" "$B" sweep "${grid[@]}" --out "$T/shared" --shard $k/2 > /dev/null
  check "shard $k/2 in its own directory" "$B" sweep "${grid[@]}" --out "$T/own$k" --shard $k/2 > /dev/null
done
check "the shards hold every run once" test "$( (ls -d "$T"/own1/fashion-* "$T"/own2/fashion-*) | xargs -n1 basename | sort | uniq | wc -l)" -eq 4
check "... and no run twice" test "$( (ls -d "$T"/own1/fashion-* "$T"/own2/fashion-*) | wc -l)" -eq 4
check "each shard records its own outcomes" test -s "$T/shared/sweep.shard-1-of-2.json" -a -s "$T/shared/sweep.shard-2-of-2.json"
"$B" report "$T/j1" --no-figures > /dev/null
"$B" report "$T/shared" --no-figures > /dev/null
"$B" report "$T/own1" "$T/own2" --out "$T/merged" --no-figures > /dev/null 2>&1
for f in table.md table.csv curves.csv; do
  check "report of the shared shard directory: $f is the unsharded sweep's" cmp "$T/shared/report/$f" "$T/j1/report/$f"
  check "report of both shard directories: $f is the unsharded sweep's" cmp "$T/merged/$f" "$T/j1/report/$f"
done
check "a bad --shard is refused" test "$(status_of "$B" sweep "${grid[@]}" --out "$T/x" --shard 3/2)" -eq 1
check "... saying why" grep -q -- "--shard K/N needs 1 <= K <= N, got 3/2" "$T/status.out"
check "another grid in the same directory is refused" test "$(status_of "$B" sweep "${grid[@]}" --seeds 3 --out "$T/j2")" -eq 1
check "... naming the directory's own" grep -q "holds another sweep's grid" "$T/status.out"

# A run whose process fails does not take the others down.
check "--jobs 2 with a failing run exits 1" test "$(status_of "$B" sweep --data mnist:/nonexistent,fashion-mnist \
    --models "$T/tiny.json" --rules ebp --seeds 1 --epochs 1 --train-limit 500 --test-limit 200 --threads 1 \
    --no-progress --jobs 2 --out "$T/fail")" -eq 1
check "... listing the failure with its reason" grep -q "^  mnist-nonexistent-tiny-ebp-s1: error: .*/nonexistent" "$T/status.out"
check "... after the other run finished" grep -q '"stop_reason": "max_epochs"' "$T/fail/fashion-mnist-tiny-ebp-s1/summary.json"

# A crash (kill -9) of one run's process takes no other run down; the sweep run again resumes it.
crash=(--data fashion-mnist --models "$T/tiny.json" --seeds 2 --rules ebp --epochs 40 --patience 500 --threads 1 --no-progress)
"$B" sweep "${crash[@]}" --jobs 2 --out "$T/crash" > "$T/crash.log" 2>&1 &
sweep_pid=$!
victim=""
for _ in $(seq 200); do
  victim=$("$B" sweep status "$T/crash" --json 2> /dev/null | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin)["runs"] if r.get("pid") and r["name"].endswith("s1") and r["epochs_done"] >= 2]
print(runs[0]["pid"] if runs else "")' 2> /dev/null)
  [ -n "$victim" ] && break
  sleep 0.1
done
check "found the running child of seed 1" test -n "$victim"
[ -n "$victim" ] && kill -9 "$victim"
wait $sweep_pid
check "a sweep whose child was killed exits 1" test $? -eq 1
check "... naming the signal" grep -q "fashion-mnist-tiny-ebp-s1: error: the run's process ended with killed by signal 9" "$T/crash.log"
check "... while the other run finished" grep -q '"stop_reason": "max_epochs"' "$T/crash/fashion-mnist-tiny-ebp-s2/summary.json"
check "run again, the sweep resumes the killed run and finishes" "$B" sweep "${crash[@]}" --jobs 2 --out "$T/crash" > "$T/crash2.log" 2>&1
check "... from its checkpoint" grep -q "resuming at epoch" "$T/crash/logs/fashion-mnist-tiny-ebp-s1.log"
check "... to 40 epochs" test "$(wc -l < "$T/crash/fashion-mnist-tiny-ebp-s1/history.jsonl")" -eq 40

# Ctrl-C (here SIGTERM: a script's background job ignores SIGINT) checkpoints every running run.
long=(--data fashion-mnist --models "$T/tiny.json" --seeds 2 --rules ebp --epochs 500 --patience 500 --threads 1 --no-progress)
"$B" sweep "${long[@]}" --jobs 2 --out "$T/stop" > "$T/stop.log" 2>&1 &
sweep_pid=$!
for _ in $(seq 200); do
  [ "$(cat "$T"/stop/fashion-mnist-*/history.jsonl 2> /dev/null | wc -l)" -ge 4 ] && break
  sleep 0.1
done
check "a parallel sweep is running both runs" bash -c "'$B' sweep status '$T/stop' | grep -q '^2 running$'"
check "a second sweep on runs in progress is refused" test "$(status_of "$B" sweep "${long[@]}" --jobs 2 --out "$T/stop")" -eq 1
check "... naming the holder" grep -q "in use by another brainprop process (pid [0-9]*); is this sweep (or shard) already running?" "$T/status.out"
kill -TERM $sweep_pid
wait $sweep_pid
check "Ctrl-C: the sweep exits 130" test $? -eq 130
check "... after both runs checkpointed" test "$(grep -l '"interrupted"' "$T"/stop/fashion-mnist-*/summary.json | wc -l)" -eq 2
check "... and they are partial" bash -c "'$B' sweep status '$T/stop' | grep -q '^2 partial$'"

# kill -9 of the sweep itself: its children get SIGTERM (PR_SET_PDEATHSIG) and checkpoint.
"$B" sweep "${long[@]}" --jobs 2 --out "$T/orphans" > /dev/null 2>&1 &
sweep_pid=$!
for _ in $(seq 200); do
  [ "$(cat "$T"/orphans/fashion-mnist-*/history.jsonl 2> /dev/null | wc -l)" -ge 4 ] && break
  sleep 0.1
done
kill -9 $sweep_pid
wait $sweep_pid 2> /dev/null
for _ in $(seq 100); do
  "$B" sweep status "$T/orphans" | grep -q running || break
  sleep 0.1
done
check "kill -9 of the sweep: its runs stop too" bash -c "! '$B' sweep status '$T/orphans' | grep -q running"
check "... each with a checkpoint" test "$(grep -l '"interrupted"' "$T"/orphans/fashion-mnist-*/summary.json | wc -l)" -eq 2

echo "sweep cli: $failures failed"
exit $((failures > 0))
