"""``device="cuda"``: the GPU backend (NVPTX through LLVM, run with pycuda), and ``device="cuda-sim"``, the
CUDA emulator that runs the same launches on the CPU.  See docs/cuda-backend.md."""
