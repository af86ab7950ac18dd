"""Lowering: graph IR kernels (ops and fused kernels) to loop IR kernels with explicit loops,
indices, loads and stores.  Codegen only ever sees the loop IR (DESIGN.md: two IRs, never mixed)."""
