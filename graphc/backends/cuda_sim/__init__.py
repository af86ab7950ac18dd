"""``device="cuda-sim"``: the CUDA emulator.  It runs the CUDA backend's own lowered and planned
kernels on the CPU with CUDA's execution model (a grid of threads per launch, launches in stream
order, device memory), checking bounds and data races, so the GPU lowering is tested without a GPU."""
