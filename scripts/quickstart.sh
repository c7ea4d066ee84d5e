#!/usr/bin/env bash
# Fresh Debian 12 machine to a training run: installs dependencies, builds, and runs the
# default job: Fashion-MNIST, the reference dense net, BrainProp, with the reference's
# hyper-parameters (to early stopping; on the GPU when there is one, else the CPU).
# Extra arguments go to `brainprop train`, e.g.  bash scripts/quickstart.sh --epochs 5
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec build/host/brainprop train fashion-mnist dense brainprop --backend auto "$@"
