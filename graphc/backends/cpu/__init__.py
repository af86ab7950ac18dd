"""The LLVM CPU backend (``device="cpu"``): its lowering policy and executable (backend.py,
executable.py), the loop-IR-to-LLVM emitter (emitter.py), the generated GEMM (gemm.py), the thread
pool (threadpool.py), the runtime library they form (runtime_lib.py), the MCJIT code library
(library.py) and the choice of CPU level (target.py)."""
