"""Backends: where an optimised graph runs.  ``device="cpu"`` (the LLVM CPU backend, the default),
``device="cuda"`` (NVIDIA GPUs: PTX through LLVM, run with pycuda), ``device="cuda-sim"`` (the CUDA
backend's kernels in an emulator) and ``device="reference"`` (the NumPy reference interpreter, the
ground truth).  See base.py for the
interface a new backend implements, and docs/architecture.md for how to add one."""

from graphc.backends.base import register_backend

register_backend("reference", "graphc.backends.reference:ReferenceBackend")
register_backend("cpu", "graphc.backends.cpu.backend:CpuBackend")
register_backend("cuda", "graphc.backends.cuda.backend:CudaBackend")
register_backend("cuda-sim", "graphc.backends.cuda_sim.backend:CudaSimBackend")
