#!/usr/bin/env bash
# The whole test suite (what CI runs): installs missing dependencies; builds the release
# configuration (GCC, nvcc) and runs its CTest suite (GPU tests skip there, saying why, where
# no CUDA device is present); then runs the GPU code on the emulated CUDA device
# (scripts/test-emulated.sh: every GPU test, in two block orders, under ASan + UBSan, the
# barrier kernels under TSan); then fuzzes the input readers (scripts/test-fuzz.sh: the
# libFuzzer targets built with clang, seeds and kept crash inputs replayed, then
# $BRAINPROP_FUZZ_SECONDS, default 30, per target). Arguments go to the release ctest run.
# BRAINPROP_EMULATED=0 skips the emulated device, BRAINPROP_FUZZ=0 the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
if [[ "${BRAINPROP_EMULATED:-1}" != 0 ]]; then
  bash scripts/test-emulated.sh all
fi
if [[ "${BRAINPROP_FUZZ:-1}" != 0 ]]; then
  bash scripts/test-fuzz.sh "${BRAINPROP_FUZZ_SECONDS:-20}"
fi
echo "scripts/test.sh: all passed in $(( $(date +%s) - start )) s"
