"""``report``: one self-contained HTML page showing what the optimiser did to a graph.

The page carries the graph after each phase (``input``, then every phase that ran) as data
(``report_data``) and a small script of its own (``report_assets/report.js``) that lays it out and
draws it as SVG in the browser: no Graphviz, no network, no other file.  Below the drawing are the
current phase's ``dprint`` text and the rewrite log: how often each rewrite fired and every
application (phase, rewrite, op, node, the user's line), which read without JavaScript too.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from importlib import resources
from typing import Any

from graphc.errors import ArgumentError
from graphc.inspect.report_data import report_data
from graphc.ir.graph import Graph
from graphc.ir.tensor import Tensor
from graphc.passes.engine import RewriteLog
from graphc.passes.pipeline import OptimizedGraph, check_level, optimize

__all__ = ["optimized_graph_of", "report"]


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


def _asset(name: str) -> str:
    return resources.files("graphc.inspect").joinpath("report_assets", name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that is inert inside ``<script>``: with no ``<`` at all, nothing in it can end the element."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


_VIEWER = """
<div id="toolbar">
  <span id="phases"></span>
  <span class="sep"></span>
  <input id="search" type="search" placeholder="search nodes by name or op" autocomplete="off">
  <span class="sep"></span>
  <button id="fit" title="fit the graph to the window">fit</button>
  <button id="zoom-in" title="zoom in">+</button>
  <button id="zoom-out" title="zoom out">&minus;</button>
  <button id="expand-all" title="open every name scope, kernel and loop">expand all</button>
  <button id="collapse-all" title="close every name scope, kernel and loop">collapse all</button>
  <label><input id="mark-new" type="checkbox" checked> outline what this phase made</label>
  <span id="results"></span>
</div>
<div id="main">
  <div id="canvas">
    <svg id="graph" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="graph drawing">
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
        orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#9ca3af"/></marker></defs>
      <g id="scene"></g>
    </svg>
    <div id="status"></div>
  </div>
  <aside id="side"><div id="details"></div></aside>
</div>
<noscript><p class="note">The drawing needs JavaScript; the rewrite log below does not.</p></noscript>
"""


def report(target: Any, path: str | os.PathLike[str], level: int = 2, *, title: str | None = None) -> None:
    """Write one self-contained HTML page about ``target`` to ``path``.

    ``target`` is what :func:`dprint` takes: a tensor or a list of tensors (optimised here with
    ``gc.optimize(target, level)``), a Graph (its outputs are optimised), a ``gc.optimize`` result or a
    gc.function (their own optimisation is shown; ``level`` is then not used).  The page draws the
    graph after each phase (input, canonicalize, stabilize, specialize, fuse) with its own script:
    zoom and pan, name scopes, fused kernels and loops / conds (their bodies inside, nested as they
    are) as boxes that open and close, a node's details on click, search, the rewrites of each phase;
    then the ``dprint`` text and the whole rewrite log.
    It needs no network, no other file and no Graphviz.
    """
    optimized = optimized_graph_of(target, level)
    phases = optimized.phases or [("optimized", optimized)]
    title = title or f"graphc report: {len(optimized.outputs)} outputs, level {optimized.level}"
    sizes = ", ".join(f"{_e(name)}: {len(g.nodes)}" for name, g in phases)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_asset('report.css')}</style>",
        "</head>",
        "<body>",
        f"<header><h1>{_e(title)}</h1>",
        f"<p>Optimisation level {_e(optimized.level)}; nodes after each phase: {sizes}; "
        f"{len(optimized.rewrites)} rewrites applied.</p></header>",
        _VIEWER,
        '<section class="static">',
        '<details id="dprint-box"><summary>dprint of phase <span id="dprint-phase"></span></summary>'
        '<pre id="dprint"></pre></details>',
        _rewrite_section(optimized.rewrites),
        "</section>",
        f'<script type="application/json" id="graphc-data">{_json_for_script(report_data(optimized, title))}</script>',
        f"<script>{_asset('report.js')}</script>",
        "</body>",
        "</html>",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
