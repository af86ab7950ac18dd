"""What every LLVM backend shares: targets and LLVM's optimisation pipeline (target.py), how graphc's
dtypes are represented (types.py), every elementwise op's scalar semantics (scalar.py, with mathlib.py's
inline float32 functions) and run-time sizes (sizes.py).  Built with llvmlite's IRBuilder."""
