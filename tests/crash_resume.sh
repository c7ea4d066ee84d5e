#!/usr/bin/env bash
# A run killed or failing at any instant resumes to exactly the uninterrupted run's history and
# weights (tests/compare_runs.py). Usage: crash_resume.sh BRAINPROP_BINARY MODE
#   renames      SIGKILL at each rename(2) of a run in turn (strace fault injection): every
#                commit step of every epoch, including a kill during the resume itself
#   write-errors fsync(2) fails with EIO at each call in turn (a write error: disk, NFS): the
#                run stops with the error naming the file, and --resume finishes it
#   soak         SIGKILL at random instants (BRAINPROP_SOAK_KILLS, default 12; seed
#                BRAINPROP_SOAK_SEED), each invocation resuming the last, up to a time bound
# Needs strace for the first two and the Fashion-MNIST package (dataset-fashion-mnist).
set -uo pipefail
B=$1
MODE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "crash_resume: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"; exit 1
fi
if [ "$MODE" != soak ] && ! command -v strace > /dev/null; then
  echo "crash_resume: needs strace (apt-get install strace; scripts/install-deps.sh does)"; exit 1
fi

# Small, but with epochs that improve on the best and epochs that do not, a holdout split, and
# enough batches that a random kill lands inside epochs too. (Write errors: 3 epochs, as each
# fsync gets its own run.)
cat > "$T/small.json" <<'JSON'
{"name": "small", "init_std": 0.05,
 "layers": [{"type": "flatten"}, {"type": "dense", "units": 48}, {"type": "relu"},
            {"type": "dense", "units": 24}, {"type": "relu"}],
 "training": {"batch_size": 32, "lr": 0.3}}
JSON
# The soak's run is longer, so that more of its random instants land in training than in loading.
if [ "$MODE" = soak ]; then EPOCHS=${BRAINPROP_CRASH_EPOCHS:-10}; LIMIT=${BRAINPROP_CRASH_TRAIN_LIMIT:-20000}
elif [ "$MODE" = write-errors ]; then EPOCHS=${BRAINPROP_CRASH_EPOCHS:-3}; LIMIT=${BRAINPROP_CRASH_TRAIN_LIMIT:-1500}
else EPOCHS=${BRAINPROP_CRASH_EPOCHS:-6}; LIMIT=${BRAINPROP_CRASH_TRAIN_LIMIT:-1500}; fi
train_cmd() {  # train_cmd DIR: the run, from its start
  echo "$B" train --data fashion-mnist --model "$T/small.json" --rule brainprop --epochs "$EPOCHS" \
    --train-limit "$LIMIT" --test-limit 300 --threads 1 --no-progress --out "$1"
}
continue_cmd() {  # continue_cmd DIR: what a user runs after a crash
  if [ -f "$1/config.json" ]; then echo "$B" train --resume "$1" --no-progress
  else train_cmd "$1"; fi  # died before it wrote anything: start it again
}
finished() { [ -f "$1/summary.json" ] && ! grep -q '"interrupted"' "$1/summary.json"; }

failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
$(train_cmd "$T/reference") > "$T/reference.log" 2>&1 || { cat "$T/reference.log"; echo "FAIL the reference run"; exit 1; }

# Resumes DIR until it is finished (at most 3 attempts), then compares it with the reference.
finish_and_compare() {
  local dir=$1 what=$2 attempt
  for attempt in 1 2 3; do
    finished "$dir" && break
    $(continue_cmd "$dir") >> "$dir.log" 2>&1 || true
  done
  if ! finished "$dir"; then fail "$what: not finished after 3 resumes:"; tail -5 "$dir.log"; return; fi
  if python3 "$HERE/compare_runs.py" "$T/reference" "$dir"; then echo "ok   $what"
  else fail "$what"; tail -5 "$dir.log"; fi
}

# Counts the calls of SYSCALL in an uninterrupted run.
count_calls() {
  strace -f -c -o "$T/count" -e trace="$1" $(train_cmd "$T/count-run") > /dev/null 2>&1
  awk -v s="$1" '$NF == s { print $4 }' "$T/count"
}

case "$MODE" in
  renames)
    n=$(count_calls rename)
    echo "a run renames $n times; killing it at each"
    [ "${n:-0}" -ge 10 ] || fail "expected at least 10 renames, counted '${n:-}'"
    for ((k = 1; k <= n; k++)); do
      dir="$T/kill$k"
      { strace -f -o /dev/null -e trace=rename -e inject=rename:signal=SIGKILL:when=$k \
          $(train_cmd "$dir") > "$dir.log" 2>&1; } 2> /dev/null  # no "Killed" from bash
      rc=$?
      [ $rc -eq 137 ] || { fail "kill at rename $k: exit $rc, expected 137 (SIGKILL)"; continue; }
      # The resume itself is killed at its first rename too, when this rename ends a run's start.
      if [ $k -le 3 ] && [ -f "$dir/last.safetensors" ]; then
        { strace -f -o /dev/null -e trace=rename -e inject=rename:signal=SIGKILL:when=1 \
            $(continue_cmd "$dir") >> "$dir.log" 2>&1; } 2> /dev/null
      fi
      finish_and_compare "$dir" "killed at rename $k of $n"
    done
    ;;
  write-errors)
    n=$(count_calls fsync)
    echo "a run calls fsync $n times; failing each in turn with EIO"
    [ "${n:-0}" -ge 10 ] || fail "expected at least 10 fsyncs, counted '${n:-}'"
    for ((k = 1; k <= n; k++)); do
      dir="$T/eio$k"
      strace -f -o /dev/null -e trace=fsync -e inject=fsync:error=EIO:when=$k \
        $(train_cmd "$dir") > "$dir.log" 2>&1
      rc=$?
      if [ $rc -eq 0 ]; then fail "fsync error $k: exit 0"; continue; fi
      grep -q "Input/output error" "$dir.log" || { fail "fsync error $k: no error message naming EIO:"; tail -3 "$dir.log"; }
      finish_and_compare "$dir" "fsync error at call $k of $n (exit $rc)"
    done
    ;;
  soak)
    kills=${BRAINPROP_SOAK_KILLS:-12}
    seed=${BRAINPROP_SOAK_SEED:-$(date +%s)}
    RANDOM=$seed
    echo "soak: $kills kills at random instants (BRAINPROP_SOAK_SEED=$seed repeats them)"
    start_ns=$(date +%s%N)
    $(train_cmd "$T/timing") > /dev/null 2>&1
    run_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
    dir="$T/soak"
    for ((i = 1; i <= kills; i++)); do
      finished "$dir" && rm -rf "$dir"  # a kill came too late: start a new run
      delay_ms=$(( RANDOM % (run_ms + 1) ))
      $(continue_cmd "$dir") >> "$dir.log" 2>&1 &
      pid=$!
      sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
      kill -9 $pid 2> /dev/null
      wait $pid 2> /dev/null
      echo "  kill $i after $delay_ms ms (a whole run takes $run_ms ms)" >> "$T/soak.kills"
    done
    cat "$T/soak.kills"
    echo "  the run was resumed $(grep -c '^resuming at epoch' "$dir.log") times from a checkpoint"
    finish_and_compare "$dir" "resumed after $kills random kills"
    ;;
  *) echo "unknown mode $MODE (renames, write-errors, soak)"; exit 2 ;;
esac
[ $failures -eq 0 ] && echo "crash_resume $MODE: all passed" || echo "crash_resume $MODE: $failures failed"
[ $failures -eq 0 ]
