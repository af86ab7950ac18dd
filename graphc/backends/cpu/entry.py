"""The names of the functions a compiled graph exports (emitter.py defines them; executables look them up)."""

ENTRY = "graphc_entry"  # graphc_entry(void **buffers): runs every kernel in order
OBJECT_ENTRY = "graphc_entry_objects"  # the same, with per-call slots holding NumPy array objects

__all__ = ["ENTRY", "OBJECT_ENTRY"]
