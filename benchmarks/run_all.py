"""Run every graphc benchmark and print a summary table with the targets, met or not.

    python3 benchmarks/run_all.py [--quick] [--only a,b,...] [--threads N] [--repeat N] [--markdown] [--in-process]
    python3 benchmarks/run_all.py --device cuda [...]      the GPU sections (i)-(m) of bench_gpu.py

Sections (see docs/performance.md):
  (a) a**2 + b**2 + 2*a*b, 1e6 and 1e7 float32          target at 1e7: >= 4x NumPy
  (b) sigmoid(a*b + c) * tanh(a) + log1p(exp(-abs(c)))     targets: at 1e6 >= 1.2x jax.jit, at 1e7 >= 6x NumPy
  (c) (a)'s GB/s against np.copyto's GB/s                 target: within 1.5x (ratio >= 0.67)
  (d) float32 matmul 256 and 1024, same threads as NumPy  target: >= 0.8x NumPy
  (e) two_layer_relu.py training step                      target: faster than NumPy by hand and jax.jit
  (f) 784-500-10 classifier training step, batch 256       target: faster than NumPy by hand and jax.jit
  (g) call overhead of x + 1 on one element               target: <= 3 us gc.function, <= 15 us Session.run
  (h) compile time of (f), fresh processes                 target: <= 1 s cold, <= 0.1 s from the disk cache
  (o) LSTM training step through gc.scan (T=50, 32, 64->128)  targets: >= 2x PyTensor, >= 1.2x jax.jit,
      >= 1x torch nn.LSTM; its cold compile <= 1 s
  (p) a gc.while_loop iteration                              target: < 5 ns
  (q) graphc.nn fit: an epoch of a 784-256-128-10 MLP, 60000 examples, Adam, batch 128   targets: >= 3x tf.keras's
      fit, > 1x a torch loop; graphc's compile time and the native steps' share of the epoch
  (t) graphc.nn fit: an epoch of a small CNN (conv 16, pool, conv 32, pool, dense 10), 10000 images, likewise

Each section runs in its own child process (so a crash in graphc's native code fails that section only, and
every section starts from a clean heap); ``--in-process`` runs them all in this process instead.  Inside a
section, graphc and the alternatives are timed in the same process, interleaved (round-robin).  The thread
variables of NumPy's BLAS are set from ``--threads`` here, before NumPy is imported, and children inherit them.
Exit status: 1 if a section failed (a result that differs from NumPy's, a crash), else 0; missed targets are
reported, not failures.
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # first of all: the BLAS/OpenMP thread variables from --threads, before NumPy is imported

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402

from _harness import Section, make_parser, parse_args, print_header, run_section, run_sections, summary  # noqa: E402
from _timing import Config, Row, Target  # noqa: E402

SECTION_MODULES = {
    "a": "bench_elementwise", "b": "bench_elementwise", "b64": "bench_elementwise", "c": "bench_elementwise",
    "d": "bench_matmul", "s": "bench_gemm_shapes",
    "e": "bench_training", "f": "bench_training", "n": "bench_training",
    "g": "bench_overhead",
    "h": "bench_compile",
    "o": "bench_loops", "p": "bench_loops",
    "q": "bench_nn", "t": "bench_nn",
}
GPU_SECTION_MODULES = {key: "bench_gpu" for key in "ijklm"}  # --device cuda (or cuda-sim, at smoke sizes)
DEVICE_OPTION = "--device"
CHILD_OPTION = "--rows-json"


def section(key: str) -> Section:
    """The section ``key`` from its module (imported on demand: a child imports only what it runs)."""
    return importlib.import_module({**SECTION_MODULES, **GPU_SECTION_MODULES}[key]).SECTIONS[key]


def device_of(argv: Sequence[str] | None) -> str:
    """The ``--device`` on the command line (``cpu`` when absent), read before the parser is built: it
    chooses the sections."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        if arg == DEVICE_OPTION and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(DEVICE_OPTION + "="):
            return arg.split("=", 1)[1]
    return "cpu"


def rows_to_json(rows: list[Row], error: str | None) -> str:
    """A child's result for the parent: its rows and its error (None if it ran through)."""
    return json.dumps({"rows": [asdict(r) for r in rows], "error": error})


def rows_from_json(text: str) -> tuple[list[Row], str | None]:
    """The inverse of :func:`rows_to_json`."""
    data = json.loads(text)
    rows = []
    for r in data["rows"]:
        target = Target(**r.pop("target")) if r.get("target") else None
        r.pop("target", None)
        rows.append(Row(**r, target=target))
    return rows, data["error"]


def run_isolated(chosen: Sequence[str], cfg: Config, markdown: bool) -> int:
    """Each section in a child process (its output streams through); rows come back as JSON."""
    rows: list[Row] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="graphc-bench-") as tmp:
        for key in chosen:
            path = os.path.join(tmp, f"{key}.json")
            cmd = [sys.executable, "-X", "faulthandler", os.path.abspath(__file__), "--only", key,
                   "--threads", str(cfg.threads), "--repeat", str(cfg.repeat), CHILD_OPTION, path,
                   DEVICE_OPTION, os.environ.get("GRAPHC_BENCH_DEVICE", "cpu")]
            if cfg.quick:
                cmd.append("--quick")
            sys.stdout.flush()
            result = subprocess.run(cmd)
            if os.path.exists(path):
                with open(path) as f:
                    section_rows, error = rows_from_json(f.read())
                rows += section_rows
                if error is not None:
                    failed[key] = error
            else:
                failed[key] = f"the child process died (exit status {result.returncode})"
                print(f"({key}) FAILED: {failed[key]}", flush=True)
    print(summary(rows, failed, cfg.quick, markdown), flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen sections (a child runs one and writes its rows); exit status."""
    device = device_of(argv)
    keys = list(SECTION_MODULES if device == "cpu" else GPU_SECTION_MODULES)
    os.environ["GRAPHC_BENCH_DEVICE"] = device  # read by bench_gpu in this process and in the children
    parser = make_parser(keys, __doc__ or "")
    parser.add_argument(DEVICE_OPTION, default="cpu",
                        help="cpu (default: sections a-h), or cuda / cuda:N (sections i-m, on a GPU; cuda-sim runs "
                             "them on the CUDA emulator at smoke sizes)")
    parser.add_argument("--in-process", action="store_true", help="run every section in this process")
    parser.add_argument(CHILD_OPTION, default=None, help=argparse.SUPPRESS)  # internal: a child writes its rows here
    cfg, chosen, args = parse_args(parser, keys, argv)
    if args.rows_json:  # a child: one section, no header or summary
        (key,) = chosen
        rows, error = run_section(key, section(key), cfg)
        with open(args.rows_json, "w") as f:
            f.write(rows_to_json(rows, error))
        return 1 if error else 0
    print_header(cfg)
    if args.in_process:
        return run_sections({key: section(key) for key in chosen}, chosen, cfg, args.markdown)
    return run_isolated(chosen, cfg, args.markdown)


if __name__ == "__main__":
    raise SystemExit(main())
