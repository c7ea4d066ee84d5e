#!/usr/bin/env bash
# Finds the pieces of a CUDA toolkit wherever they are, and when CMake (FindCUDAToolkit, our
# find_path/find_library for cuDNN) cannot use them as they lie, builds a small prefix of
# symbolic links that it can use. Made for machines whose toolkit is a set of pip wheels
# (CUDA 13: nvidia/cu13/{bin,include,lib,nvvm}, only versioned .so files; CUDA 12:
# nvidia/<lib>/{include,lib}) as well as for plain installs (/usr/local/cuda*).
#
#   sourced:  . bench/find_cuda_toolkit.sh; bp_find_cuda_toolkit WORKDIR   (bench/gpu_check.sh)
#   alone:    bash bench/find_cuda_toolkit.sh [WORKDIR]   (prints what it found and the CMake
#             arguments; exit status 1 when a required piece is missing; WORKDIR defaults to
#             /tmp/bp-cuda-find)
#
# Where it looks, in this order, for every piece: the toolkit of the nvcc it found (nvcc's own
# TOP), BP_CUDA_ROOTS (space-separated extra roots), CUDA_HOME, CUDA_PATH, CUDAToolkit_ROOT,
# /usr/local/cuda, /usr/local/cuda-* (newest first), /opt/cuda, then every nvidia/ folder of
# every Python's site-packages (python3, python, BP_PYTHON, /opt/torch/.venv/bin/python3,
# /usr/bin/python3, plus the usual site-packages folders): nvidia/cu*/ first, then each
# nvidia/<lib>/; /usr last. In each root: include/, targets/*/include/ (and include/cccl/ for
# Thrust); lib64/, lib/, targets/*/lib/, lib/<triplet>/.
# nvcc: BP_NVCC, CUDACXX, PATH, then bin/ of the roots above; one that does not run is skipped.
#
# Pieces: nvcc, nvvm (cicc, libdevice), crt (headers; bin/crt link stubs), cuda_runtime.h,
# cublas_v2.h, Thrust (CCCL), nvtx3, cudart (shared and static), cudadevrt, cublas, cublasLt; optional:
# cuDNN (cudnn.h, libcudnn).
#
# When nvcc's own toolkit holds every required piece with the names CMake looks for
# (unversioned libcudart.so, libcublas.so, ... in lib64/ or targets/*/lib/), it is used as it
# is. Otherwise (or with BP_CUDA_PREFIX=always) WORKDIR/cuda-prefix is built: bin/ (links to
# nvcc's programs, its own nvcc.profile, so that nvcc takes the prefix as its TOP: nvcc does not
# resolve the link to itself), nvvm -> the nvvm found, include/ (the header folders found,
# merged, entry by entry), lib64/ (links to the libraries found, plus unversioned .so names),
# lib -> lib64. cuDNN outside the toolkit gets WORKDIR/cudnn-prefix/{include,lib} likewise.
# BP_CUDA_PREFIX=never: never build the prefix (report only).
#
# Results (shell variables): BP_CUDA_NVCC (the nvcc CMake gets), BP_CUDA_ROOT (CUDAToolkit_ROOT),
# BP_CUDA_TOP (the real toolkit root of nvcc), BP_CUDA_VERSION, BP_CUDNN_ROOT (or empty),
# BP_CUDA_PREFIX_DIR (the built prefix, or empty), BP_CUDA_LIBRARY_PATH (folders for
# LD_LIBRARY_PATH at run time), BP_CUDA_CMAKE_ARGS (array), BP_CUDA_MISSING (required pieces
# not found, space-separated; empty when all are there), BP_CUDA_NOTE (one line).

# ---------------------------------------------------------------- helpers (prefix _bpcuda_)

_bpcuda_say() { printf '  %-16s %s\n' "$1" "$2"; }

_bpcuda_uniq() { awk 'NF && !seen[$0]++'; }

# nvidia/ folders of every Python's site-packages, real paths, in order.
_bpcuda_nvidia_dirs() {
  local py d
  {
    for py in ${BP_PYTHON:-} python3 python /opt/torch/.venv/bin/python3 /usr/bin/python3 /usr/local/bin/python3; do
      command -v "$py" >/dev/null 2>&1 || continue
      timeout 30 "$py" - 2>/dev/null <<'PY'
import os, site, sys
paths = list(sys.path)
for f in ("getsitepackages", "getusersitepackages"):
    try:
        r = getattr(site, f)()
        paths += [r] if isinstance(r, str) else list(r)
    except Exception:
        pass
try:
    import nvidia
    paths += [os.path.dirname(p) for p in nvidia.__path__]
except Exception:
    pass
for p in paths:
    if p and os.path.isdir(os.path.join(p, "nvidia")):
        print(os.path.realpath(os.path.join(p, "nvidia")))
PY
    done
    for d in ${VIRTUAL_ENV:+"$VIRTUAL_ENV"/lib/python3*/site-packages} \
             /usr/lib/python3*/dist-packages /usr/local/lib/python3*/dist-packages \
             /usr/local/lib/python3*/site-packages /opt/*/lib/python3*/site-packages \
             /opt/*/.venv/lib/python3*/site-packages /opt/conda/envs/*/lib/python3*/site-packages \
             "${HOME:-/root}"/.local/lib/python3*/site-packages; do
      [ -d "$d/nvidia" ] && readlink -f "$d/nvidia"
    done
  } | _bpcuda_uniq
}

# The roots to search, in order (real paths, each once).
_bpcuda_roots() {
  local r n d
  {
    [ -n "${BP_CUDA_TOP:-}" ] && echo "$BP_CUDA_TOP"
    for r in ${BP_CUDA_ROOTS:-} ${CUDA_HOME:-} ${CUDA_PATH:-} ${CUDAToolkit_ROOT:-} /usr/local/cuda \
             $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV) /opt/cuda; do
      [ -d "$r" ] && readlink -f "$r"
    done
    while IFS= read -r n; do
      for d in $(ls -d "$n"/cu[0-9]* 2>/dev/null | sort -rV) "$n"/*/; do
        [ -d "$d" ] && readlink -f "$d"
      done
    done <<< "$_BPCUDA_NVIDIA_DIRS"
    echo /usr
  } | _bpcuda_uniq
}

_bpcuda_incdirs() {  # the include folders of the roots
  local r d
  while IFS= read -r r; do
    for d in "$r/include" "$r"/targets/*/include; do [ -d "$d" ] && echo "$d"; done
  done <<< "$_BPCUDA_ROOTS"
}

_bpcuda_libdirs() {  # the library folders of the roots
  local r d
  while IFS= read -r r; do
    for d in "$r/lib64" "$r/lib" "$r"/targets/*/lib "$r/lib/$_BPCUDA_TRIPLET" "$r/lib64/$_BPCUDA_TRIPLET"; do
      [ -d "$d" ] && readlink -f "$d"
    done
  done <<< "$_BPCUDA_ROOTS" | _bpcuda_uniq
}

_bpcuda_header() {  # _bpcuda_header REL: the first include folder holding REL (or its cccl/)
  local d
  while IFS= read -r d; do
    [ -z "$d" ] && continue
    [ -e "$d/$1" ] && { echo "$d"; return 0; }
    [ -e "$d/cccl/$1" ] && { echo "$d/cccl"; return 0; }
  done <<< "$_BPCUDA_INCDIRS"
  return 1
}

_bpcuda_lib() {  # _bpcuda_lib NAME [static]: the first library folder with libNAME.so[.N] (or .a)
  local d f
  while IFS= read -r d; do
    [ -z "$d" ] && continue
    if [ "${2:-}" = static ]; then
      [ -e "$d/lib$1.a" ] && { echo "$d"; return 0; }
    else
      for f in "$d/lib$1.so" "$d/lib$1".so.[0-9]*; do
        [ -e "$f" ] && { echo "$d"; return 0; }
      done
    fi
  done <<< "$_BPCUDA_LIBDIRS"
  return 1
}

_bpcuda_libfile() {  # _bpcuda_libfile DIR NAME: libNAME.so if there, else the newest libNAME.so.N
  if [ -e "$1/lib$2.so" ]; then echo "lib$2.so"
  else (cd "$1" && ls -d lib"$2".so.[0-9]* 2>/dev/null | sort -V | tail -1)
  fi
}

_bpcuda_libdesc() {  # _bpcuda_libdesc DIR NAME [WHAT]: DIR/file, or WHAT (NOT FOUND) when DIR is empty
  if [ -n "$1" ]; then echo "$1/$(_bpcuda_libfile "$1" "$2")"; else echo "${3:-NOT FOUND}"; fi
}

_bpcuda_nvcc_works() { [ -x "$1" ] && timeout 60 "$1" --version >/dev/null 2>&1; }

_bpcuda_find_nvcc() {  # prints the first nvcc that runs
  local c r n d
  for c in ${BP_NVCC:-} ${CUDACXX:-} $(type -ap nvcc 2>/dev/null); do
    _bpcuda_nvcc_works "$c" && { echo "$c"; return 0; }
    [ -e "$c" ] && echo "skipped $c: it does not run" >&2
  done
  for r in ${BP_CUDA_ROOTS:-} ${CUDA_HOME:-} ${CUDA_PATH:-} ${CUDAToolkit_ROOT:-} /usr/local/cuda \
           $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV) /opt/cuda; do
    _bpcuda_nvcc_works "$r/bin/nvcc" && { echo "$r/bin/nvcc"; return 0; }
  done
  while IFS= read -r n; do
    [ -z "$n" ] && continue
    for d in $(ls -d "$n"/cu[0-9]* 2>/dev/null | sort -rV) "$n"/cuda_nvcc "$n"/*; do
      _bpcuda_nvcc_works "$d/bin/nvcc" && { echo "$d/bin/nvcc"; return 0; }
    done
  done <<< "$_BPCUDA_NVIDIA_DIRS"
  return 1
}

# _bpcuda_merge SRC DST: links each entry of folder SRC into folder DST; an entry already there
# wins, except that two folders of one name are merged (entry by entry) into a real folder.
_bpcuda_merge() {
  local src=$1 dst=$2 e name old
  [ -d "$src" ] || return 0
  mkdir -p "$dst"
  for e in "$src"/* "$src"/.[!.]*; do
    [ -e "$e" ] || continue
    name=$(basename "$e")
    if [ ! -e "$dst/$name" ] && [ ! -L "$dst/$name" ]; then
      ln -s "$(readlink -f "$e")" "$dst/$name"
    elif [ -d "$e" ] && [ -d "$dst/$name" ] && [ "$(readlink -f "$e")" != "$(readlink -f "$dst/$name")" ]; then
      if [ -L "$dst/$name" ]; then
        old=$(readlink -f "$dst/$name"); rm "$dst/$name"; _bpcuda_merge "$old" "$dst/$name"
      fi
      _bpcuda_merge "$e" "$dst/$name"
    fi
  done
}

# _bpcuda_link_libs SRC DST: links the libraries of SRC into DST, and adds libX.so for each
# libX.so.N that has none (the newest version wins).
_bpcuda_link_libs() {
  local src=$1 dst=$2 f name base
  [ -d "$src" ] || return 0
  mkdir -p "$dst"
  for f in "$src"/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    [ -e "$dst/$name" ] || [ -L "$dst/$name" ] || ln -s "$(readlink -f "$f")" "$dst/$name"
  done
  while IFS= read -r name; do
    base=${name%%.so.*}.so
    ln -sfn "$(readlink -f "$src/$name")" "$dst/$base"   # sorted by version: the newest is last
  done < <(cd "$src" && ls -d lib*.so.[0-9]* 2>/dev/null | sort -V \
           | while IFS= read -r n; do [ -e "$src/${n%%.so.*}.so" ] || echo "$n"; done)
}

# ---------------------------------------------------------------- the search

# shellcheck disable=SC2034  # the BP_CUDA_* results are for the caller
bp_find_cuda_toolkit() {
  local work=${1:-/tmp/bp-cuda-find}
  local mode=${BP_CUDA_PREFIX:-auto}
  BP_CUDA_NVCC="" BP_CUDA_ROOT="" BP_CUDA_TOP="" BP_CUDA_VERSION="" BP_CUDNN_ROOT=""
  BP_CUDA_PREFIX_DIR="" BP_CUDA_LIBRARY_PATH="" BP_CUDA_MISSING="" BP_CUDA_NOTE=""
  BP_CUDA_CMAKE_ARGS=()
  _BPCUDA_TRIPLET=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
  echo "CUDA toolkit discovery (bench/find_cuda_toolkit.sh), piece by piece:"

  _BPCUDA_NVIDIA_DIRS=$(_bpcuda_nvidia_dirs)
  if [ -n "$_BPCUDA_NVIDIA_DIRS" ]; then
    local n
    while IFS= read -r n; do
      _bpcuda_say "pip nvidia/" "$n ($(ls "$n" | paste -sd " "))"
    done <<< "$_BPCUDA_NVIDIA_DIRS"
  else
    _bpcuda_say "pip nvidia/" "none in any python's site-packages"
  fi

  # nvcc, and the toolkit it belongs to (nvcc's TOP, as `nvcc -v --dryrun` prints it)
  local nvcc; nvcc=$(_bpcuda_find_nvcc) || nvcc=""
  if [ -n "$nvcc" ]; then
    local top probe; probe=$(mktemp -d)
    echo 'int main() { return 0; }' > "$probe/p.cu"
    top=$(cd "$probe" && timeout 60 "$nvcc" -v --dryrun p.cu 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
    rm -rf "$probe"
    [ -n "$top" ] && [ -d "$top" ] || top=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    BP_CUDA_TOP=$(readlink -f "$top")
    BP_CUDA_VERSION=$("$nvcc" --version 2>/dev/null | grep -oE 'V[0-9]+\.[0-9]+\.[0-9]+' | head -1 | tr -d V)
    _bpcuda_say nvcc "$nvcc (V${BP_CUDA_VERSION:-?}; its toolkit root, TOP: $BP_CUDA_TOP)"
  else
    _bpcuda_say nvcc "NOT FOUND (PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda*, pip nvidia/*/bin)"
    BP_CUDA_MISSING="nvcc"
  fi

  _BPCUDA_ROOTS=$(_bpcuda_roots)
  _BPCUDA_INCDIRS=$(_bpcuda_incdirs)
  _BPCUDA_LIBDIRS=$(_bpcuda_libdirs)

  # nvvm (cicc + libdevice) and crt (headers + link stubs): nvcc's own first
  local nvvm="" crt_bin="" r
  while IFS= read -r r; do
    [ -z "$nvvm" ] && [ -x "$r/nvvm/bin/cicc" ] && [ -d "$r/nvvm/libdevice" ] && nvvm=$r/nvvm
    [ -z "$crt_bin" ] && [ -e "$r/bin/crt/link.stub" ] && crt_bin=$r/bin/crt
  done <<< "$_BPCUDA_ROOTS"
  _bpcuda_say nvvm "${nvvm:-NOT FOUND (nvvm/bin/cicc)}"
  [ -z "$nvvm" ] && BP_CUDA_MISSING+=" nvvm"
  local inc_rt inc_crt inc_blas inc_thrust inc_nvtx inc_dnn
  inc_rt=$(_bpcuda_header cuda_runtime.h) || inc_rt=""
  inc_crt=$(_bpcuda_header crt/host_defines.h) || inc_crt=""
  inc_blas=$(_bpcuda_header cublas_v2.h) || inc_blas=""
  inc_thrust=$(_bpcuda_header thrust/version.h) || inc_thrust=""
  inc_nvtx=$(_bpcuda_header nvtx3/nvToolsExt.h) || inc_nvtx=""
  inc_dnn=$(_bpcuda_header cudnn.h) || inc_dnn=""
  _bpcuda_say crt "headers $(if [ -n "$inc_crt" ]; then echo "$inc_crt/crt"; else echo "NOT FOUND"; fi); link stubs ${crt_bin:-not found (needed for -rdc only)}"
  [ -z "$inc_crt" ] && BP_CUDA_MISSING+=" crt"
  _bpcuda_say cuda_runtime.h "${inc_rt:-NOT FOUND}"; [ -z "$inc_rt" ] && BP_CUDA_MISSING+=" cuda_runtime.h"
  _bpcuda_say cublas_v2.h "${inc_blas:-NOT FOUND}"; [ -z "$inc_blas" ] && BP_CUDA_MISSING+=" cublas_v2.h"
  local tv=""
  [ -n "$inc_thrust" ] && tv=$(sed -n 's/^#define THRUST_VERSION \([0-9]*\).*/\1/p' "$inc_thrust/thrust/version.h" | head -1)
  _bpcuda_say "thrust (CCCL)" "${inc_thrust:-NOT FOUND}${tv:+ (THRUST_VERSION $tv)}"
  [ -z "$inc_thrust" ] && BP_CUDA_MISSING+=" thrust"
  _bpcuda_say nvtx3 "${inc_nvtx:-NOT FOUND}"; [ -z "$inc_nvtx" ] && BP_CUDA_MISSING+=" nvtx3"

  local lib_rt lib_rts lib_devrt lib_blas lib_blaslt lib_dnn
  lib_rt=$(_bpcuda_lib cudart) || lib_rt=""
  lib_rts=$(_bpcuda_lib cudart_static static) || lib_rts=""
  lib_devrt=$(_bpcuda_lib cudadevrt static) || lib_devrt=""   # nvcc links -lcudadevrt by default
  lib_blas=$(_bpcuda_lib cublas) || lib_blas=""
  lib_blaslt=$(_bpcuda_lib cublasLt) || lib_blaslt=""
  lib_dnn=$(_bpcuda_lib cudnn) || lib_dnn=""
  _bpcuda_say cudart "$(_bpcuda_libdesc "$lib_rt" cudart); static: $(if [ -n "$lib_rts" ]; then echo "$lib_rts/libcudart_static.a"; else echo "NOT FOUND"; fi)"
  [ -z "$lib_rt" ] && BP_CUDA_MISSING+=" cudart"
  [ -z "$lib_rts" ] && BP_CUDA_MISSING+=" cudart_static"
  _bpcuda_say cudadevrt "$(if [ -n "$lib_devrt" ]; then echo "$lib_devrt/libcudadevrt.a"; else echo "NOT FOUND"; fi)"
  [ -z "$lib_devrt" ] && BP_CUDA_MISSING+=" cudadevrt"
  _bpcuda_say cublas "$(_bpcuda_libdesc "$lib_blas" cublas)"
  [ -z "$lib_blas" ] && BP_CUDA_MISSING+=" cublas"
  _bpcuda_say cublasLt "$(_bpcuda_libdesc "$lib_blaslt" cublasLt)"
  [ -z "$lib_blaslt" ] && BP_CUDA_MISSING+=" cublasLt"
  local dv=""
  if [ -n "$inc_dnn" ]; then
    local vh=$inc_dnn/cudnn_version.h; [ -e "$vh" ] || vh=$inc_dnn/cudnn.h
    dv=$(awk '/^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' "$vh")
  fi
  _bpcuda_say cudnn.h "${inc_dnn:-not found (optional: GPU convolutions are disabled without it)}${dv:+ (cuDNN $dv)}"
  _bpcuda_say libcudnn "$(_bpcuda_libdesc "$lib_dnn" cudnn "not found (optional)")"
  BP_CUDA_MISSING=${BP_CUDA_MISSING# }

  if [ -z "$nvcc" ]; then
    BP_CUDA_NOTE="no nvcc"
    echo "  => no nvcc: the CUDA build cannot be configured"
    return 1
  fi

  # Can CMake use nvcc's own toolkit as it is? (headers in TOP's include folder, unversioned
  # libraries in TOP/lib64 or TOP/targets/*/lib, where nvcc's profile and FindCUDAToolkit look.)
  local top=$BP_CUDA_TOP why=() d
  local top_inc="" top_lib=""
  for d in "$top/include" "$top"/targets/*/include; do [ -e "$d/cuda_runtime.h" ] && top_inc=$d && break; done
  for d in "$top/lib64" "$top"/targets/*/lib; do [ -e "$d/libcudart.so" ] && top_lib=$d && break; done
  [ -n "$top_inc" ] || why+=("no cuda_runtime.h under TOP/include")
  [ -n "$top_lib" ] || why+=("no unversioned libcudart.so in TOP/lib64 or TOP/targets/*/lib")
  if [ -n "$top_inc" ]; then
    [ -e "$top_inc/cublas_v2.h" ] || why+=("cublas_v2.h outside the toolkit")
    [ -e "$top_inc/thrust/version.h" ] || [ -e "$top_inc/cccl/thrust/version.h" ] || why+=("thrust outside the toolkit")
    [ -e "$top_inc/nvtx3/nvToolsExt.h" ] || why+=("nvtx3 outside the toolkit")
    [ -e "$top_inc/crt/host_defines.h" ] || why+=("crt headers outside the toolkit")
  fi
  if [ -n "$top_lib" ]; then
    [ -e "$top_lib/libcudart_static.a" ] || why+=("no libcudart_static.a beside libcudart.so")
    [ -e "$top_lib/libcudadevrt.a" ] || why+=("no libcudadevrt.a beside libcudart.so")
    [ -e "$top_lib/libcublas.so" ] || why+=("no unversioned libcublas.so in the toolkit")
    [ -e "$top_lib/libcublasLt.so" ] || why+=("no unversioned libcublasLt.so in the toolkit")
  fi
  [ "$nvvm" = "$top/nvvm" ] || why+=("nvvm outside the toolkit")
  local use_prefix=0
  case "$mode" in
    always) use_prefix=1; why+=("BP_CUDA_PREFIX=always") ;;
    never) use_prefix=0 ;;
    *) (( ${#why[@]} )) && use_prefix=1 ;;
  esac
  if (( use_prefix )) && [ -n "$BP_CUDA_MISSING" ] && [ "${BP_CUDA_MISSING// /}" != "" ]; then
    echo "  (required pieces missing: $BP_CUDA_MISSING; the prefix gets what there is)"
  fi

  if (( ! use_prefix )); then
    BP_CUDA_NVCC=$nvcc
    BP_CUDA_ROOT=$top
    BP_CUDA_LIBRARY_PATH=${top_lib:-${lib_rt:-}}
    if (( ${#why[@]} )); then
      echo "  => BP_CUDA_PREFIX=never: using the toolkit at $top as it is, although: $(printf '%s; ' "${why[@]}" | sed 's/; $//')"
    else
      echo "  => nvcc's toolkit $top holds every piece under the names CMake looks for: used as it is"
    fi
    BP_CUDA_NOTE="toolkit $top"
  else
    local p=$work/cuda-prefix
    rm -rf "$p" && mkdir -p "$p/bin" "$p/include" "$p/lib64" && ln -s lib64 "$p/lib"
    # bin: nvcc's programs (the folder of the real nvcc binary), with our own profile
    local bindir=$top/bin
    [ -x "$bindir/nvcc" ] || bindir=$(dirname "$(readlink -f "$nvcc")")
    local f
    for f in "$bindir"/*; do
      [ "$(basename "$f")" = nvcc.profile ] && continue
      ln -s "$(readlink -f "$f")" "$p/bin/$(basename "$f")"
    done
    [ -e "$p/bin/crt" ] || { [ -n "$crt_bin" ] && ln -s "$crt_bin" "$p/bin/crt"; }
    [ -n "$nvvm" ] && ln -s "$nvvm" "$p/nvvm"
    cat > "$p/bin/nvcc.profile" <<'PROFILE'
# written by bench/find_cuda_toolkit.sh: TOP is this prefix of links
TOP              = $(_HERE_)/..

CICC_PATH        = $(TOP)/nvvm/bin
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice

LD_LIBRARY_PATH += $(TOP)/lib64:
PATH            += $(CICC_PATH):$(_HERE_):

INCLUDES        +=  "-I$(TOP)/include" $(_SPACE_)
SYSTEM_INCLUDES +=  "-isystem" "$(TOP)/include/cccl" $(_SPACE_)

LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/lib64/stubs" "-L$(TOP)/lib64"

CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
PROFILE
    for f in version.json version.txt; do [ -e "$top/$f" ] && ln -s "$(readlink -f "$top/$f")" "$p/$f"; done
    # include: the toolkit's folder first, then each piece's
    for d in "$top_inc" "$inc_rt" "$inc_crt" "$inc_blas" "$inc_nvtx" "$inc_dnn"; do
      [ -n "$d" ] && _bpcuda_merge "$d" "$p/include"
    done
    if [ -n "$inc_thrust" ] && [ ! -e "$p/include/thrust/version.h" ] && [ ! -e "$p/include/cccl/thrust/version.h" ]; then
      _bpcuda_merge "$inc_thrust" "$p/include/cccl"   # nvcc's profile adds include/cccl
    fi
    # lib64: the toolkit's libraries, then each piece's folder
    for d in "$top/lib64" "$top/lib" "$top"/targets/*/lib "$lib_rt" "$lib_rts" "$lib_devrt" "$lib_blas" "$lib_blaslt" "$lib_dnn"; do
      [ -n "$d" ] && [ -d "$d" ] && _bpcuda_link_libs "$d" "$p/lib64"
    done
    BP_CUDA_PREFIX_DIR=$p
    BP_CUDA_NVCC=$p/bin/nvcc
    BP_CUDA_ROOT=$p
    BP_CUDA_LIBRARY_PATH=$p/lib64
    echo "  => built the prefix $p (bin, include, lib64, nvvm of links), because: $(printf '%s; ' "${why[@]}" | sed 's/; $//')"
    BP_CUDA_NOTE="prefix of links over $top"
  fi

  # cuDNN: the toolkit's (prefix's) own copy, else a prefix of its own
  if [ -n "$inc_dnn" ] && [ -n "$lib_dnn" ]; then
    if [ -e "$BP_CUDA_ROOT/include/cudnn.h" ] && ls "$BP_CUDA_ROOT"/lib64/libcudnn.so >/dev/null 2>&1; then
      BP_CUDNN_ROOT=$BP_CUDA_ROOT
    else
      local q=$work/cudnn-prefix
      rm -rf "$q" && mkdir -p "$q/include" "$q/lib"
      _bpcuda_merge "$inc_dnn" "$q/include"
      _bpcuda_link_libs "$lib_dnn" "$q/lib"
      BP_CUDNN_ROOT=$q
      BP_CUDA_LIBRARY_PATH+=":$q/lib"
    fi
    BP_CUDA_NOTE+=", cuDNN ${dv:-?}"
  else
    BP_CUDA_NOTE+=", no cuDNN"
  fi

  BP_CUDA_CMAKE_ARGS=(-DCMAKE_CUDA_COMPILER="$BP_CUDA_NVCC" -DCUDAToolkit_ROOT="$BP_CUDA_ROOT")
  [ -n "$BP_CUDNN_ROOT" ] && BP_CUDA_CMAKE_ARGS+=(-DCUDNN_ROOT="$BP_CUDNN_ROOT")
  _bpcuda_say "CMake gets" "${BP_CUDA_CMAKE_ARGS[*]}"
  _bpcuda_say "run time" "LD_LIBRARY_PATH += $BP_CUDA_LIBRARY_PATH"
  [ -n "$BP_CUDA_MISSING" ] && { echo "  MISSING required pieces: $BP_CUDA_MISSING"; return 1; }
  return 0
}

# Run alone: find, print, and check that the nvcc CMake gets compiles and links a program.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  bp_find_cuda_toolkit "${1:-/tmp/bp-cuda-find}"
  rc=$?
  if [ -n "$BP_CUDA_NVCC" ]; then
    t=$(mktemp -d)
    printf '#include <cuda_runtime.h>\n#include <cublas_v2.h>\n#include <thrust/version.h>\n#include <nvtx3/nvToolsExt.h>\n__global__ void k(float *x) { x[threadIdx.x] = 1; }\nint main() { cublasHandle_t h; (void)h; k<<<1, 1>>>(nullptr); return cudaGetLastError() == cudaSuccess ? 0 : 0; }\n' > "$t/probe.cu"
    if (cd "$t" && "$BP_CUDA_NVCC" -arch=sm_90 -o probe probe.cu -lcublas 2> err.txt); then
      echo "  probe: $BP_CUDA_NVCC compiled and linked a kernel + cuBLAS program (sm_90)"
    else
      echo "  probe: $BP_CUDA_NVCC FAILED to build a kernel + cuBLAS program:"; sed 's/^/    /' "$t/err.txt" | head -20
      rc=1
    fi
    rm -rf "$t"
  fi
  exit "$rc"
fi
