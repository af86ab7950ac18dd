"""Backends: where an optimised graph runs.  ``device="cpu"`` (the LLVM CPU backend, the default) and
``device="reference"`` (the NumPy reference interpreter, the ground truth).  See base.py for the
interface a new backend implements, and docs/architecture.md for how to add one."""

from graphc.backends.base import register_backend

register_backend("reference", "graphc.backends.reference:ReferenceBackend")
register_backend("cpu", "graphc.backends.cpu.backend:CpuBackend")
