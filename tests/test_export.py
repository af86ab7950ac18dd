"""gc.to_networkx, gc.to_dot and gc.report: structure, DOT validity and the HTML page."""

from __future__ import annotations

import html
import html.parser
import os
import pathlib
import shutil
import subprocess
from typing import ClassVar

import networkx as nx
import numpy as np
import pytest
from dot_syntax import parse_dot, unescape

import graphc as gc
from graphc.inspect import html_report as report_module

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz 'dot' is not installed")

# a source file name full of characters that must be escaped in DOT and HTML
ODD_FILE = 'we"ird\\dir <script>alert(1)</script> & \'q\'.py'


def model() -> tuple[gc.Tensor, gc.Tensor, gc.Tensor]:
    x = gc.placeholder("float32", (None, 4), name="x")
    w = gc.Variable(np.ones((4, 3), np.float32), name="w")
    h = gc.exp(x @ w)
    y = gc.sum(h * h, axis=1)          # specialize: square; fuse: a reduction kernel
    z = gc.relu(h) - gc.tanh(h)        # an elementwise kernel
    return x, y, z


def odd_model() -> gc.Tensor:
    """A tensor whose user line is in a file with an odd name."""
    namespace = {"gc": gc, "np": np}
    code = compile('x = gc.placeholder("float32", (2,), name="odd")\n'
                   "y = gc.exp(x) * gc.exp(x) + x\n", ODD_FILE, "exec")
    exec(code, namespace)
    return namespace["y"]  # type: ignore[return-value]


def dprint_ids(text: str) -> list[str]:
    return [line.split("%", 1)[1].split(" ", 1)[0] for line in text.splitlines()]


# ---- to_networkx -------------------------------------------------------------------------------

def test_networkx_nodes_follow_dprint_ids_and_carry_attributes() -> None:
    _x, y, _ = model()
    g = gc.to_networkx(y)  # a tensor: the graph as built
    graph = gc.Graph([y])
    assert isinstance(g, nx.DiGraph)
    assert list(g.nodes) == [str(i) for i in range(len(graph.nodes))] == dprint_ids(gc.dprint(y))
    for key, node in zip(g.nodes, graph.nodes):
        data = g.nodes[key]
        assert data["tensor"] is node
        assert (data["op"], data["dtype"], data["shape"], data["name"]) == \
            (node.op, node.dtype.name, node.shape, node.name)
        assert data["location"] == str(node.location)
        assert data["kernel"] is None
    assert g.nodes["0"]["op"] == "placeholder" and g.nodes["0"]["shape"] == (None, 4)
    s = next(k for k, d in g.nodes(data=True) if d["op"] == "sum")
    assert g.nodes[s]["attrs"] == "axes=(1,), keepdims=False"
    assert g.nodes[s]["output"] and g.graph["outputs"] == [s]
    assert g.graph["inputs"] == ["0"]
    assert nx.is_directed_acyclic_graph(g)


def test_networkx_edges_carry_input_positions() -> None:
    x, y, _ = model()
    g = gc.to_networkx(y)
    mm = next(k for k, d in g.nodes(data=True) if d["op"] == "matmul")
    preds = sorted(g.predecessors(mm), key=lambda k: g.edges[k, mm]["index"])
    assert g.nodes[preds[0]]["tensor"] is x and g.nodes[preds[1]]["op"] == "variable"
    assert [g.edges[p, mm]["index"] for p in preds] == [0, 1]
    assert all(g.edges[e]["kind"] == "input" for e in g.edges)
    # the same input twice: one edge that knows both positions
    mul = next(k for k, d in g.nodes(data=True) if d["op"] == "multiply")
    (src,) = g.predecessors(mul)
    assert g.edges[src, mul]["indices"] == (0, 1) and g.edges[src, mul]["index"] == 0


def test_networkx_expands_fused_kernels() -> None:
    x, y, z = model()
    fn = gc.function([x], [y, z])
    g = gc.to_networkx(fn)
    graph = fn.graph
    fused = [str(i) for i, n in enumerate(graph.nodes) if n.op == "fused"]
    assert len(fused) == 2
    assert "reduction" in {g.nodes[f]["kind"] for f in fused}
    for f in fused:
        kernel = g.nodes[f]["tensor"].attrs["kernel"]
        inner = [k for k, d in g.nodes(data=True) if d["kernel"] == f]
        assert inner == [f"{f}.{j}" for j in range(len(kernel.nodes))]
        assert [g.nodes[k]["tensor"] for k in inner] == list(kernel.nodes)
        # parameter edges: each outer input -> the parameter standing for it
        for k in inner:
            node = g.nodes[k]["tensor"]
            if node.op == "parameter":
                (src,) = g.predecessors(k)
                edge = g.edges[src, k]
                assert edge["kind"] == "parameter" and edge["index"] == node.attrs["index"]
                assert g.nodes[src]["tensor"] is g.nodes[f]["tensor"].inputs[node.attrs["index"]]
        # result edges: kernel outputs -> the fused node
        results = [(s, d) for s, _, d in g.in_edges(f, data=True) if d["kind"] == "result"]
        assert [g.nodes[s]["tensor"] for s, _ in results] == list(kernel.outputs)
        assert all(g.nodes[s]["output"] for s, _ in results)
        # the ordinary input edges of the fused node are kept
        inputs = [s for s, _, d in g.in_edges(f, data=True) if d["kind"] == "input"]
        assert len(inputs) == len({i.id for i in g.nodes[f]["tensor"].inputs})
    assert nx.is_directed_acyclic_graph(g)
    outer = g.subgraph(k for k, d in g.nodes(data=True) if d["kernel"] is None)
    assert len(outer) == len(graph.nodes)
    flat = gc.to_networkx(fn, kernels=False)
    assert set(flat.nodes) == set(outer.nodes)
    assert {(s, d) for s, d in flat.edges} == {(s, d) for s, d in outer.edges}


def test_networkx_accepts_what_dprint_accepts() -> None:
    x, y, z = model()
    fn = gc.function([x], [y, z])
    assert len(gc.to_networkx([y, z])) == len(gc.Graph([y, z]).nodes)
    assert gc.to_networkx(gc.Graph([y])).graph["outputs"] == gc.to_networkx(y).graph["outputs"]
    assert len(gc.to_networkx(fn.graph)) == len(gc.to_networkx(fn))
    opt = gc.optimize([y], level=2)
    assert any(d["kernel"] is not None for _, d in gc.to_networkx(opt).nodes(data=True))
    for bad in (3, "x", [y, 3], None):
        with pytest.raises(gc.ArgumentError, match="to_networkx expects a tensor"):
            gc.to_networkx(bad)
    with pytest.raises(gc.ArgumentError, match="to_dot expects a tensor"):
        gc.to_dot(3)


# ---- to_dot ------------------------------------------------------------------------------------

def test_dot_is_valid_and_labels_nodes() -> None:
    x, y, z = model()
    dot = parse_dot(gc.to_dot([y, z]))
    assert dot.directed
    graph = gc.Graph([y, z])
    assert list(dot.nodes) == [str(i) for i in range(len(graph.nodes))]
    for key, node in zip(dot.nodes, graph.nodes):
        label = unescape(dot.nodes[key]["label"])
        assert node.op in label and f"{node.dtype.name}[" in label and node.type_str() in label
        assert f"'{node.name}'" in label
    assert unescape(dot.nodes["0"]["label"]).splitlines() == [f"%0 placeholder  '{x.name}'", "float32[?, 4]"]
    ids = {n.id: str(k) for k, n in enumerate(graph.nodes)}
    expected = {(ids[i.id], ids[n.id]) for n in graph.nodes for i in n.inputs}
    assert {(s, d) for s, d, _ in dot.edges} == expected
    assert not dot.subgraphs
    # outputs stand out; the user's line is in the tooltip
    out = ids[y.id]
    assert dot.nodes[out]["penwidth"] == "2"
    assert "test_export.py" in unescape(dot.nodes[out]["tooltip"])


def test_dot_draws_each_fused_kernel_as_a_cluster() -> None:
    x, y, z = model()
    fn = gc.function([x], [y, z])
    dot = parse_dot(gc.to_dot(fn))
    g = gc.to_networkx(fn)
    fused = [k for k, d in g.nodes(data=True) if d["op"] == "fused"]
    assert sorted(dot.subgraphs) == sorted(f"cluster_{f}" for f in fused)
    for f in fused:
        members = dot.subgraphs[f"cluster_{f}"]
        assert members == [k for k, d in g.nodes(data=True) if d["kernel"] == f]
        assert f not in members
        label = dot.subgraph_attrs[f"cluster_{f}"]["label"]
        assert g.nodes[f]["name"] in label and g.nodes[f]["kind"] in label
        # dashed edges in (parameters) and out (results); the direct input edges are left out
        into = [(s, a) for s, d, a in dot.edges if d in members and s not in members]
        assert into and all(a.get("style") == "dashed" for _, a in into)
        out = [(s, a) for s, d, a in dot.edges if d == f]
        assert out and all(s in members and a.get("style") == "dashed" for s, a in out)
    flat = parse_dot(gc.to_dot(fn, kernels=False))
    assert not flat.subgraphs and len(flat.nodes) == len(fn.graph.nodes)


def test_dot_escapes_odd_text() -> None:
    y = odd_model()
    text = gc.to_dot(y, name='my "graph"\n2')
    dot = parse_dot(text)  # no raw quotes or line breaks inside strings
    assert dot.name == 'my \\"graph\\"\\n2'
    tooltips = [unescape(a["tooltip"]) for a in dot.nodes.values()]
    assert any(ODD_FILE in t for t in tooltips)


@needs_dot
def test_graphviz_accepts_the_dot_text(tmp_path: pathlib.Path) -> None:
    x, y, z = model()
    for target in (gc.function([x], [y, z]), odd_model()):
        done = subprocess.run(["dot", "-Tsvg"], input=gc.to_dot(target), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "<svg" in done.stdout and not done.stderr.strip()
    svg = subprocess.run(["dot", "-Tsvg"], input=gc.to_dot(odd_model()), capture_output=True, text=True,
                         timeout=60).stdout
    assert html.escape("<script>") in svg and "<script>" not in svg


# ---- report ------------------------------------------------------------------------------------

class _TagChecker(html.parser.HTMLParser):
    """Fails on mismatched tags (void elements and self-closing SVG tags aside)."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> str:
    """Assert the page's tags nest; return its text content (entities decoded)."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    return "".join(checker.text)


def test_report_has_every_phase_and_the_rewrite_log(tmp_path: pathlib.Path) -> None:
    _x, y, z = model()
    path = tmp_path / "report.html"
    opt = gc.optimize([y, z])
    gc.report(opt, path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    content = check_html(text)
    names = [name for name, _ in opt.phases]
    assert names == ["input", "canonicalize", "stabilize", "specialize", "fuse"]
    for i, (name, graph) in enumerate(opt.phases):
        assert f'<h2 id="phase-{i}">{i}. {name} ({len(graph.nodes)} nodes)</h2>' in text
    # every rewrite that fired is a row: phase, rewrite, op, node, user line
    assert len(opt.rewrites) >= 3
    for i, r in enumerate(opt.rewrites, 1):
        row = (f'<tr><td class="num">{i}</td><td>{r.phase}</td><td>{r.rewrite}</td><td>{r.op}</td>'
               f"<td>{html.escape(r.node)}</td><td>{html.escape(str(r.location))}</td></tr>")
        assert row in text
    for name, n in opt.rewrites.counts().items():
        assert f'<td>{name}</td>' in text and f'<td class="num">{n}</td>' in text
    assert "specialize/square" not in text and ">square<" in text
    # the dprint text of the final graph is there, escaped
    assert gc.dprint(opt.phases[-1][1]).splitlines()[0] in content
    assert f"{len(opt.rewrites)} rewrites applied" in content


def test_report_of_a_function_uses_its_own_optimisation(tmp_path: pathlib.Path) -> None:
    x, y, z = model()
    fn = gc.function([x], [y, z], level=1)
    path = tmp_path / "fn.html"
    gc.report(fn, path, level=2)  # level is for targets report optimises itself
    text = path.read_text(encoding="utf-8")
    check_html(text)
    assert "level 1" in text and "specialize (" not in text and ". stabilize (" in text
    gc.report(y, tmp_path / "level0.html", level=0)
    text0 = (tmp_path / "level0.html").read_text(encoding="utf-8")
    assert "0. input (" in text0 and "canonicalize" not in text0 and "No rewrites fired." in text0
    gc.report(gc.Graph([y]), tmp_path / "graph.html", level=1)
    assert ". stabilize (" in (tmp_path / "graph.html").read_text(encoding="utf-8")


def test_report_escapes_everything(tmp_path: pathlib.Path) -> None:
    y = odd_model()
    path = tmp_path / "odd.html"
    gc.report(y, path, graphviz=False)
    text = path.read_text(encoding="utf-8")
    content = check_html(text)
    assert "<script>" not in text and html.escape("<script>alert(1)</script>") in text
    assert ODD_FILE in content  # decoded, the user's file name is intact (dprint text, rewrite log)
    assert "drawing with Graphviz was turned off" in content
    assert content.count("digraph") == len(gc.optimize(y).phases)  # the DOT text instead of drawings


def test_report_falls_back_to_dot_text_without_graphviz(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _x, y, _ = model()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    gc.report(y, tmp_path / "r.html")
    content = check_html((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "Graphviz 'dot' is not on PATH" in content and "<svg" not in content


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as a fake 'dot'")
@pytest.mark.parametrize(("script", "why"), [("echo 'Error: boom' >&2; exit 3", "failed (exit 3): Error: boom"),
                                             (f"exec {shutil.which('sleep')} 5", "took longer than 0.5 s")])
def test_report_falls_back_when_graphviz_fails(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                               script: str, why: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dot"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(report_module, "DOT_TIMEOUT_S", 0.5)
    _x, y, _ = model()
    gc.report(y, tmp_path / "r.html", level=0)
    content = check_html((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert why in content and "digraph" in content


@needs_dot
def test_report_draws_svg_with_graphviz(tmp_path: pathlib.Path) -> None:
    _x, y, z = model()
    gc.report([y, z], tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    check_html(text)
    phases = gc.optimize([y, z]).phases
    assert text.count("<svg") == len(phases) and "<?xml" not in text
    ids = [m for m in text.split(' id="')[1:]]
    ids = [m.split('"', 1)[0] for m in ids]
    assert len(ids) == len(set(ids))  # drawings do not reuse each other's element ids
    gc.report(odd_model(), tmp_path / "odd.html")
    odd = (tmp_path / "odd.html").read_text(encoding="utf-8")
    check_html(odd)
    assert "<script>" not in odd


def test_report_rejects_bad_arguments(tmp_path: pathlib.Path) -> None:
    _x, y, _ = model()
    with pytest.raises(gc.ArgumentError, match="report expects a tensor"):
        gc.report(3, tmp_path / "r.html")
    with pytest.raises(gc.ArgumentError, match="level must be 0, 1 or 2"):
        gc.report(y, tmp_path / "r.html", level=5)
    assert not (tmp_path / "r.html").exists()
