#!/usr/bin/env bash
# The one script a GPU session runs: builds the CUDA backend, runs the GPU parity suite, a GPU
# training smoke, compute-sanitizer, `brainprop bench` on the paper's nets and the PyTorch
# reference on the same GPU, and prints one Markdown summary at the end.
#
#   device tool:  run  carry [".device-debs"]  command "bash bench/gpu_check.sh"
#                 (make .device-debs first, here: bash bench/fetch_device_debs.sh)
#   GPU server:   bash bench/gpu_check.sh        (our Debian packages installed, no .device-debs)
#
# Results go to $OUT when it is set (the device tool brings back at most 8 files from there),
# else to build-gpu/: gpu-check.log (everything printed), build.log, ctest-gpu.log,
# cli-gpu.log, sanitizer.log, bench-gpu.jsonl (one JSON line per measurement, engine and
# PyTorch) and gpu-check-summary.md (the table printed last).
#
# Every step runs under `timeout` and is recorded as ok / FAIL / TIMEOUT / SKIP, and the
# sanitizer runs as ok / ERRORS (it reported some) / UNSUPPORTED (the tool cannot run here);
# a failed step does not stop the later ones (no `set -e`). The whole run keeps to a time
# budget (BP_GPU_CHECK_BUDGET_S, default 480 s): a step that would not fit in what is left is
# skipped, and the summary is always written. Steps, in order of value when time runs short:
# deps, machine, configure, build, gpu tests, GPU CLI smoke, memcheck (dense, loccon, conv)
# and racecheck (loccon), engine bench, PyTorch reference, the other racecheck/synccheck
# runs, summary.
#
# Knobs (environment): BP_GPU_CHECK_BUDGET_S, BP_BUILD_DIR (build-gpu), BP_DEPS_PREFIX
# (/tmp/bp-deps), BP_CUDA_ARCHS (from nvidia-smi's compute capability, else 90-real),
# BP_BUILD_TIMEOUT_S (330 per build step), BP_BENCH_STEPS/REPEATS/WARMUP (20/3/5), BP_SKIP
# (space-separated step groups to skip: build tests cli memcheck bench pytorch concurrent racecheck;
# "build" configures only, for a dry run), BP_ROOT (the checkout, for a copy of this script),
# BP_JOBS (build jobs; all cores).
#
# Arguments: --build-only (or BP_BUILD_ONLY=1): deps, machine, configure and build, then the
# summary; no GPU step (for proving the build on a machine without a GPU). -h: this text.
# The CUDA toolkit is found by bench/find_cuda_toolkit.sh (sourced; run it alone to see what it
# finds): nvcc, nvvm, crt, the CUDA/cuBLAS/CCCL/NVTX headers, cudart, cuBLAS and cuDNN, from
# PATH, CUDA_HOME/CUDA_PATH, /usr/local/cuda* or any python's nvidia/ wheels; where CMake cannot
# use them as they lie it builds $BP_DEPS_PREFIX/cuda-prefix, a prefix of links, and points
# CMake at it (CMAKE_CUDA_COMPILER, CUDAToolkit_ROOT, CUDNN_ROOT). Its knobs: BP_NVCC,
# BP_CUDA_ROOTS, BP_PYTHON, BP_CUDA_PREFIX (auto | always | never); CUDNN_ROOT, when set, wins.
set -u

BUILD_ONLY=${BP_BUILD_ONLY:-0}
for arg in "$@"; do
  case "$arg" in
    --build-only) BUILD_ONLY=1 ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
cd "${BP_ROOT:-$(dirname "$0")/..}" || exit 1   # BP_ROOT: run a copy of this script on a checkout
FIND_CUDA=$SCRIPT_DIR/find_cuda_toolkit.sh
[ -f "$FIND_CUDA" ] || FIND_CUDA=$(pwd)/bench/find_cuda_toolkit.sh
ROOT=$(pwd)
T0=$(date +%s)
BUDGET_S=${BP_GPU_CHECK_BUDGET_S:-480}
RESERVE_S=12                                   # kept for the summary
BUILD=${BP_BUILD_DIR:-$ROOT/build-gpu}
DEPS=${BP_DEPS_PREFIX:-/tmp/bp-deps}
RESULTS=${OUT:-$BUILD}
JOBS=${BP_JOBS:-$(nproc 2>/dev/null || echo 16)}
BENCH_STEPS=${BP_BENCH_STEPS:-20}
BENCH_REPEATS=${BP_BENCH_REPEATS:-3}
BENCH_WARMUP=${BP_BENCH_WARMUP:-5}
SKIP=" ${BP_SKIP:-} "
ARCH_TRIPLET=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
mkdir -p "$BUILD" "$RESULTS"
JSONL=$RESULTS/bench-gpu.jsonl
STEPS_TSV=$BUILD/gpu-check-steps.tsv
: > "$STEPS_TSV"
touch "$JSONL"   # appended to; the summary reads only this run's lines
JSONL_START=$(wc -l < "$JSONL")
rm -f "$RESULTS/sanitizer.log" "$RESULTS/cli-gpu.log"
# An ignored build folder in a git checkout (idempotent; absent .git: nothing to do).
if [ -d .git ] && ! grep -qxF '/build-gpu/' .git/info/exclude 2>/dev/null; then
  mkdir -p .git/info && echo '/build-gpu/' >> .git/info/exclude
fi

STEP_NOTE=""
GPU_TESTS_BUILT=0
main() {
  exec 3>&1   # record() writes here, also from steps whose output goes to a log file
  section "brainprop GPU check"
  echo "started $(date -u '+%Y-%m-%dT%H:%M:%SZ'), budget ${BUDGET_S}s, ${JOBS} cores, results in $RESULTS"
  step_deps
  step_machine
  BUILT=0
  if step_configure && ! skipped build build && step_build; then BUILT=1; fi
  if (( BUILD_ONLY )); then
    echo "--build-only: no GPU step"
    for s in "gpu tests" "GPU CLI smoke" compute-sanitizer "engine bench" "pytorch reference" \
             "concurrent runs"; do
      record "$s" SKIP 0 "--build-only"
    done
  elif (( BUILT )) && [ -x "$BP" ]; then
    step_tests
    step_cli
    step_sanitizer first    # memcheck on three nets, racecheck on our own shared-memory kernels
    step_bench
    step_pytorch
    step_concurrent         # images/s of the GPU with 1, 2, 4, 8 conv runs at once
    step_sanitizer more     # racecheck and synccheck on the rest, if time is left
  else
    for s in "gpu tests" "GPU CLI smoke" compute-sanitizer "engine bench"; do
      record "$s" SKIP 0 "not built"
    done
    step_pytorch   # the reference needs no build
  fi
  step_summary
  # Exit status: 1 when a step failed, timed out or a sanitizer reported errors.
  ! grep -qE $'\t(FAIL|TIMEOUT|ERRORS)\t' "$STEPS_TSV"
}

# ---------------------------------------------------------------- helpers

section() { printf '\n==================== %s  [t=%ss]\n' "$1" "$(( $(date +%s) - T0 ))"; }
left() { echo $(( BUDGET_S - ($(date +%s) - T0) - RESERVE_S )); }
record() {  # record NAME STATUS SECONDS NOTE
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> "$STEPS_TSV"
  printf -- '--> %s: %s (%ss) %s\n' "$1" "$2" "$3" "${4:-}" >&3
}
skipped() {  # skipped GROUP NAME: true (and recorded) when BP_SKIP names the group
  case "$SKIP" in *" $1 "*) record "$2" SKIP 0 "BP_SKIP"; return 0 ;; esac
  return 1
}
# run_step NAME LIMIT_S MIN_S CMD...: runs CMD under timeout (at most LIMIT_S, less when the
# budget is short; skipped when under MIN_S is left), records the outcome, returns CMD's status.
run_step() {
  local name=$1 limit=$2 min=$3; shift 3
  local remaining; remaining=$(left)
  if (( remaining < min )); then
    record "$name" SKIP 0 "time budget: ${remaining}s left, needs ${min}s"
    STEP_NOTE=""
    return 99
  fi
  (( limit > remaining )) && limit=$remaining
  local t; t=$(date +%s)
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  local dt=$(( $(date +%s) - t ))
  if (( rc == 0 )); then record "$name" ok "$dt" "${STEP_NOTE:-}"
  elif (( rc == 124 || rc == 137 )); then record "$name" TIMEOUT "$dt" "killed after ${limit}s"
  else record "$name" FAIL "$dt" "exit $rc${STEP_NOTE:+; $STEP_NOTE}"
  fi
  STEP_NOTE=""
  return $rc
}

# ---------------------------------------------------------------- a. dependencies

step_deps() {
  section "dependencies"
  local t; t=$(date +%s)
  ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  local debs=("$ROOT"/.device-debs/*.deb)
  local note
  if [ -e "${debs[0]}" ]; then
    rm -rf "$DEPS" && mkdir -p "$DEPS/runtime"
    local f dest pkg bad=0
    for f in "${debs[@]}"; do
      # Plain run-time libraries go to a side prefix: in $DEPS/usr/lib they would sit on the
      # build's RUNPATH and shadow the machine's own (newer) libgomp, libz.
      pkg=$(basename "$f"); pkg=${pkg%%_*}
      case "$pkg" in libgfortran5|libquadmath0|libgomp1|zlib1g) dest=$DEPS/runtime ;; *) dest=$DEPS ;; esac
      if command -v dpkg >/dev/null; then
        dpkg -x "$f" "$dest" || { echo "dpkg -x failed: $f"; bad=1; }
      else  # no dpkg: a .deb is an ar archive holding data.tar.*
        local x; x=$(mktemp -d)
        (cd "$x" && ar x "$f" && tar -xf data.tar.* -C "$dest") || { echo "unpack failed: $f"; bad=1; }
        rm -rf "$x"
      fi
    done
    # Absolute links (zlib1g-dev's libz.so -> /lib/...) point into the prefixes instead.
    local l target
    while IFS= read -r l; do
      target=$(readlink "$l")
      if [ -e "$DEPS$target" ]; then ln -sfn "$DEPS$target" "$l"
      elif [ -e "$DEPS/runtime$target" ]; then ln -sfn "$DEPS/runtime$target" "$l"
      fi
    done < <(find "$DEPS" -type l -lname '/*')
    # Run-time libraries the machine lacks (libgfortran for OpenBLAS, say) are linked into
    # one fallback folder; those it has stay the system's (no shadowing of newer ones).
    mkdir -p "$DEPS/fallback-lib"
    local ldconfig; ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    local so found missing=()
    for so in libgfortran.so.5 libquadmath.so.0 libgomp.so.1 libz.so.1 libturbojpeg.so.0; do
      if "$ldconfig" -p 2>/dev/null | grep -qE "^[[:space:]]*${so//./\\.} " \
         || ls /lib/"$ARCH_TRIPLET"/$so /usr/lib/"$ARCH_TRIPLET"/$so /usr/lib64/$so >/dev/null 2>&1; then
        continue
      fi
      found=$(find "$DEPS/runtime" "$DEPS/usr" -name "$so" | head -1)
      [ -n "$found" ] && ln -sfn "$found" "$DEPS/fallback-lib/$so" && missing+=("$so")
    done
    echo "unpacked ${#debs[@]} .deb files into $DEPS; fallback libraries: ${missing[*]:-none}"
    PREFIX_ARGS=(-DCMAKE_PREFIX_PATH="$DEPS/usr")
    export LD_LIBRARY_PATH="$DEPS/usr/lib/$ARCH_TRIPLET/openblas-openmp:$DEPS/fallback-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    note="${#debs[@]} debs unpacked"
    (( bad )) && note="$note, some failed"
    # A carried OpenBLAS that cannot load on this image (another glibc) would fail the build:
    # then the CPU backend (the parity tests' reference) uses its built-in GEMM instead.
    local blas
    blas=$(find "$DEPS/usr" -path '*openblas-openmp*' -name 'libopenblas.so*' | head -1)
    if [ -n "$blas" ] && ! python3 -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$blas" 2>/dev/null; then
      echo "the carried OpenBLAS does not load here: building with the built-in GEMM"
      PREFIX_ARGS+=(-DBRAINPROP_USE_OPENBLAS=OFF)
      note="$note, built-in GEMM (OpenBLAS does not load)"
    fi
  else
    echo "no .device-debs/*.deb: using the system's packages"
    PREFIX_ARGS=()
    note="system packages"
  fi

  # The CUDA toolkit, piece by piece, wherever it is (PATH, CUDA_HOME/CUDA_PATH, /usr/local/cuda*,
  # every python's site-packages nvidia/ tree, in both wheel layouts); where CMake could not use
  # a piece as it lies, bench/find_cuda_toolkit.sh builds a prefix of links ($DEPS/cuda-prefix).
  mkdir -p "$DEPS"
  # shellcheck source=bench/find_cuda_toolkit.sh
  . "$FIND_CUDA"
  bp_find_cuda_toolkit "$DEPS"
  NVCC=$BP_CUDA_NVCC
  CUDA_HOME_GUESS=$BP_CUDA_TOP   # the real toolkit (compute-sanitizer is looked for beside it)
  CUDA_ARGS=("${BP_CUDA_CMAKE_ARGS[@]}")
  if [ -n "${CUDNN_ROOT:-}" ]; then   # given by the caller: wins over the one found
    CUDA_ARGS=("${CUDA_ARGS[@]/#-DCUDNN_ROOT=*/}")
    CUDA_ARGS+=(-DCUDNN_ROOT="$CUDNN_ROOT")
  fi
  [ -n "$BP_CUDA_LIBRARY_PATH" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$BP_CUDA_LIBRARY_PATH"
  note="$note; CUDA: $BP_CUDA_NOTE"
  [ -n "$BP_CUDA_MISSING" ] && note="$note; MISSING: $BP_CUDA_MISSING"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  [ -z "$NVCC" ] && note="$note; NO nvcc"
  record deps "$( [ -n "$NVCC" ] && [ -z "$BP_CUDA_MISSING" ] && echo ok || echo FAIL)" $(( $(date +%s) - t )) "$note"
}

# ---------------------------------------------------------------- b. machine

step_machine() {
  section "machine"
  local t; t=$(date +%s)
  # No .git in the device tool's copy: fetch_device_debs.sh leaves the commit in .device-debs.
  COMMIT=$(git rev-parse HEAD 2>/dev/null || cat COMMIT 2>/dev/null || cat .device-debs/COMMIT 2>/dev/null || echo unknown)
  local dirty; dirty=$(git status --porcelain 2>/dev/null | grep -v '^??' | wc -l)
  echo "commit: $COMMIT$( [ "$dirty" != 0 ] && echo " ($dirty tracked files modified)")"
  echo "date:   $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  echo "host:   $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2); ${JOBS} cores"
  timeout 30 nvidia-smi || echo "nvidia-smi: failed (exit $?)"
  GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  DRIVER=$(timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  local cc; cc=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
  timeout 20 nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,memory.used --format=csv 2>/dev/null
  if [ -n "${BP_CUDA_ARCHS:-}" ]; then CUDA_ARCHS=$BP_CUDA_ARCHS
  elif [[ "$cc" =~ ^[0-9]+\.[0-9]+$ ]]; then CUDA_ARCHS="${cc/./}-real"
  else CUDA_ARCHS=90-real
  fi
  echo "building for CUDA archs $CUDA_ARCHS (compute capability ${cc:-unknown})"
  [ -n "$NVCC" ] && "$NVCC" --version | tail -2
  g++ --version 2>/dev/null | head -1
  cmake --version 2>/dev/null | head -1
  command -v ninja >/dev/null && echo "ninja $(ninja --version)"
  env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" timeout 60 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'gpu', torch.cuda.is_available())" 2>&1 | tail -1
  local mstatus=FAIL; [ -n "$GPU_NAME" ] && mstatus=ok
  [ "$mstatus" = FAIL ] && (( BUILD_ONLY )) && mstatus=SKIP   # no GPU needed to build
  record machine "$mstatus" $(( $(date +%s) - t )) "${GPU_NAME:-nvidia-smi saw no GPU}${DRIVER:+, driver $DRIVER}"
}

# ---------------------------------------------------------------- c. build

step_configure() {
  section "configure"
  local args=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBRAINPROP_CUDA=ON
              -DBRAINPROP_CUDA_ARCHS="$CUDA_ARCHS" "${PREFIX_ARGS[@]}")
  local a; for a in "${CUDA_ARGS[@]}"; do [ -n "$a" ] && args+=("$a"); done   # nvcc, CUDAToolkit_ROOT, CUDNN_ROOT
  # GoogleTest from the carried sources, built by this machine's compiler (see fetch_device_debs.sh)
  [ -f "$DEPS/usr/src/googletest/CMakeLists.txt" ] &&
    args+=(-DBRAINPROP_GTEST_SOURCE_DIR="$DEPS/usr/src/googletest")
  [ -f "$BUILD/CMakeCache.txt" ] || ! command -v ninja >/dev/null || args+=(-G Ninja)
  echo "cmake ${args[*]}"
  run_step configure 120 30 cmake "${args[@]}" > "$RESULTS/build.log" 2>&1
  local rc=$?
  grep -E "brainprop:|Found (nlohmann|GTest|ZLIB|OpenMP|CUDAToolkit)|Error|error" "$RESULTS/build.log" | head -30
  BP=$BUILD/host/brainprop
  return $rc
}

# The CLI first, then the GPU test binary (a test that does not compile must not cost the
# benchmarks); the CPU suite is CI's job and is not built.
step_build() {
  section "build"
  local limit=${BP_BUILD_TIMEOUT_S:-330} rc
  run_step "build brainprop" "$limit" 60 cmake --build "$BUILD" -j "$JOBS" --target brainprop \
      >> "$RESULTS/build.log" 2>&1
  rc=$?
  if (( rc != 0 )); then
    echo "--- build.log (last 60 lines)"; tail -60 "$RESULTS/build.log"
    return $rc
  fi
  echo "built $BP"
  run_step "build gpu tests" "$limit" 30 cmake --build "$BUILD" -j "$JOBS" --target brainprop_gpu_tests \
      >> "$RESULTS/build.log" 2>&1
  GPU_TESTS_BUILT=$(( $? == 0 ))
  (( GPU_TESTS_BUILT )) || { echo "--- build.log (last 40 lines)"; tail -40 "$RESULTS/build.log"; }
  grep -E "warning" "$RESULTS/build.log" | sort -u | head -20
  return 0
}

# ---------------------------------------------------------------- d. tests

step_tests() {
  section "GPU parity suite (ctest -L gpu)"
  skipped tests "gpu tests" && return
  if (( ! GPU_TESTS_BUILT )); then record "gpu tests" SKIP 0 "test binary did not build"; return; fi
  local log=$RESULTS/ctest-gpu.log
  # On a GPU every GPU test must run: one that would skip fails (tests/gpu/gpu_parity.h).
  run_step "gpu tests" 180 30 env BRAINPROP_GPU_TESTS_MUST_RUN=1 ctest --test-dir "$BUILD" -L gpu --output-on-failure -j 8 \
      --timeout 120 > "$log" 2>&1
  local rc=$?
  (( rc == 99 )) && return $rc   # skipped: no time left
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*|Exception|SEGFAULT" "$log" | tail -40
  grep -E "\(Skipped\)" "$log" | head -3
  local total passed failed skipped
  total=$(grep -oE "out of [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+")
  failed=$(grep -oE "[0-9]+ tests failed" "$log" | tail -1 | grep -oE "^[0-9]+")
  skipped=$(grep -cE "\(Skipped\)|Not Run" "$log")
  passed=$(( ${total:-0} - ${failed:-0} - ${skipped:-0} ))
  TEST_COUNTS="${passed} passed, ${failed:-0} failed, ${skipped} skipped of ${total:-?}"
  # The counts go into the step's line; all skipped (no usable device) is not a pass.
  local status=""
  (( rc == 0 && passed == 0 && skipped > 0 )) && status=SKIP
  sed -i '$ s/\t[^\t]*$/\t'"$TEST_COUNTS"'/' "$STEPS_TSV"
  [ -n "$status" ] && sed -i '$ s/^\([^\t]*\)\tok\t/\1\t'"$status"'\t/' "$STEPS_TSV"
  echo "gpu tests: $TEST_COUNTS"
  return $rc
}

# ---------------------------------------------------------------- GPU CLI smoke

# A learnable synthetic MNIST-format data set (IDX files): each class a fixed random binary
# image, mixed half and half with noise (pytorch_dense_reference.PrototypeTask's recipe).
make_synthetic_idx() {
  python3 - "$1" <<'PY'
import os, random, struct, sys
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
rng = random.Random(7)
protos = [bytes(128 if rng.random() < 0.5 else 0 for _ in range(784)) for _ in range(10)]
def write(prefix, n):
    labels = bytes(rng.randrange(10) for _ in range(n))
    with open(os.path.join(out, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28))
        for y in labels:
            noise = rng.randbytes(784)
            f.write(bytes(p + (z >> 1) for p, z in zip(protos[y], noise)))
    with open(os.path.join(out, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n)); f.write(labels)
write("train", 6000); write("t10k", 1000)
PY
}

gpu_cli_smoke() {  # gpu_cli_smoke BRAINPROP DATASPEC JOBS: end-to-end runs on --backend cuda
  local B=$1 D=$2 J=$3 T; T=$(mktemp -d)
  local failures=0
  check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi; }
  local common=(--data "$D" --test-limit 1000 --no-progress --seed 3) big=(--train-limit 5000) small=(--train-limit 2000)
  check "info lists a CUDA device" bash -c "'$B' info | tee /dev/stderr | grep -q '^device 0:'"
  check "train dense ebp on cuda, 2 epochs" "$B" train "${common[@]}" "${big[@]}" --model dense --rule ebp --epochs 2 --backend cuda --out "$T/ebp"
  check "ebp learns (val accuracy > 0.5)" python3 -c "import json,sys; h=[json.loads(l) for l in open('$T/ebp/history.jsonl')]; print('ebp history', [(r['epoch'], round(r['val_accuracy'],4)) for r in h]); sys.exit(h[-1]['val_accuracy'] <= 0.5)"
  check "train dense brainprop on cuda, 2 epochs" "$B" train "${common[@]}" "${big[@]}" --model dense --rule brainprop --epochs 2 --backend cuda --out "$T/bp-cuda"
  check "train dense brainprop on cpu, 2 epochs" "$B" train "${common[@]}" "${big[@]}" --model dense --rule brainprop --epochs 2 --backend cpu --threads "$J" --out "$T/bp-cpu"
  # Same seed, same Philox actions: the two histories should be close (not bitwise: GEMM
  # rounding differs, and a flipped argmax changes the later trials).
  check "cpu and cuda brainprop histories agree (train loss within 2%, val_acc within 0.05)" python3 - "$T/bp-cpu" "$T/bp-cuda" <<'PY'
import json, sys
h = [[json.loads(l) for l in open(d + "/history.jsonl")] for d in sys.argv[1:]]
for a, b in zip(*h):
    print(f"epoch {a['epoch']}: loss cpu {a['train_loss']:.5f} cuda {b['train_loss']:.5f}  "
          f"val cpu {a['val_accuracy']:.4f} cuda {b['val_accuracy']:.4f}  "
          f"reward cpu {a.get('reward_rate', 0):.4f} cuda {b.get('reward_rate', 0):.4f}  "
          f"img/s cpu {a['images_per_second']:.0f} cuda {b['images_per_second']:.0f}")
a, b = h[0][-1], h[1][-1]
sys.exit(len(h[0]) != len(h[1]) or abs(a["val_accuracy"] - b["val_accuracy"]) > 0.05
         or abs(a["train_loss"] - b["train_loss"]) > 0.02 * abs(a["train_loss"]))
PY
  check "eval on cuda" bash -c "'$B' eval '$T/bp-cuda' --backend cuda --test-limit 1000 | tee /dev/stderr | grep -q test_accuracy"
  check "resume on cuda to 3 epochs" "$B" train --resume "$T/bp-cuda" --epochs 3 --no-progress
  check "history has 3 epochs" test "$(wc -l < "$T/bp-cuda/history.jsonl")" -eq 3
  check "train conv ebp on cuda (cuDNN), tf32" "$B" train "${common[@]}" "${small[@]}" --model conv --rule ebp --epochs 1 --backend cuda --math tf32 --out "$T/conv"
  check "train loccon brainprop on cuda" "$B" train "${common[@]}" "${small[@]}" --model loccon --rule brainprop --epochs 1 --backend cuda --out "$T/loccon"
  check "train deep ebp on cuda (batch norm, pool, dropout)" "$B" train "${common[@]}" "${small[@]}" --model deep --rule ebp --epochs 1 --backend cuda --out "$T/deep"
  check "train deep brainprop on cuda, --no-graphs" "$B" train "${common[@]}" "${small[@]}" --model deep --rule brainprop --epochs 1 --backend cuda --no-graphs --out "$T/deep-bp"
  for r in conv loccon deep deep-bp; do [ -f "$T/$r/history.jsonl" ] && echo "$r: $(tail -1 "$T/$r/history.jsonl")"; done
  rm -rf "$T"
  echo "GPU CLI smoke: $failures failed"
  return $((failures > 0))
}

step_cli() {
  section "CLI smoke (ctest -L cli) and GPU training smoke"
  skipped cli "GPU CLI smoke" && return
  local log=$RESULTS/cli-gpu.log
  run_step "cli smoke (ctest -L cli)" 120 30 ctest --test-dir "$BUILD" -L cli --output-on-failure > "$log" 2>&1
  grep -E "^(ok|FAIL|skip)|tests passed|cli smoke" "$log" | tail -30
  local data=""
  if [ -d "$ROOT/.device-debs/fashion-mnist" ]; then data="fashion-mnist:$ROOT/.device-debs/fashion-mnist"
  elif [ -d /usr/share/datasets/fashion-mnist ]; then data=fashion-mnist
  else
    make_synthetic_idx "$BUILD/synthetic-mnist" && data="mnist:$BUILD/synthetic-mnist"
  fi
  echo "training data: ${data:-none}"
  if [ -z "$data" ]; then record "GPU CLI smoke" FAIL 0 "no data (python3 missing?)"; return 1; fi
  STEP_NOTE="data $data"
  run_step "GPU CLI smoke" 150 40 bash -c "$(declare -f gpu_cli_smoke); gpu_cli_smoke '$BP' '$data' '$JOBS'" >> "$log" 2>&1
  local rc=$?
  sed -n '/^ok \|^FAIL \|^epoch \|^ebp history\|: {\|GPU CLI smoke/p' "$log" | tail -30
  return $rc
}

# ---------------------------------------------------------------- e. compute-sanitizer

SANITIZER_STATE=""   # "unsupported" once the tool has failed to start, "stuck" if its first run timed out
SANITIZER_RUNS=0
find_sanitizer() {
  CS=$(command -v compute-sanitizer || true)
  local c
  for c in "$CUDA_HOME_GUESS/bin/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
           "$CUDA_HOME_GUESS/compute-sanitizer/compute-sanitizer"; do
    [ -z "$CS" ] && [ -x "$c" ] && CS=$c
  done
}

sanitize_one() {  # sanitize_one TOOL LABEL BENCH-ARGS...
  local tool=$1 label=$2; shift 2
  local name="$tool $label"
  if [ "$SANITIZER_STATE" = unsupported ]; then
    record "$name" UNSUPPORTED 0 "compute-sanitizer could not run on this machine (see the first run)"
    return
  elif [ "$SANITIZER_STATE" = stuck ]; then
    record "$name" SKIP 0 "the first sanitizer run timed out"
    return
  fi
  local remaining; remaining=$(left)
  if (( remaining < 25 )); then record "$name" SKIP 0 "time budget: ${remaining}s left"; return; fi
  local limit=75; (( limit > remaining )) && limit=$remaining
  local tmp; tmp=$(mktemp)
  local extra=(); [ "$tool" = memcheck ] && extra=(--leak-check no)
  local t; t=$(date +%s)
  echo "\$ compute-sanitizer --tool $tool --error-exitcode 2 --print-limit 20 ${extra[*]} brainprop bench --backend cuda $*"
  timeout --kill-after=5 "$limit" "$CS" --tool "$tool" --error-exitcode 2 --print-limit 20 "${extra[@]}" \
      "$BP" bench --backend cuda "$@" > "$tmp" 2>&1
  local rc=$? dt=$(( $(date +%s) - t ))
  { echo "==== $name (exit $rc, ${dt}s): $*"; head -c 200000 "$tmp"; } >> "$RESULTS/sanitizer.log"
  local errors; errors=$(grep -oE "ERROR SUMMARY: [0-9]+ error" "$tmp" | tail -1 | grep -oE "[0-9]+")
  # The tool's own failures (gVisor: "Device not supported", then error 999 at the first
  # allocation, which memcheck may count as an API error) are not the program's errors.
  local tool_failure="Device not supported|not supported on this platform|LibraryNotLoaded|Unable to find injection library|Failed to initialize|terminated before first instrumented API call|Unable to (load|initialize) (the )?(target|driver|CUDA)"
  if (( rc != 0 )) && grep -qiE "$tool_failure" "$tmp"; then
    SANITIZER_STATE=unsupported
    record "$name" UNSUPPORTED "$dt" "tool could not run here: $(grep -iE -m1 "$tool_failure" "$tmp" | sed 's/^=* *//' | cut -c1-120)"
  elif (( rc == 124 || rc == 137 )); then
    record "$name" TIMEOUT "$dt" "killed after ${limit}s"
    (( SANITIZER_RUNS == 0 )) && SANITIZER_STATE=stuck
  elif [ -n "$errors" ] && (( errors > 0 )) || (( rc == 2 )); then
    record "$name" ERRORS "$dt" "${errors:-?} errors reported (sanitizer.log)"
    grep -E "^========= (Invalid|Race|Barrier|Uninitialized|Program hit|ERROR|  *at )" "$tmp" | head -20
  elif (( rc == 0 )) && [ "${errors:-x}" = 0 ]; then
    record "$name" ok "$dt" "0 errors"
  elif (( rc == 0 )); then
    record "$name" ok "$dt" "no error summary printed"
  else
    record "$name" FAIL "$dt" "exit $rc without sanitizer errors: the program failed ($(grep -vE '^=========' "$tmp" | tail -1 | cut -c1-100))"
  fi
  tail -3 "$tmp"
  rm -f "$tmp"
  SANITIZER_RUNS=$((SANITIZER_RUNS + 1))
}

step_sanitizer() {  # step_sanitizer first|more
  section "compute-sanitizer ($1 runs)"
  [ -z "${CS+x}" ] && find_sanitizer
  if [ -z "$CS" ]; then record "compute-sanitizer ($1)" UNSUPPORTED 0 "compute-sanitizer not found"; return; fi
  local short=(--steps 3 --repeats 1 --warmup 2)
  if [ "$1" = first ]; then
    if ! skipped memcheck memcheck; then
      sanitize_one memcheck dense --model dense "${short[@]}"
      sanitize_one memcheck loccon --model loccon --input 32x32x3 "${short[@]}"
      sanitize_one memcheck conv --model conv "${short[@]}"
    fi
    # racecheck first where our own kernels share memory: the locally connected GEMMs
    skipped racecheck "racecheck loccon" || sanitize_one racecheck loccon --model loccon --input 32x32x3 "${short[@]}"
  else
    skipped racecheck "racecheck, synccheck" && return
    sanitize_one racecheck dense --model dense "${short[@]}"
    sanitize_one racecheck conv --model conv "${short[@]}"
    sanitize_one synccheck loccon --model loccon --input 32x32x3 "${short[@]}"
    # batch norm and the per-channel sums (column_partials/finish) in the deep net
    sanitize_one synccheck deep --model deep --input 32x32x3 --batch 32 "${short[@]}"
  fi
}

# ---------------------------------------------------------------- f. engine benchmarks

bench_one() {  # bench_one ARGS...: one `brainprop bench`, its JSON line appended to JSONL
  local remaining; remaining=$(left)
  if (( remaining < 15 )); then echo "skip (time budget): $*"; BENCH_SKIPPED=$((BENCH_SKIPPED + 1)); return; fi
  if (( BENCH_OK == 0 && BENCH_FAILED >= 3 )); then  # the backend does not work here at all
    BENCH_SKIPPED=$((BENCH_SKIPPED + 1)); return
  fi
  local limit=60; (( limit > remaining )) && limit=$remaining
  local out rc
  out=$(timeout --kill-after=5 "$limit" "$BP" bench --backend cuda --steps "$BENCH_STEPS" \
        --repeats "$BENCH_REPEATS" --warmup "$BENCH_WARMUP" "$@" 2> "$BUILD/bench.err")
  rc=$?
  local line; line=$(printf '%s\n' "$out" | grep '^{' | tail -1)
  if (( rc != 0 )) || [ -z "$line" ]; then
    BENCH_FAILED=$((BENCH_FAILED + 1))
    echo "FAIL (exit $rc): brainprop bench $*"; tail -5 "$BUILD/bench.err"
    line=$(python3 -c "import json,sys; print(json.dumps({'error': sys.argv[1], 'args': sys.argv[2]}))" \
           "exit $rc: $(tail -1 "$BUILD/bench.err" | cut -c1-300)" "$*")
  else
    BENCH_OK=$((BENCH_OK + 1))
  fi
  printf '%s\n' "$line" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
r.update(framework='brainprop', engine='brainprop', git_commit=sys.argv[1], gpu=sys.argv[2],
         driver=sys.argv[3], date=sys.argv[4])
print(json.dumps(r))
if 'ms_per_step_median' in r:
    print(f\"  {r['model']:6s} {'x'.join(map(str, r['input_shape'])):8s} b{r['batch']:<4d} {r['rule']:9s} {r.get('math',''):4s} graphs={str(r.get('graphs')):5s} {r['ms_per_step_median']:8.3f} ms/step {r['images_per_second']:10.0f} img/s\", file=sys.stderr)
" "$COMMIT" "${GPU_NAME:-}" "${DRIVER:-}" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >> "$JSONL"
}

step_bench() {
  section "brainprop bench --backend cuda (steps $BENCH_STEPS, repeats $BENCH_REPEATS, warmup $BENCH_WARMUP)"
  skipped bench "engine bench" && return
  BENCH_OK=0 BENCH_FAILED=0 BENCH_SKIPPED=0
  local t rule; t=$(date +%s)
  # --epoch-images: training images of MNIST (60k), CIFAR (50k), Tiny ImageNet (100k), for
  # seconds_per_epoch; --per-layer on the reference setting of each net (its steps launch
  # every kernel: graph replays cannot be split by layer).
  local mnist=(--input 28x28x1 --epoch-images 60000) cifar=(--input 32x32x3 --epoch-images 50000)
  local tiny=(--input 64x64x3 --classes 200 --epoch-images 100000)
  for rule in brainprop ebp; do
    bench_one --model dense "${mnist[@]}" --batch 128 --rule "$rule" --per-layer
    bench_one --model dense "${mnist[@]}" --batch 128 --rule "$rule" --no-graphs
    bench_one --model conv "${mnist[@]}" --batch 128 --rule "$rule" --math fp32 --per-layer
    bench_one --model conv "${mnist[@]}" --batch 128 --rule "$rule" --math tf32
    bench_one --model loccon "${cifar[@]}" --batch 32 --rule "$rule" --per-layer
    bench_one --model loccon "${cifar[@]}" --batch 128 --rule "$rule"
    bench_one --model deep "${cifar[@]}" --batch 128 --rule "$rule" --math fp32 --per-layer
    bench_one --model deep "${cifar[@]}" --batch 128 --rule "$rule" --math tf32
    bench_one --model deep "${tiny[@]}" --batch 128 --rule "$rule" --math fp32
    bench_one --model deep "${tiny[@]}" --batch 128 --rule "$rule" --math tf32
  done
  local status=ok
  (( BENCH_FAILED > 0 )) && status=FAIL
  (( BENCH_OK == 0 && BENCH_FAILED == 0 )) && status=SKIP
  record "engine bench" "$status" $(( $(date +%s) - t )) "$BENCH_OK ok, $BENCH_FAILED failed, $BENCH_SKIPPED skipped"
}

# ---------------------------------------------------------------- f2. concurrent runs

# N conv runs at once on the GPU (N = 1 2 4 8), both rules: the machine's images/s
# (bench/concurrent_runs.py). The table goes to the log; its files stay in $BUILD (the device
# tool brings back only a few files from $OUT).
step_concurrent() {
  section "concurrent runs on one GPU (bench/concurrent_runs.py, conv)"
  skipped concurrent "concurrent runs" && return
  # python3 with the machine's own libraries; the bench processes with ours.
  run_step "concurrent runs (conv, N=1 2 4 8)" 100 40 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" \
      python3 bench/concurrent_runs.py --child-env "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" \
      --brainprop "$BP" --backend cuda --gpu 0 --models conv --ns 1 2 4 8 \
      --steps 20 --repeats 2 --warmup 5 --timeout 60 --out "$BUILD/concurrent-runs"
}

# ---------------------------------------------------------------- g. PyTorch reference

step_pytorch() {
  section "PyTorch reference on the GPU (bench/pytorch_gpu_reference.py)"
  skipped pytorch "pytorch reference" && return
  if ! env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" timeout 60 python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    record "pytorch reference" SKIP 0 "python3 has no torch with CUDA"
    return
  fi
  local common=(--steps "$BENCH_STEPS" --repeats "$BENCH_REPEATS" --warmup "$BENCH_WARMUP" --json-out "$JSONL")
  # fp32, eager and CUDA-graph replays, all nets; then TF32 (graphs) for the conv nets.
  STEP_NOTE="fp32, eager + graphs"
  run_step "pytorch reference (fp32)" 180 40 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" PYTHONUNBUFFERED=1 \
      python3 bench/pytorch_gpu_reference.py "${common[@]}" --math fp32 --graphs off on \
      --config dense:28x28x1:128 --config conv:28x28x1:128 --config loccon:32x32x3:32 \
      --config loccon:32x32x3:128 --config deep:32x32x3:128 --config deep:64x64x3:128:200 > /dev/null
  STEP_NOTE="tf32, graphs"
  run_step "pytorch reference (tf32)" 90 30 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" PYTHONUNBUFFERED=1 \
      python3 bench/pytorch_gpu_reference.py "${common[@]}" --math tf32 --graphs on \
      --config conv:28x28x1:128 --config deep:32x32x3:128 --config deep:64x64x3:128:200 > /dev/null
}

# ---------------------------------------------------------------- h. summary

step_summary() {
  section "summary"
  local t_total=$(( $(date +%s) - T0 ))
  local md=$RESULTS/gpu-check-summary.md
  if ! python3 - "$STEPS_TSV" "$JSONL" "$md" "$COMMIT" "${GPU_NAME:-?}" "${DRIVER:-?}" \
      "$("${NVCC:-nvcc}" --version 2>/dev/null | grep -o 'release [0-9.]*' | head -1)" "$t_total" "$JSONL_START" <<'PY'
import json, sys
steps_tsv, jsonl, md_path, commit, gpu, driver, nvcc, total, start = sys.argv[1:10]
EPOCH = {(28, 28, 1): (60000, "MNIST"), (32, 32, 3): (50000, "CIFAR"), (64, 64, 3): (100000, "Tiny ImageNet")}
out = [f"# brainprop GPU check", "",
       f"commit `{commit}`, {gpu}, driver {driver}, nvcc {nvcc or '?'}, {total} s in all", "",
       "## Steps", "", "| step | status | s | note |", "|---|---|---:|---|"]
for line in open(steps_tsv):
    parts = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
    out.append("| " + " | ".join(p.replace("|", "/") for p in parts) + " |")
recs, errors = [], []
for line in open(jsonl).readlines()[int(start):]:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    (errors if "error" in r or "ms_per_step_median" not in r else recs).append(r)
def key(r, rule=None):
    return (r.get("framework"), r["model"], tuple(r["input_shape"]), r["batch"], r["classes"],
            r.get("math", "fp32"), bool(r.get("graphs")), rule or r["rule"])
by = {key(r): r for r in recs}
if recs:
    out += ["", "## Training-step throughput", "",
            "s/epoch = training images of the data set (MNIST 60k, CIFAR 50k, Tiny ImageNet 100k) / img/s.",
            "BP/EBP = BrainProp ms/step over EBP ms/step (same engine and setting; < 1: BrainProp cheaper).",
            "vs PyTorch = engine img/s over PyTorch img/s (same net, rule, math and graphs; > 1: engine faster).", "",
            "| engine | model | input | batch | classes | rule | math | graphs | ms/step | img/s | s/epoch | BP/EBP | vs PyTorch |",
            "|---|---|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|"]
    order = {"dense": 0, "conv": 1, "loccon": 2, "deep": 3}
    for r in sorted(recs, key=lambda r: (order.get(r["model"], 9), r["input_shape"], r["batch"],
                                         r.get("math", ""), not r.get("graphs"), r["rule"],
                                         r.get("framework") != "brainprop")):
        shape = tuple(r["input_shape"])
        n = EPOCH.get(shape, (60000, ""))[0]
        ms, ips = r["ms_per_step_median"], r["images_per_second"]
        ratio = ""
        if r["rule"] == "brainprop":
            e = by.get(key(r, "ebp"))
            ratio = f"{ms / e['ms_per_step_median']:.2f}" if e else ""
        vs = ""
        if r.get("framework") == "brainprop":
            p = by.get(("pytorch",) + key(r)[1:])
            vs = f"{ips / p['images_per_second']:.2f}" if p else ""
        spe = r.get("seconds_per_epoch") or n / ips
        out.append(f"| {r.get('framework', '?')} | {r['model']} | {'x'.join(map(str, shape))} | {r['batch']} | "
                   f"{r['classes']} | {r['rule']} | {r.get('math', 'fp32')} | {'on' if r.get('graphs') else 'off'} | "
                   f"{ms:.3f} | {ips:,.0f} | {spe:.2f} | {ratio} | {vs} |")
    layered = [r for r in recs if r.get("per_layer_ms")]
    if layered:
        out += ["", "## Where a step goes (engine, --per-layer: plain launches, CUDA events; the 6 costliest)", ""]
        for r in layered:
            parts = sorted(r["per_layer_ms"], key=lambda l: -l.get("ms", 0))[:6]
            total = sum(l.get("ms", 0) for l in r["per_layer_ms"])
            out.append(f"- {r['model']} {'x'.join(map(str, r['input_shape']))} b{r['batch']} {r['rule']} "
                       f"{r.get('math', 'fp32')}: layers {total:.3f} ms of {r['ms_per_step_median']:.3f} ms/step; "
                       + ", ".join(f"{l.get('name')} {l.get('ms', 0):.3f}" for l in parts))
if errors:
    out += ["", "## Failed measurements", ""]
    out += [f"- {json.dumps({k: v for k, v in r.items() if k != 'machine'})[:400]}" for r in errors[:8]]
    if len(errors) > 8:
        out.append(f"- ... and {len(errors) - 8} more (bench-gpu.jsonl)")
text = "\n".join(out) + "\n"
open(md_path, "w").write(text)
print(text)
PY
  then
    echo "(python3 failed: steps only)"
    column -t -s $'\t' "$STEPS_TSV" 2>/dev/null || cat "$STEPS_TSV"
  fi
  echo "results: $RESULTS ($(ls "$RESULTS" | tr '\n' ' '))"
}

main 2>&1 | tee "$RESULTS/gpu-check.log"
exit "${PIPESTATUS[0]}"
