"""The ``graphc`` command (also ``python -m graphc``).

    graphc inspect FILE.gcg [--level N] [--format text|dot|html|llvm|asm|ptx] [-o OUT]
                   [--shape NAME=D0,D1,...]... [--dim N] [--arch sm_XY]

Subcommands live in ``COMMANDS`` (name -> function adding its parser); each parser sets ``run`` to
the function that carries it out, returning the exit status.  ``inspect`` output formats live in
``INSPECT_FORMATS`` (name -> function writing that view of an optimised graph).

Exit status: 0 on success, 2 for a usage error, a missing or unreadable file or a bad graph file
(one line on stderr, never a traceback), 1 when graphc rejects the graph itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

PROG = "graphc"


class CommandError(Exception):
    """A user-facing failure: printed as ``graphc: error: <message>`` with exit status ``status``."""

    def __init__(self, message: str, status: int = 2, prog: str = PROG) -> None:
        super().__init__(message)
        self.status, self.prog = status, prog


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``graphc inspect: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see '{self.prog} --help')", prog=self.prog)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


# ---- inspect ----------------------------------------------------------------------------------------

def _rewrite_summary(optimized: Any) -> str:
    log = optimized.rewrites
    lines = [f"# rewrites: {len(log)} applied at level {optimized.level}"]
    lines += [f"#   {record}" for record in log]
    if len(log):
        phases: dict[str, str] = {}
        for r in log:
            phases.setdefault(r.rewrite, r.phase)
        counts = sorted(log.counts().items(), key=lambda kv: (-kv[1], kv[0]))
        width = max(len(f"{phases[name]}/{name}") for name, _ in counts)
        lines.append("# counts:")
        lines += [f"#   {phases[name] + '/' + name:<{width}}  {n}" for name, n in counts]
    return "\n".join(lines)


def _format_text(optimized: Any, args: argparse.Namespace) -> str:
    import graphc as gc

    return gc.dprint(optimized) + "\n\n" + _rewrite_summary(optimized) + "\n"


def _format_dot(optimized: Any, args: argparse.Namespace) -> str:
    import graphc as gc

    return gc.to_dot(optimized, name=os.path.splitext(os.path.basename(args.file))[0] or "graphc")


def _format_html(optimized: Any, args: argparse.Namespace) -> None:
    import graphc as gc

    out = args.output or os.path.splitext(os.path.basename(args.file))[0] + ".html"
    try:
        gc.report(optimized, out, title=f"graphc report: {os.path.basename(args.file)}, level {optimized.level}")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(out)


def parse_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"x=2,3"`` -> ``("x", (2, 3))``; ``"s="`` is a scalar.  A :class:`CommandError` when malformed."""
    name, sep, dims = spec.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        shape = tuple(int(d) for d in dims.split(",")) if dims.strip() else ()
    except ValueError:
        raise CommandError(f"--shape {spec}: expected NAME=D0,D1,... (e.g. x=32,784)") from None
    if any(d < 0 for d in shape):
        raise CommandError(f"--shape {spec}: dimensions must be >= 0")
    return name.strip(), shape


def feed_shapes(placeholders: Sequence[Any], specs: Sequence[str], dim: int) -> list[tuple[int, ...]]:
    """The shape to compile each placeholder for: its ``--shape`` if given (it must agree with the
    dimensions the placeholder fixes), else its static shape with every unknown dimension ``dim``."""
    by_name = {p.name: p for p in placeholders}
    chosen: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, shape = parse_shape(spec)
        p = by_name.get(name)
        if p is None:
            known = ", ".join(f"{q.name} ({q.type_str()})" for q in placeholders) or "none"
            raise CommandError(f"--shape {spec}: the graph has no placeholder '{name}'; its placeholders: {known}")
        if len(shape) != len(p.shape) or any(s is not None and s != d for s, d in zip(p.shape, shape)):
            raise CommandError(f"--shape {spec}: placeholder '{name}' is {p.type_str()}, which that shape does not fit")
        chosen[name] = shape
    return [chosen[p.name] if p.name in chosen else tuple(dim if s is None else s for s in p.shape)
            for p in placeholders]


def _compiled_source(kind: str) -> Callable[[Any, argparse.Namespace], str]:
    """The ``llvm`` / ``asm`` formats: compile the loaded graph on device="cpu" for the shapes from
    ``--shape`` / ``--dim`` (one run on zeros) and show ``fn.source(kind)``."""

    def show(optimized: Any, args: argparse.Namespace) -> str:
        import numpy as np

        import graphc as gc

        inputs, outputs = args.graph
        declared = {p.id for p in inputs}
        placeholders = list(inputs) + [p for p in gc.Graph(outputs).placeholders if p.id not in declared]
        shapes = feed_shapes(placeholders, args.shape, args.dim)
        try:
            fn = gc.function(placeholders, outputs, device="cpu", level=args.level)
            with contextlib.suppress(gc.ExecutionError):  # a fault running on zeros: the code exists all the same
                fn(*[np.zeros(shape, p.dtype) for p, shape in zip(placeholders, shapes)])
            text = fn.source(kind)
        except gc.GraphcError as exc:
            raise CommandError(f"{args.file}: {_one_line(str(exc))}", status=1) from None
        return text if text.endswith("\n") else text + "\n"

    return show


def _format_ptx(optimized: Any, args: argparse.Namespace) -> str:
    """The ``ptx`` format: the CUDA backend's kernels for the shapes from ``--shape`` / ``--dim``, as PTX for
    ``--arch``, each launch's shape listed first.  Nothing runs, so no GPU is needed."""
    import numpy as np

    import graphc as gc
    from graphc.backends.cuda.nvptx import launches_ptx
    from graphc.backends.cuda.program import GpuProgram
    from graphc.runtime.program import Program

    inputs, outputs = args.graph
    declared = {p.id for p in inputs}
    placeholders = list(inputs) + [p for p in gc.Graph(outputs).placeholders if p.id not in declared]
    shapes = feed_shapes(placeholders, args.shape, args.dim)
    try:
        arch = args.arch
        program = Program(outputs, placeholders, level=args.level, device="reference")
        avals = program.plan({p.id: np.zeros(shape, p.dtype) for p, shape in zip(placeholders, shapes)})
        gpu = GpuProgram(program.graph.nodes, avals, [*program.outputs, *program.updates])
        ptx = launches_ptx(gpu.launches, arch)
    except gc.GraphcError as exc:
        raise CommandError(f"{args.file}: {_one_line(str(exc))}", status=1) from None
    launches = "".join(f"// {line}\n" for line in gpu.describe().splitlines())
    return f"// graphc: the launches of {args.file} on device='cuda' ({arch})\n{launches}\n{ptx}"


# name -> function(optimised graph, args) returning the text to print or write, or None when it
# wrote its own output.  ``args.graph`` holds the loaded file's (inputs, outputs).
INSPECT_FORMATS: dict[str, Callable[[Any, argparse.Namespace], str | None]] = {
    "text": _format_text,
    "dot": _format_dot,
    "html": _format_html,
    "llvm": _compiled_source("llvm"),
    "asm": _compiled_source("asm"),
    "ptx": _format_ptx,
}
COMPILED_FORMATS = ("llvm", "asm", "ptx")  # the formats that compile, and so take --shape and --dim


def load(path: str) -> tuple[list[Any], list[Any]]:
    """``gc.load_graph(path)``, with every failure turned into a one-line :class:`CommandError`."""
    import graphc as gc

    if not os.path.exists(path):
        raise CommandError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CommandError(f"{path}: is a directory, expected a graph file (.gcg)")
    try:
        inputs, outputs = gc.load_graph(path)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except gc.GraphFileError as exc:  # its message names the file
        raise CommandError(_one_line(str(exc))) from None
    except gc.GraphcError as exc:  # anything else graphc says about what the file holds
        raise CommandError(f"{path}: {_one_line(str(exc))}") from None
    return list(inputs), list(outputs)


def run_inspect(args: argparse.Namespace) -> int:
    import graphc as gc

    if args.format not in COMPILED_FORMATS and (args.shape or args.dim is not None):
        raise CommandError(f"--shape and --dim only apply to --format {', '.join(COMPILED_FORMATS)}")
    if args.format != "ptx" and args.arch is not None:
        raise CommandError("--arch only applies to --format ptx")
    if args.arch is None:
        args.arch = "sm_80"
    if args.format == "ptx":
        from graphc.backends.cuda.nvptx import check_arch

        try:
            check_arch(args.arch)
        except gc.ArgumentError as exc:
            raise CommandError(f"--arch: {exc}") from None
    if args.dim is None:
        args.dim = 1
    elif args.dim < 0:
        raise CommandError(f"--dim must be >= 0, got {args.dim}")
    inputs, outputs = load(args.file)
    args.graph = (inputs, outputs)
    try:
        optimized = gc.optimize(outputs, level=args.level)
    except gc.GraphcError as exc:
        raise CommandError(f"{args.file}: {_one_line(str(exc))}", status=1) from None
    text = INSPECT_FORMATS[args.format](optimized, args)
    if text is None:
        return 0
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


def add_level_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", type=int, choices=(0, 1, 2), default=2, metavar="N",
                        help="optimisation level: 0 none, 1 canonicalize + stabilize, 2 all phases (default: 2)")


def add_inspect(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect", help="show a saved graph after optimisation (text, DOT, an HTML report, LLVM IR, assembly or PTX)",
        description="Load a graph file saved with gc.save_graph, optimise it as gc.function would, and show it:\n"
                    "  text  the graph as gc.dprint prints it, then the rewrites that fired and their counts\n"
                    "  dot   Graphviz DOT text, fused kernels drawn as clusters\n"
                    "  html  a self-contained report: the graph after every phase and the rewrite log\n"
                    "  llvm  the optimised LLVM IR the CPU backend (device=\"cpu\") generates for it\n"
                    "  asm   the machine code it generates, as assembly\n"
                    "  ptx   the CUDA backend's kernels (device=\"cuda\") as PTX for --arch, with their launch\n"
                    "        shapes (no GPU needed)\n"
                    "Code is generated for concrete shapes: every unknown (None) dimension of a placeholder\n"
                    "is --dim (default 1) unless --shape gives that placeholder's whole shape.",
        epilog="examples:\n"
               "  graphc inspect model.gcg\n"
               "  graphc inspect model.gcg --format dot | dot -Tsvg -o model.svg\n"
               "  graphc inspect model.gcg --format html -o report.html --level 1\n"
               "  graphc inspect model.gcg --format llvm --shape x=32,784\n"
               "  graphc inspect model.gcg --format asm --dim 64 -o model.s\n"
               "  graphc inspect model.gcg --format ptx --arch sm_90 --dim 64",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.gcg", help="a graph file written by gc.save_graph")
    add_level_option(p)
    p.add_argument("--format", choices=tuple(INSPECT_FORMATS), default="text",
                   help="what to show (default: text)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write to OUT instead of standard output; for html the default is FILE's name with "
                        ".html, in the current directory (the path written is printed)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="llvm/asm/ptx: compile for placeholder NAME having this shape (repeat for several "
                        "placeholders; NAME= for a scalar); it must agree with the dimensions NAME fixes")
    p.add_argument("--dim", type=int, metavar="N",
                   help="llvm/asm/ptx: the size of every unknown (None) dimension not set by --shape (default: 1)")
    p.add_argument("--arch", metavar="sm_XY",
                   help="ptx: the GPU architecture (compute capability) to generate for (default: sm_80)")
    p.set_defaults(run=run_inspect)


def run_aot(args: argparse.Namespace) -> int:
    import graphc as gc

    inputs, outputs = load(args.file)
    try:
        artifact = gc.aot.compile(inputs, outputs, args.output, name=args.name, target=args.target, cpu=args.cpu,
                                  level=args.level, threads=args.threads, object_file=args.object,
                                  link=not args.no_link)
    except gc.GraphcError as exc:
        raise CommandError(f"{args.file}: {_one_line(str(exc))}", status=1) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}", status=1) from None
    written = [p for p in (artifact.library, artifact.header, artifact.object) if p is not None]
    dims = "; ".join(" = ".join(places) for places in artifact.signature.dims) or "none"
    print(f"wrote {', '.join(str(p) for p in written)} (C prefix {artifact.name}_, run-time dims: {dims})")
    return 0


def add_aot(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "aot", help="compile a saved graph ahead of time to a shared object and a C header",
        description="Compile a graph file saved with gc.save_graph into OUT.so and OUT.h (as gc.aot.compile):\n"
                    "a self-contained library with the C function\n"
                    "  int NAME_run(const int64_t *dims, const void *const *inputs, void *const *outputs);\n"
                    "whose inputs and outputs are the graph file's, in order. Unknown (None) dimensions of\n"
                    "the inputs are run-time dimensions, passed in dims. Variables are embedded.",
        epilog="examples:\n"
               "  graphc aot model.gcg -o build/model\n"
               "  graphc aot model.gcg -o build/model --name classifier --cpu native\n"
               "  graphc aot model.gcg -o build/model --target aarch64-unknown-linux-gnu --no-link",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="MODEL.gcg", help="a graph file written by gc.save_graph")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="path of the artifacts without extension: writes OUT.so and OUT.h")
    p.add_argument("--name", help="prefix of the C functions (default: OUT's file name)")
    p.add_argument("--target", metavar="TRIPLE", help="LLVM target triple (default: this machine's)")
    p.add_argument("--cpu", help="LLVM CPU name; 'native' for this machine's CPU (default: the architecture's "
                                 "baseline, portable across its CPUs)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="threads a call may use (default: 1)")
    add_level_option(p)
    p.add_argument("--object", action="store_true", help="also keep the object file OUT.o")
    p.add_argument("--no-link", action="store_true",
                   help="write OUT.o and OUT.h only (for a target whose linker this machine lacks)")
    p.set_defaults(run=run_aot)


# name -> function adding the subcommand's parser to the subparsers action
COMMANDS: dict[str, Callable[[Any], None]] = {"inspect": add_inspect, "aot": add_aot}


def build_parser() -> argparse.ArgumentParser:
    from graphc.version import __version__

    parser = _Parser(prog=PROG, description="graphc: a define-then-run graph compiler. Commands work on graph "
                                            "files written by gc.save_graph.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    for add in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``graphc`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.run(args))
    except CommandError as exc:
        print(f"{exc.prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `graphc inspect big.gcg | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
