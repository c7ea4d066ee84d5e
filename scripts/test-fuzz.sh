#!/usr/bin/env bash
# The fuzz stage (docs/fuzzing.md): builds the libFuzzer targets of the input readers
# (tests/fuzz/, clang, ASan + UBSan) in build-fuzz/, replays every seed of
# tests/fuzz/corpus/ and every kept crash input of tests/fuzz/regressions/, then fuzzes each
# target for SECONDS_PER_TARGET seconds (default 30, or $BRAINPROP_FUZZ_SECONDS), as many at
# once as there are cores, from a scratch copy of its corpus (the repository is not changed).
# Fails if any input crashes a reader, trips a sanitizer, leaks, runs out of memory
# (-rss_limit_mb=2048, which also bounds single allocations) or hangs (-timeout=10), and says
# where the input is and how to reproduce it.
#   bash scripts/test-fuzz.sh [SECONDS_PER_TARGET]
# BRAINPROP_FUZZ_BUILD_DIR overrides build-fuzz/; BRAINPROP_FUZZ_TARGETS="fuzz_idx ..." picks
# targets. 0 seconds replays only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-${BRAINPROP_FUZZ_SECONDS:-30}}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "test-fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2
  exit 2
fi
build=${BRAINPROP_FUZZ_BUILD_DIR:-build-fuzz}
targets=(${BRAINPROP_FUZZ_TARGETS:-fuzz_idx fuzz_cifar fuzz_image_folder fuzz_image_cache fuzz_safetensors fuzz_model_json})
start=$(date +%s)

clangxx=$(command -v clang++ || command -v clang++-14 || true)
clangc=$(command -v clang || command -v clang-14 || true)
if [[ -z $clangxx || -z $clangc ]]; then
  echo "test-fuzz.sh: the fuzz targets need clang and libFuzzer (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
echo "== fuzz: configuring and building $build/ (${#targets[@]} targets)"
if ! cmake -S . -B "$build" -DBRAINPROP_FUZZ=ON -DBRAINPROP_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_C_COMPILER="$clangc" > "$build.configure.log" 2>&1; then
  cat "$build.configure.log" >&2
  exit 1
fi
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"
built=$(date +%s)

build_abs=$(realpath -m "$build")
bin() { echo "$build_abs/tests/fuzz/$1"; }
dict_for() {
  case $1 in fuzz_model_json | fuzz_safetensors) echo "-dict=$root/tests/fuzz/json.dict" ;; esac
}
inputs_of() {  # the committed seed and regression directories of target $1
  local dir
  for dir in "tests/fuzz/corpus/$1" "tests/fuzz/regressions/$1"; do
    [[ -d $dir ]] && echo "$root/$dir"
  done
}

# Scratch space in memory where there is some; the targets' own files go there too (TMPDIR),
# so that a crashed target leaves nothing behind.
scratch=${TMPDIR:-/tmp}
[[ -z ${TMPDIR:-} && -w /dev/shm ]] && scratch=/dev/shm
work=$(mktemp -d "$scratch/brainprop-test-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
artifacts="$build_abs/fuzz-artifacts"

# A failing input: kept under build-fuzz/fuzz-artifacts/, its full report printed (replayed
# without -close_fd_mask, so the harness's own message shows too).
report() {  # target, input, log
  local target=$1 input=$2 log=$3 kept
  mkdir -p "$artifacts/$target"
  kept="$artifacts/$target/$(basename "$input")"
  cp "$input" "$kept"
  echo "---- $target: last lines of its log ($log kept as $artifacts/$target/log)" >&2
  cp "$log" "$artifacts/$target/log"
  grep -v '^brainprop: ' "$log" | tail -n 25 >&2 || true
  echo "---- $target: the input replayed:" >&2
  "$(bin "$target")" -artifact_prefix="$work/" "$kept" 2>&1 | grep -v '^brainprop: note' | tail -n 40 >&2 || true
  echo "FUZZ FAILURE: $target: input kept at $kept" >&2
  echo "  reproduce:  $(bin "$target") $kept" >&2
  echo "  then fix the reader and keep the input: cp $kept tests/fuzz/regressions/$target/<what-it-is>" >&2
}

# 1. Replay: every committed seed and regression input, once each.
echo "== fuzz: replaying tests/fuzz/corpus and tests/fuzz/regressions"
failed=0
for t in "${targets[@]}"; do
  mapfile -t dirs < <(inputs_of "$t")
  log="$work/$t.replay.log"
  if ! "$(bin "$t")" -runs=0 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/" "${dirs[@]}" > "$log" 2>&1; then
    # -runs=0 stops at the first failing file; find it by replaying them one at a time (and
    # the empty input, which libFuzzer runs first over a directory).
    bad=""
    : > "$work/empty-input"
    for f in "$work/empty-input" $(find "${dirs[@]}" -type f | sort); do
      if ! "$(bin "$t")" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/" "$f" > "$work/$t.one.log" 2>&1; then
        bad=$f
        break
      fi
    done
    if [[ -n $bad ]]; then
      report "$t" "$bad" "$log"
    else
      grep -v '^brainprop: ' "$log" | tail -n 25 >&2 || true
      echo "FUZZ FAILURE: $t: the replay of ${dirs[*]} failed, but no input fails alone" >&2
    fi
    failed=1
  else
    echo "   $t: $(find "${dirs[@]}" -type f | wc -l) inputs replayed"
  fi
done
[[ $failed == 0 ]] || exit 1
replayed=$(date +%s)

# 2. Fuzz each target for the given time, nproc at once.
fuzz_one() {
  local t=$1 w="$work/$1" rc=0
  mkdir -p "$w/corpus" "$w/artifacts"
  local dir
  for dir in $(inputs_of "$t"); do find "$dir" -type f -exec cp {} "$w/corpus/" \;; done
  # -close_fd_mask=2: the readers' stderr notes are dropped (libFuzzer's and the sanitizers'
  # reports still come through).
  "$(bin "$t")" $(dict_for "$t") -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$w/artifacts/" "$w/corpus" > "$w/log" 2>&1 || rc=$?
  local runs
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$w/log" | grep -o '[0-9]*$' || echo "?")
  if [[ $rc != 0 ]]; then
    local found
    found=$(find "$w/artifacts" -type f | head -n 1)
    report "$t" "${found:-$w/log}" "$w/log"
    return 1
  fi
  echo "   $t: $runs inputs in ${seconds} s, no failure"
}
if [[ $seconds -gt 0 ]]; then
  echo "== fuzz: ${seconds} s per target, $(nproc) at a time"
  pids=()
  status=0
  running=0
  for t in "${targets[@]}"; do
    fuzz_one "$t" &
    pids+=($!)
    running=$((running + 1))
    if [[ $running -ge $(nproc) ]]; then
      wait -n || status=1
      running=$((running - 1))
    fi
  done
  while [[ $running -gt 0 ]]; do
    wait -n || status=1
    running=$((running - 1))
  done
  [[ $status == 0 ]] || exit 1
fi
end=$(date +%s)
echo "scripts/test-fuzz.sh: all passed in $((end - start)) s (build $((built - start)) s," \
     "replay $((replayed - built)) s, fuzzing $((end - replayed)) s)"
