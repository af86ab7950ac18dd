"""cuBLAS through ctypes: the matrix products of the CUDA backend (as XLA and TensorFlow call it).

The library comes from the ``nvidia-cublas-cu12`` wheel (in graphc's ``cuda`` extra) or the CUDA
toolkit; ``GRAPHC_CUBLAS`` names a file to use instead.  Only ``cublas{S,D}gemm_v2`` is called, on
device pointers, on the stream the backend runs on.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np

from graphc.errors import DeviceUnavailableError

_OPS = {"N": 0, "T": 1}  # CUBLAS_OP_N, CUBLAS_OP_T
_NAMES = ("libcublas.so.12", "libcublas.so.13", "libcublas.so")


def _library_candidates() -> list[str]:
    explicit = os.environ.get("GRAPHC_CUBLAS")
    if explicit:
        return [explicit]
    found = []
    for entry in sys.path:
        folder = Path(entry) / "nvidia" / "cublas" / "lib"
        found += [str(folder / name) for name in _NAMES if (folder / name).is_file()]
    for entry in sys.path:  # the CUDA 13 wheels' layout
        folder = Path(entry) / "nvidia" / "cu13" / "lib"
        found += [str(folder / name) for name in _NAMES if (folder / name).is_file()]
    homes = [Path(os.environ[v]) for v in ("CUDA_HOME", "CUDA_PATH") if v in os.environ] + [Path("/usr/local/cuda")]
    for home in homes:
        folder = home / "lib64"
        found += [str(folder / name) for name in _NAMES if (folder / name).is_file()]
    return [*found, *_NAMES]  # last: the dynamic loader's own search


def _load() -> ctypes.CDLL:
    errors = []
    for candidate in _library_candidates():
        try:
            return ctypes.CDLL(candidate)
        except OSError as exc:
            errors.append(str(exc))
    raise DeviceUnavailableError("device='cuda' calls cuBLAS for matrix products, and it was not found "
                                 f"({'; '.join(errors[-2:])}): pip install nvidia-cublas-cu12 (in graphc's 'cuda' "
                                 "extra), or set GRAPHC_CUBLAS to the library's path")


class CublasError(DeviceUnavailableError):
    """A cuBLAS call failed (its status code is in the message)."""


class Cublas:
    """One cuBLAS handle bound to ``stream`` (a CUstream handle, as an int) in the current context."""

    def __init__(self, stream: int) -> None:
        self.lib = _load()
        self.handle = ctypes.c_void_p()
        self._check(self.lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self._check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream)), "cublasSetStream")
        self._gemm = {np.dtype(np.float32): (self.lib.cublasSgemm_v2, ctypes.c_float),
                      np.dtype(np.float64): (self.lib.cublasDgemm_v2, ctypes.c_double)}

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status:
            raise CublasError(f"{what} failed with cuBLAS status {status}")

    def gemm(self, dtype: np.dtype, op_a: str, op_b: str, m: int, n: int, k: int, a: int, lda: int, b: int, ldb: int,
             c: int, ldc: int) -> None:
        """Column-major ``C (m x n) = op(A) (m x k) @ op(B) (k x n)`` on device addresses."""
        fn, scalar = self._gemm[np.dtype(dtype)]
        one, zero = scalar(1.0), scalar(0.0)
        for value in (m, n, k, lda, ldb, ldc):
            if not 0 <= value < 2**31:
                raise CublasError(f"a matrix product of {m}x{k} @ {k}x{n} exceeds cuBLAS's 32-bit sizes")
        self._check(fn(self.handle, _OPS[op_a], _OPS[op_b], m, n, k, ctypes.byref(one), ctypes.c_void_p(a), lda,
                       ctypes.c_void_p(b), ldb, ctypes.byref(zero), ctypes.c_void_p(c), ldc), "cublasGemm")


__all__ = ["Cublas", "CublasError"]
