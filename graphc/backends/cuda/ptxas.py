"""NVIDIA's PTX assembler, to check (and assemble) generated PTX without a GPU.

``ptxas`` ships in the ``nvidia-cuda-nvcc`` wheel and in every CUDA toolkit; ``GRAPHC_PTXAS`` names one
to use instead.  The test suite assembles the backend's kernels with it for several architectures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from graphc.backends.cuda.nvptx import CudaToolkitMissing, check_arch


def find_ptxas() -> str | None:
    """The path of a ``ptxas`` executable: ``GRAPHC_PTXAS``, the ``nvidia-cuda-nvcc`` wheel, ``CUDA_HOME``,
    then ``PATH`` (None if there is none)."""
    explicit = os.environ.get("GRAPHC_PTXAS")
    if explicit:
        return explicit
    candidates = [Path(entry) / "nvidia" / "cuda_nvcc" / "bin" / "ptxas" for entry in sys.path if entry]
    candidates += [Path(os.environ[v]) / "bin" / "ptxas" for v in ("CUDA_HOME", "CUDA_PATH") if v in os.environ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which("ptxas")


class PtxasError(CudaToolkitMissing):
    """ptxas refused generated PTX (a graphc bug): the message holds its diagnostics."""


def assemble(ptx: str, arch: str) -> bytes:
    """``ptx`` assembled for ``arch`` (``sm_80``...) into a cubin; PtxasError with ptxas's messages if it fails."""
    ptxas = find_ptxas()
    if ptxas is None:
        raise CudaToolkitMissing("ptxas was not found: pip install nvidia-cuda-nvcc-cu12, or set CUDA_HOME or "
                                 "GRAPHC_PTXAS")
    with tempfile.TemporaryDirectory(prefix="graphc-ptxas-") as folder:
        source, output = Path(folder) / "kernels.ptx", Path(folder) / "kernels.cubin"
        source.write_text(ptx)
        result = subprocess.run([ptxas, f"-arch={check_arch(arch)}", str(source), "-o", str(output)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode:
            raise PtxasError(f"ptxas -arch={arch} failed:\n{result.stderr.strip()}")
        return output.read_bytes()


__all__ = ["PtxasError", "assemble", "find_ptxas"]
