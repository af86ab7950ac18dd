#!/usr/bin/env bash
# Prepare benchmarks/gpu-wheelhouse/ (git-ignored) for benchmarks/gpu_check.sh, on a machine with internet:
# a pycuda wheel built for the GPU machine's Python (3.12 there; CUDA headers from CUDA_ROOT, default
# /usr/local/cuda), pycuda's sdist as a fallback that gpu_check.sh builds there, and the pure wheels pycuda
# needs.  Usage: benchmarks/gpu_wheelhouse.sh [PYTHON] (default: python3.12).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${1:-python3.12}"
OUT=gpu-wheelhouse
PYCUDA_VERSION=2026.1
mkdir -p "$OUT"
export CUDA_ROOT="${CUDA_ROOT:-/usr/local/cuda}"
export PATH="${CUDA_ROOT}/bin:$PATH"
url="$(curl -sSf -H "Accept: application/vnd.pypi.simple.v1+json" https://pypi.org/simple/pycuda/ | "$PYTHON" -c \
    "import json, sys; print(next(f['url'] for f in json.load(sys.stdin)['files']
                                  if f['filename'] == 'pycuda-${PYCUDA_VERSION}.tar.gz'))")"
curl -sSfLo "$OUT/pycuda-${PYCUDA_VERSION}.tar.gz" "$url"  # the sdist: gpu_check.sh builds it if the wheel fails
build="$(mktemp -d)"
tar -xzf "$OUT/pycuda-${PYCUDA_VERSION}.tar.gz" -C "$build"
if ! (cd "$build/pycuda-${PYCUDA_VERSION}" \
        && "$PYTHON" configure.py --cuda-root="$CUDA_ROOT" --no-cuda-enable-curand >/dev/null \
        && "$PYTHON" -m pip wheel -q --no-deps -w "$OLDPWD/$OUT" .); then  # graphc uses no cuRAND
    echo "gpu_wheelhouse.sh: no pycuda wheel built here (it links the CUDA driver's libcuda.so);" \
         "gpu_check.sh builds the sdist on the GPU machine instead" >&2
fi
rm -rf "$build"
version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
"$PYTHON" -m pip download -q --only-binary :all: --python-version "$version" \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    pytools platformdirs mako markupsafe siphash24 typing-extensions -d "$OUT"
ls -l "$OUT"
