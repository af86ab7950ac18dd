"""The ``graphc`` command (also ``python -m graphc``).

    graphc inspect FILE.gcg [--level N] [--format text|dot|html] [-o OUT]

Subcommands live in ``COMMANDS`` (name -> function adding its parser); each parser sets ``run`` to
the function that carries it out, returning the exit status.  ``inspect`` output formats live in
``INSPECT_FORMATS`` (name -> function writing that view of an optimised graph).

Exit status: 0 on success, 2 for a usage error, a missing or unreadable file or a bad graph file
(one line on stderr, never a traceback), 1 when graphc rejects the graph itself.
"""

from __future__ import annotations

import argparse
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


# name -> function(optimised graph, args) returning the text to print or write, or None when it
# wrote its own output.  More formats (e.g. llvm, asm) plug in here.
INSPECT_FORMATS: dict[str, Callable[[Any, argparse.Namespace], str | None]] = {
    "text": _format_text,
    "dot": _format_dot,
    "html": _format_html,
}


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

    _, outputs = load(args.file)
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


def add_inspect(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect", help="show a saved graph after optimisation (text, DOT or an HTML report)",
        description="Load a graph file saved with gc.save_graph, optimise it as gc.function would, and show it:\n"
                    "  text  the graph as gc.dprint prints it, then the rewrites that fired and their counts\n"
                    "  dot   Graphviz DOT text, fused kernels drawn as clusters\n"
                    "  html  a self-contained report: the graph after every phase and the rewrite log",
        epilog="examples:\n"
               "  graphc inspect model.gcg\n"
               "  graphc inspect model.gcg --format dot | dot -Tsvg -o model.svg\n"
               "  graphc inspect model.gcg --format html -o report.html --level 1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.gcg", help="a graph file written by gc.save_graph")
    p.add_argument("--level", type=int, choices=(0, 1, 2), default=2, metavar="N",
                   help="optimisation level: 0 none, 1 canonicalize + stabilize, 2 all phases (default: 2)")
    p.add_argument("--format", choices=tuple(INSPECT_FORMATS), default="text",
                   help="what to show (default: text)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write to OUT instead of standard output; for html the default is FILE's name with "
                        ".html, in the current directory (the path written is printed)")
    p.set_defaults(run=run_inspect)


# name -> function adding the subcommand's parser to the subparsers action
COMMANDS: dict[str, Callable[[Any], None]] = {"inspect": add_inspect}


def build_parser() -> argparse.ArgumentParser:
    from graphc import __version__

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
