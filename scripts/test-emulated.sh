#!/usr/bin/env bash
# The CUDA backend on the emulated device (docs/testing-gpu-code.md): every GPU test and the
# emulator's own tests, built with clang for the emulated device and run
#   release  in ascending block order, the training-scale tests also in descending order, and
#            the CLI training on `--backend cuda`;
#   asan     under AddressSanitizer + UBSan, blocks in descending order, all but the
#            training-scale tests (two-epoch runs take ten times as long under ASan; every op
#            they use runs under ASan in the smaller tests);
#   tsan     the kernels with barriers under ThreadSanitizer, blocks in a seeded shuffle.
# Usage: bash scripts/test-emulated.sh [release|asan|tsan|all]   (default all). Build folders:
# build-emu, build-emu-asan, build-emu-tsan. Needs scripts/install-deps.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
what=${1:-all}
targets=(brainprop_gpu_tests brainprop_emu_tests)
training_scale='FashionMnist|GpuRealistic|TrainerGraphs'

configure() {  # DIR EXTRA-CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DBRAINPROP_CUDA_EMULATOR=ON "$@" > "$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
}

stage() { echo "== emulated device: $* ($(date +%T))"; }

# Sanitized builds: -O1 and line tables only, for build time; the stacks still name every line.
sanitized_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only"
                 "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only")

if [[ $what == release || $what == all ]]; then
  stage "release build"
  mkdir -p build-emu
  configure build-emu -DCMAKE_BUILD_TYPE=Release
  cmake --build build-emu -j"$jobs" --target brainprop "${targets[@]}"
  stage "GPU and emulator tests, blocks ascending"
  (cd build-emu && BRAINPROP_EMU_BLOCK_ORDER=asc ctest --output-on-failure -j"$jobs" -L "gpu|emulator")
  stage "training-scale GPU tests, blocks descending"
  (cd build-emu && BRAINPROP_EMU_BLOCK_ORDER=desc ctest --output-on-failure -j"$jobs" -L gpu -R "$training_scale")
  stage "the CLI on --backend cuda"
  bash tests/emulated_cli_smoke.sh build-emu/host/brainprop
fi

if [[ $what == asan || $what == all ]]; then
  stage "AddressSanitizer + UBSan build"
  mkdir -p build-emu-asan
  configure build-emu-asan "${sanitized_flags[@]}" -DBRAINPROP_SANITIZE=address,undefined
  cmake --build build-emu-asan -j"$jobs" --target "${targets[@]}"
  stage "GPU and emulator tests under ASan + UBSan, blocks descending"
  (cd build-emu-asan &&
   BRAINPROP_EMU_BLOCK_ORDER=desc ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
   UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$jobs" -L "gpu|emulator" -E "$training_scale")
fi

if [[ $what == tsan || $what == all ]]; then
  stage "ThreadSanitizer build"
  mkdir -p build-emu-tsan
  configure build-emu-tsan "${sanitized_flags[@]}" -DBRAINPROP_SANITIZE=thread
  cmake --build build-emu-tsan -j"$jobs" --target "${targets[@]}"
  stage "kernels with barriers under ThreadSanitizer, blocks shuffled"
  # One OpenMP thread: the CPU reference's own threads are not what is under test here. The
  # scheduler test that races on purpose (WithoutTheBarrier...) is TsanSeesAMissingBarrier's job.
  export OMP_NUM_THREADS=1 BRAINPROP_EMU_BLOCK_ORDER=shuffle:3 TSAN_OPTIONS=halt_on_error=1:report_signal_unsafe=0
  build-emu-tsan/tests/brainprop_emu_tests --gtest_brief=1 --gtest_filter='EmulatedScheduler.*:TsanSeesAMissingBarrier*:-*WithoutTheBarrier*'
  BRAINPROP_GPU_TESTS_MUST_RUN=1 build-emu-tsan/tests/brainprop_gpu_tests --gtest_brief=1 \
    --gtest_filter='GpuHeads.*:GpuBatchNorm.*:GpuParity.UpdateBias*:Geometries/GpuPatchOps.*local2d*'
fi
stage "done"
