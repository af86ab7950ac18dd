"""``report``: one self-contained HTML page showing what the optimiser did to a graph.

The page has the graph after each phase (``input``, then every phase that ran) and the rewrite log:
a table of every rewrite that fired (phase, rewrite, op, node, the user's line) and how often each
fired.  Graphs are drawn as inline SVG when the Graphviz ``dot`` program is on ``PATH``; otherwise
(or when drawing fails or times out) the page shows their DOT text.  The ``dprint`` text of each
graph is always there.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from graphc.errors import ArgumentError
from graphc.inspect.export import to_dot
from graphc.inspect.printer import dprint
from graphc.ir.graph import Graph
from graphc.ir.tensor import Tensor
from graphc.passes.engine import RewriteLog
from graphc.passes.pipeline import OptimizedGraph, check_level, optimize

__all__ = ["optimized_graph_of", "render_svg", "report"]

DOT_TIMEOUT_S = 30.0


def optimized_graph_of(target: Any, level: int = 2) -> OptimizedGraph:
    """The :class:`OptimizedGraph` for ``target``: a gc.function's ``.graph``, an OptimizedGraph as is,
    or ``gc.optimize(outputs, level)`` for a tensor, a list of tensors or a plain Graph."""
    check_level(level)
    if isinstance(target, OptimizedGraph):
        return target
    graph = getattr(target, "graph", None)
    if isinstance(graph, OptimizedGraph):
        return graph
    if isinstance(target, Graph):
        return optimize(list(target.outputs), level=level)
    if isinstance(target, Tensor) or (isinstance(target, Sequence) and not isinstance(target, str)
                                      and all(isinstance(t, Tensor) for t in target)):
        return optimize(target, level=level)
    raise ArgumentError(
        f"report expects a tensor, a list of tensors, a Graph or a function, got {type(target).__name__}")


def render_svg(dot_text: str, timeout: float | None = None) -> tuple[str | None, str | None]:
    """``(svg, None)`` drawn by Graphviz ``dot``, or ``(None, why not)`` when it is missing, fails or
    takes longer than ``timeout`` seconds (default ``DOT_TIMEOUT_S``)."""
    timeout = DOT_TIMEOUT_S if timeout is None else timeout
    exe = shutil.which("dot")
    if exe is None:
        return None, "Graphviz 'dot' is not on PATH"
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"Graphviz 'dot' took longer than {timeout:g} s"
    except OSError as exc:
        return None, f"could not run Graphviz 'dot': {exc}"
    svg = done.stdout.decode("utf-8", errors="replace")
    start = svg.find("<svg")
    if done.returncode != 0 or start < 0:
        err = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return None, f"Graphviz 'dot' failed (exit {done.returncode}){': ' + err[0] if err else ''}"
    return svg[start:], None  # drop the XML prolog and DOCTYPE: the SVG goes inline


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; } td.num { text-align: right; }
.graph { overflow: auto; max-height: 80vh; border: 1px solid #eee; }
.note { color: #666; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _rewrite_section(log: RewriteLog) -> str:
    if not len(log):
        return '<h2 id="rewrites">Rewrites</h2>\n<p>No rewrites fired.</p>'
    phases: dict[str, str] = {}
    for r in log:
        phases.setdefault(r.rewrite, r.phase)
    counts = sorted(log.counts().items(), key=lambda kv: (-kv[1], kv[0]))
    count_rows = [(name, phases[name], n) for name, n in counts]
    records = [(i, r.phase, r.rewrite, r.op, r.node, r.location if r.location is not None else "")
               for i, r in enumerate(log, 1)]
    return "\n".join([
        f'<h2 id="rewrites">Rewrites ({len(log)} applied)</h2>',
        "<h3>Counts</h3>",
        _table(["rewrite", "phase", "count"], count_rows, numeric=[2]),
        "<h3>Log</h3>",
        _table(["#", "phase", "rewrite", "op", "node", "user line"], records, numeric=[0]),
    ])


def _phase_section(index: int, phase: str, graph: Graph, graphviz: bool) -> str:
    dot_text = to_dot(graph, name=phase)
    svg, why = render_svg(dot_text) if graphviz else (None, "drawing with Graphviz was turned off")
    if svg is not None:
        svg = svg.replace(' id="', f' id="p{index}-')  # Graphviz numbers ids per drawing: keep them unique
        drawing = f'<div class="graph">{svg}</div>'
    else:
        drawing = (f'<p class="note">{_e(why)}; the graph in DOT form '
                   f"(render it with <code>dot -Tsvg</code>):</p>\n<pre>{_e(dot_text)}</pre>")
    return "\n".join([
        f'<h2 id="phase-{index}">{index}. {_e(phase)} ({len(graph.nodes)} nodes)</h2>',
        drawing,
        "<details open><summary>dprint</summary>",
        f"<pre>{_e(dprint(graph))}</pre>",
        "</details>",
    ])


def report(target: Any, path: str | os.PathLike[str], level: int = 2, *, graphviz: bool = True,
           title: str | None = None) -> None:
    """Write one self-contained HTML page about ``target`` to ``path``.

    ``target`` is what :func:`dprint` takes: a tensor or a list of tensors (optimised here with
    ``gc.optimize(target, level)``), a Graph (its outputs are optimised), a ``gc.optimize`` result or a
    gc.function (their own optimisation is shown; ``level`` is then not used).  The page shows the
    graph after each phase -- drawn as SVG by Graphviz when ``dot`` is on PATH (``graphviz=False``
    never tries), else as DOT text -- with its ``dprint`` text, then the rewrite log with counts.
    """
    optimized = optimized_graph_of(target, level)
    phases = optimized.phases or [("optimized", optimized)]
    title = title or f"graphc report: {len(optimized.outputs)} outputs, level {optimized.level}"
    nav = " ".join(f'<a href="#phase-{i}">{_e(name)}</a>' for i, (name, _) in enumerate(phases))
    sizes = ", ".join(f"{_e(name)}: {len(g.nodes)}" for name, g in phases)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Optimisation level {_e(optimized.level)}; nodes after each phase: {sizes}; "
        f"{len(optimized.rewrites)} rewrites applied.</p>",
        f'<nav>{nav} <a href="#rewrites">rewrites</a></nav>',
        *(_phase_section(i, name, graph, graphviz) for i, (name, graph) in enumerate(phases)),
        _rewrite_section(optimized.rewrites),
        "</body>",
        "</html>",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
