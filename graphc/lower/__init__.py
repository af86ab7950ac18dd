"""Lowering: graph nodes and fused kernels to loop IR kernels with explicit loops, indices, loads and
stores.  Backends only ever see the loop IR (DESIGN.md: two IRs, never mixed).

``loopir`` is the IR; ``policy`` the choices a backend makes about it; ``builder`` the loop builder rules
use; ``registry`` the table of rules (``@lowers``) and ``lower_node``; ``checks`` the run-time checks
every kernel gets; the rule modules (``elementwise``, ``reduce``, ``nn``, ``linalg``, ``gather``,
``index_maps``, ``shape``, ``conv``, ``fused``, all imported by ``rules``) one family of ops each; and
``program`` a whole graph lowered, its buffers given slots and lifetimes (shared by the JIT and AOT)."""
