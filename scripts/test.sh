#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs the whole test suite (CTest). GPU tests
# skip, saying why, where no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
