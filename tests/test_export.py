"""gc.to_networkx, gc.to_dot and gc.report: structure, DOT validity and the HTML page."""

from __future__ import annotations

import html
import pathlib
import re
import shutil
import subprocess

import networkx as nx
import numpy as np
import pytest
from dot_syntax import parse_dot, unescape

import graphc as gc
from report_page import check_html, report_data_of

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

def test_report_has_every_phase_and_the_rewrite_log(tmp_path: pathlib.Path) -> None:
    _x, y, z = model()
    path = tmp_path / "report.html"
    opt = gc.optimize([y, z])
    gc.report(opt, path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    content = check_html(text)
    data = report_data_of(text)
    names = [name for name, _ in opt.phases]
    assert names == ["input", "canonicalize", "stabilize", "specialize", "fuse"] == [p["name"] for p in data["phases"]]
    for (name, graph), phase in zip(opt.phases, data["phases"]):
        g = gc.to_networkx(graph)
        assert [n[0] for n in phase["nodes"]] == list(g.nodes)
        for (_key, row, kernel, out, body), (_, node) in zip(phase["nodes"], g.nodes(data=True)):
            op, node_name, type_str, attrs, loc, family, kind, ops = data["table"][row]
            tensor = node["tensor"]
            assert (op, node_name, type_str, attrs, loc) == (tensor.op, tensor.name, tensor.type_str(),
                                                             node["attrs"], node["location"] or "")
            assert (family, kernel, bool(out), body) == (tensor.opdef.family, node["kernel"] or "", node["output"],
                                                         node["body"] or "")
            if tensor.op == "fused":
                assert (kind, ops) == (tensor.attrs["kernel"].kind, len(tensor.attrs["kernel"].body))
        kinds = {"input": "i", "parameter": "p", "result": "r"}
        assert sorted((s, d, k) for s, d, k, _, _ in phase["edges"]) == sorted(
            (s, d, kinds[e["kind"]]) for s, d, e in g.edges(data=True))
        assert phase["dprint"] == gc.dprint(graph)
        assert [data["rewrites"][i]["rewrite"] for i in phase["rewrites"]] == [
            r.rewrite for r in opt.phase_rewrites.get(name, [])]
    # an edge out of a fused node says which kernel output it carries
    fuse = data["phases"][-1]
    outs = [e for e in fuse["edges"] if e[2] == "i" and e[4]]
    assert outs and all(e[4].startswith(e[0] + ".") for e in outs)
    # every rewrite that fired: in the data, in the log table (phase, rewrite, op, node, user line)
    assert len(opt.rewrites) >= 3
    for i, r in enumerate(opt.rewrites, 1):
        row = (f'<tr><td class="num">{i}</td><td>{r.phase}</td><td>{r.rewrite}</td><td>{r.op}</td>'
               f"<td>{html.escape(r.node)}</td><td>{html.escape(str(r.location))}</td></tr>")
        assert row in text
        record = data["rewrites"][i - 1]
        assert (record["rewrite"], record["node"], record["result"], record["created"]) == (
            r.rewrite, r.node, r.result, list(r.created))
        for made in r.created:
            assert i - 1 in data["made_by"][made]
    for name, n in opt.rewrites.counts().items():
        assert f'<td>{name}</td>' in text and f'<td class="num">{n}</td>' in text
    assert f"{len(opt.rewrites)} rewrites applied" in content


def test_report_is_one_self_contained_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_programs(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report ran a program")

    monkeypatch.setattr(subprocess, "run", no_programs)  # no Graphviz, nothing else
    monkeypatch.setattr(subprocess, "Popen", no_programs)
    _x, y, z = model()
    gc.report([y, z], tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    check_html(text)
    # no file, stylesheet, script or font from anywhere else: the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\((?!#)", text)
    assert text.count("<script") == 2 and text.count("</script>") == 2


def test_report_of_a_function_uses_its_own_optimisation(tmp_path: pathlib.Path) -> None:
    x, y, z = model()
    fn = gc.function([x], [y, z], level=1)
    path = tmp_path / "fn.html"
    gc.report(fn, path, level=2)  # level is for targets report optimises itself
    data = report_data_of(path.read_text(encoding="utf-8"))
    assert data["level"] == 1 and [p["name"] for p in data["phases"]] == ["input", "canonicalize", "stabilize"]
    gc.report(y, tmp_path / "level0.html", level=0)
    text0 = (tmp_path / "level0.html").read_text(encoding="utf-8")
    assert [p["name"] for p in report_data_of(text0)["phases"]] == ["input"] and "No rewrites fired." in text0
    gc.report(gc.Graph([y]), tmp_path / "graph.html", level=1)
    assert report_data_of((tmp_path / "graph.html").read_text(encoding="utf-8"))["level"] == 1


def test_report_escapes_everything(tmp_path: pathlib.Path) -> None:
    x = gc.placeholder("float32", (2,), name="</script><script>alert(2)</script>")
    y = odd_model() + gc.exp(x)
    path = tmp_path / "odd.html"
    gc.report(y, path)
    text = path.read_text(encoding="utf-8")
    content = check_html(text)
    assert "<script>alert" not in text and text.count("</script>") == 2
    assert html.escape("<script>alert(1)</script>") in text
    assert ODD_FILE in content  # decoded, the user's file name is intact (the rewrite log)
    data = report_data_of(text)  # the data survives the trip through the page exactly
    assert any(row[4].startswith(ODD_FILE) for row in data["table"]) and any(x.name == row[1] for row in data["table"])


def test_report_rejects_bad_arguments(tmp_path: pathlib.Path) -> None:
    _x, y, _ = model()
    with pytest.raises(gc.ArgumentError, match="report expects a tensor"):
        gc.report(3, tmp_path / "r.html")
    with pytest.raises(gc.ArgumentError, match="level must be 0, 1 or 2"):
        gc.report(y, tmp_path / "r.html", level=5)
    assert not (tmp_path / "r.html").exists()
