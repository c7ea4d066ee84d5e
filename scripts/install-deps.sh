#!/usr/bin/env bash
# Installs what brainprop needs on Debian 12: the C++ toolchain and libraries (libjpeg-turbo
# for the JPEG data sets), the Fashion-MNIST data set (Debian package
# dataset-fashion-mnist), matplotlib (python3-matplotlib) for the figures of
# `brainprop report`, strace (the crash tests inject kills and write errors with it), and what the emulated CUDA device needs: clang with its OpenMP and
# sanitizer runtimes, Boost.Context (the fibers) and PyTorch (python3-torch), the independent
# reference the cuDNN emulation is cross-checked against. Idempotent: packages already present are not touched.
# The CUDA toolkit is not a Debian package here; the build finds it under /usr/local/cuda.
set -euo pipefail

packages=(build-essential cmake pkg-config libopenblas-openmp-dev nlohmann-json3-dev zlib1g-dev
          libturbojpeg0-dev libgtest-dev dataset-fashion-mnist python3 python3-matplotlib
          clang libomp-dev libclang-rt-14-dev libboost-context-dev python3-torch python3-numpy
          strace)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
