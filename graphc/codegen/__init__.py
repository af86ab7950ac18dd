"""Code generation: LLVM IR built with llvmlite's IRBuilder, optimised and compiled for the CPU."""
