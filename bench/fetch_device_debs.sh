#!/usr/bin/env bash
# Downloads (apt-get download: nothing is installed) the Debian 12 packages that building
# brainprop needs on a machine that has the CUDA toolkit but none of our libraries, into
# .device-debs/ at the repo root. bench/gpu_check.sh unpacks them there with `dpkg -x` into a
# private prefix (/tmp/bp-deps), never into /.
#
# Run here (x86_64 Debian 12), then hand the folder to the device machine:
#   bash bench/fetch_device_debs.sh            # the build's packages (~15 MB)
#   bash bench/fetch_device_debs.sh --with-fashion-mnist   # also the data set (+30 MB) for a
#                                              # real-data training run in gpu_check.sh
#   device run: carry [".device-debs"], command "bash bench/gpu_check.sh"
#
# The folder is ignored through .git/info/exclude; everything that travels (working tree +
# carried paths) must stay under 64 MiB, so the total is printed and checked.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEST="$ROOT/.device-debs"
LIMIT_MIB=48   # leaves room for the working tree within the device tool's 64 MiB

with_data=0
for arg in "$@"; do
  case "$arg" in
    --with-fashion-mnist) with_data=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "fetch_device_debs: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# What each is for:
#   libopenblas0-openmp, libopenblas-openmp-dev  the OpenMP OpenBLAS: libopenblas.so(.0) under
#       lib/x86_64-linux-gnu/openblas-openmp/ and include/x86_64-linux-gnu/openblas-openmp/cblas.h
#       (libopenblas-dev is only a meta package: not needed)
#   libgfortran5, libquadmath0, libgomp1         libopenblas0-openmp's run-time needs (used only
#       where the machine lacks them: gpu_check.sh links each missing one into a fallback folder)
#   nlohmann-json3-dev                           headers + CMake config (find_package)
#   libgtest-dev                                 static gtest/gtest_main + CMake config
#   googletest                                   its sources: gpu_check.sh builds GoogleTest with
#       the device's own compiler (a prebuilt libgtest.a may not link against its libstdc++)
#   zlib1g, zlib1g-dev                           zlib.h and libz.so (gz IDX files)
#   libturbojpeg0, libturbojpeg0-dev             optional: JPEG data sets
packages=(libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0 libgomp1
          nlohmann-json3-dev libgtest-dev googletest zlib1g zlib1g-dev libturbojpeg0 libturbojpeg0-dev)

mkdir -p "$DEST"
# Ignore the folder in this checkout (idempotent); the device tool still carries it by name.
exclude="$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.device-debs/' "$exclude" 2>/dev/null || echo '/.device-debs/' >> "$exclude"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"   # lets apt's _apt user write there (else it warns and downloads as root)
for p in "${packages[@]}"; do
  # The version installed here (what the local build is tested with), else apt's candidate.
  v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  if [[ -n "$v" ]] && ls "$DEST"/"${p}"_*.deb >/dev/null 2>&1 \
      && [[ "$(dpkg-deb -f "$(ls "$DEST"/"${p}"_*.deb | head -1)" Version)" == "$v" ]]; then
    echo "have $p $v"
    continue
  fi
  if ! (cd "$tmp" && { [[ -n "$v" ]] && apt-get download -q "$p=$v" 2>/dev/null || apt-get download -q "$p"; }); then
    echo "fetch_device_debs: cannot download $p (try: apt-get update)" >&2
    exit 1
  fi
  rm -f "$DEST"/"${p}"_*.deb
  f=$(ls "$tmp"/"${p}"_*.deb)
  # Plain file names (the epoch's "%3a" and the "+" out): safe for any copy tool.
  mv "$f" "$DEST/$(basename "$f" | sed 's/%3a/-/g; s/[^A-Za-z0-9._-]/-/g')"
  echo "got  $(basename "$(ls "$DEST"/"${p}"_*.deb)")"
done

# Stray .debs of packages no longer in the list would be unpacked too: drop them.
for f in "$DEST"/*.deb; do
  name=$(dpkg-deb -f "$f" Package)
  printf '%s\n' "${packages[@]}" | grep -qxF "$name" || { echo "drop $(basename "$f")"; rm -f "$f"; }
done

if ((with_data)); then
  src=/usr/share/datasets/fashion-mnist
  if [[ -d "$src" ]]; then
    mkdir -p "$DEST/fashion-mnist"
    cp -u "$src"/*-ubyte* "$DEST/fashion-mnist/"
    echo "data fashion-mnist: $(ls "$DEST/fashion-mnist" | wc -l) files"
  else
    echo "fetch_device_debs: $src missing (apt-get install dataset-fashion-mnist); no data copied" >&2
  fi
else
  rm -rf "$DEST/fashion-mnist"
fi

# The device copy of the tree has no .git: gpu_check.sh reports this commit (re-run this
# script after committing, just before the device run; it only re-downloads what changed).
{ git rev-parse HEAD 2>/dev/null || echo unknown; } > "$DEST/COMMIT"
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && sed -i '1s/$/ (+ uncommitted changes)/' "$DEST/COMMIT"
echo "commit: $(cat "$DEST/COMMIT")"

bytes=$(du -sb "$DEST" | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "total: $(ls "$DEST"/*.deb | wc -l) .deb files, $(mib "$bytes") MiB in .device-debs/;" \
     "working tree $(mib "${tree_bytes:-0}") MiB; device limit 64 MiB together"
if ((bytes > LIMIT_MIB * 1048576)); then
  echo "fetch_device_debs: .device-debs is over ${LIMIT_MIB} MiB" >&2
  exit 1
fi
