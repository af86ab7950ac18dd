#!/usr/bin/env bash
# The GPU checks of the CUDA backend, on a bare machine with an NVIDIA GPU, CUDA and Python (PyTorch and JAX
# for the comparisons) but no internet.  It needs benchmarks/gpu-wheelhouse/ (made by gpu_wheelhouse.sh where
# there is internet, and carried along): pycuda is installed from its wheel there, or built from its sdist.
# Then: the CUDA tests (the device suites run on device="cuda" when a GPU is present), and the GPU benchmarks
# (benchmarks/run_all.py --device cuda).  Everything it prints goes to $OUT/gpu_check.log too when $OUT is set.
# Under 8 minutes on one H200.  Exit status: non-zero if the install or the tests fail.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$LOG") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
PYTHON="${PYTHON:-python3}"
VENV=/tmp/graphc-gpu-venv
set -e
"$PYTHON" -m venv --system-site-packages "$VENV"  # keeps the machine's numpy, llvmlite, torch, jax
PIP=("$VENV/bin/python" -m pip install -q --no-index --find-links benchmarks/gpu-wheelhouse)
export CUDA_ROOT="${CUDA_ROOT:-/usr/local/cuda}"
export PATH="${CUDA_ROOT}/bin:$PATH"
"${PIP[@]}" pycuda || "${PIP[@]}" --no-build-isolation benchmarks/gpu-wheelhouse/pycuda-*.tar.gz
"${PIP[@]}" --no-deps --no-build-isolation -e .
"$VENV/bin/python" - <<'PY'
import graphc as gc, numpy as np
from graphc.backends.cuda.driver import cuda_device, gpu_available
assert gpu_available(), "pycuda sees no GPU"
d = cuda_device(0)
print("graphc sees", d.gpu.name(), d.arch)
x = gc.placeholder("float32", (1000,))
print("smoke:", gc.function([x], gc.sum(gc.exp(x)), device="cuda")(np.zeros(1000, np.float32)))
PY
set +e
start=$(date +%s)
timeout 300 "$VENV/bin/python" -m pytest -q -n 8 -p no:cacheprovider -k "cuda and not cuda-sim" \
    tests/test_ops_elementwise.py tests/test_ops_reduce.py tests/test_ops_shape.py tests/test_ops_linalg.py \
    tests/test_ops_nn.py tests/test_grad_nn.py tests/test_cuda_sim.py tests/test_cpu_coverage.py
tests=$?
echo "GPU tests: exit status $tests in $(( $(date +%s) - start )) s"
(cd benchmarks && timeout 200 "$VENV/bin/python" run_all.py --device cuda --markdown)
echo "GPU benchmarks: exit status $?"
exit "$tests"
