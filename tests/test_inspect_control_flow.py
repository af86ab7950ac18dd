"""gc.dprint, gc.to_networkx, gc.to_dot and the report's data show the bodies of loops and conds under their node."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import networkx as nx
import numpy as np
from dot_syntax import parse_dot

import graphc as gc
from report_page import report_data_of

NODE = re.compile(r"^(?P<indent>(?:    \|)*)(?P<mark>->|  ) %(?P<key>[0-9.]+) = (?P<op>\w+)\((?P<args>[^)]*)\)"
                  r"(?: \{(?P<attrs>.*)\})? : ")
HEADING = re.compile(r"^(?P<indent>(?:    \|)+)   (?P<which>body|cond|true branch|false branch): (?P<text>.*)$")
READS = re.compile(r"%([0-9.]+) = (row of %[0-9.]+|loop variable \d+ \(initially %[0-9.]+\)|captured %[0-9.]+)")


def listing(text: str) -> list[tuple[Any, ...]]:
    """Each dprint line as ``(depth, key, op)`` or, for a body's heading, ``(depth, which, text)``; any other
    line fails."""
    rows: list[tuple[Any, ...]] = []
    for line in text.splitlines():
        heading = HEADING.match(line)
        node = NODE.match(line)
        assert heading or node, f"not a dprint line: {line!r}"
        if heading:
            rows.append((len(heading["indent"]) // 5, heading["which"], heading["text"]))
        else:
            rows.append((len(node["indent"]) // 5, node["key"], node["op"]))
    return rows


def position(items: Any, item: gc.Tensor) -> int:
    """Where ``item`` is in ``items`` (tensors compare by identity here: ``==`` builds a node)."""
    return next(i for i, t in enumerate(items) if t is item)


def lines_of(text: str) -> dict[str, re.Match[str]]:
    """The node lines of a dprint text by key."""
    return {m["key"]: m for m in map(NODE.match, text.splitlines()) if m}


def check_headings(text: str) -> int:
    """Every parameter a heading describes is a parameter one level deeper, just below it, whose ``index``
    fits the description's kind; the outputs it names are marked ``->``.  Returns the number of headings."""
    nodes = lines_of(text)
    count = 0
    for line in text.splitlines():
        heading = HEADING.match(line)
        if not heading:
            continue
        count += 1
        reads, _, gives = heading["text"].partition("; gives ")
        for key, _what in READS.findall(reads):
            param = nodes[key]
            assert param["op"] == "parameter" and param["indent"] == heading["indent"], line
        for key in re.findall(r"%([0-9.]+) = ", gives):
            assert nodes[key]["mark"] == "->" and nodes[key]["indent"] == heading["indent"], line
    return count


def scan_model() -> tuple[gc.Tensor, gc.Tensor]:
    """An RNN step over a sequence, with a loop variable and a captured Variable."""
    xs = gc.placeholder("float32", (5, 2, 3), name="xs")
    h0 = gc.placeholder("float32", (2, 3), name="h0")
    w = gc.Variable(np.eye(3, dtype=np.float32), name="w")
    return xs, gc.scan(lambda x, h: gc.tanh(x + h @ w), xs, outputs_info=h0)


def nested_model() -> gc.Tensor:
    xs = gc.placeholder("float32", (4, 2, 3), name="xs")
    k = gc.placeholder("float32", (), name="k")
    zero = gc.constant(np.zeros(3, np.float32))
    return gc.scan(lambda row: gc.scan(lambda r, acc: gc.exp(acc + r * k), row, outputs_info=zero), xs)


# ---- dprint --------------------------------------------------------------------------------------

def test_dprint_shows_a_scans_body_under_its_node() -> None:
    _, hs = scan_model()
    text = gc.dprint(hs, locations=False)
    assert listing(text) == [
        (0, "0", "placeholder"), (0, "1", "placeholder"), (0, "2", "variable"), (0, "3", "loop"),
        (1, "body", "%3.0 = row of %0, %3.1 = loop variable 0 (initially %1), %3.2 = captured %2; "
                    "gives %3.5 = new loop variable 0"),
        (1, "3.0", "parameter"), (1, "3.1", "parameter"), (1, "3.2", "parameter"),
        (1, "3.3", "matmul"), (1, "3.4", "add"), (1, "3.5", "tanh"),
        (0, "4", "part"),
    ]
    nodes = lines_of(text)
    assert nodes["3"]["args"] == "%0, %1, %2" and nodes["3.3"]["args"] == "%3.1, %3.2"
    assert [nodes[k]["attrs"] for k in ("3.0", "3.1", "3.2")] == ["index=0", "index=1", "index=2"]
    assert nodes["3.5"]["mark"] == "->" and nodes["4"]["mark"] == "->" and nodes["3.3"]["mark"] == "  "
    # the body is shown by its contents, not as a Python repr among the loop's attributes
    assert "body=" not in nodes["3"]["attrs"] and "<Body" not in text
    assert "n_seq=1, n_state=1" in nodes["3"]["attrs"] and "what='scan'" in nodes["3"]["attrs"]
    assert "    |   %3.3 = matmul(%3.1, %3.2) : float32[2, 3]  'matmul" in text
    assert check_headings(text) == 1
    # with locations, each body line ends with the line that built it (the scan call's, for the parameters)
    located = gc.dprint(hs).splitlines()
    assert all("test_inspect_control_flow.py:" in line for line in located if NODE.match(line))


def test_dprint_shows_an_optimised_scans_body_with_its_kernel_nested() -> None:
    _, hs = scan_model()
    opt = gc.optimize(hs)
    text = gc.dprint(opt, locations=False)
    rows = listing(text)
    loop = next(n for n in opt.nodes if n.op == "loop")
    key = str(position(opt.nodes, loop))
    body = loop.attrs["body"]
    # every node of the optimised body, in order, one level in; a fused node's kernel one level further
    inner = [r for r in rows if r[0] >= 1]
    assert [r for r in inner if r[0] == 1 and r[1] != "body"] == [
        (1, f"{key}.{j}", n.op) for j, n in enumerate(body.nodes)]
    fused = [(j, n) for j, n in enumerate(body.nodes) if n.op == "fused"]
    assert fused, text
    for j, node in fused:
        kernel = node.attrs["kernel"]
        assert [r for r in inner if r[0] == 2 and r[1].startswith(f"{key}.{j}.")] == [
            (2, f"{key}.{j}.{i}", n.op) for i, n in enumerate(kernel.nodes)]
        assert f"    |{'->' if any(node is o for o in body.outputs) else '  '} %{key}.{j} = fused(" in text
        assert f"    |    |   %{key}.{j}.0 = parameter() {{index=" in text
    (heading,) = [r for r in rows if r[1] == "body"]
    reads = dict(READS.findall(heading[2].partition("; gives ")[0]))
    # what each parameter stands for agrees with its index, whatever the optimiser renumbered
    nodes = lines_of(text)
    described = {nodes[k]["attrs"]: what for k, what in reads.items()}
    assert described == {"index=0": "row of %0", "index=1": "loop variable 0 (initially %1)",
                         "index=2": "captured %2"}
    assert heading[2].endswith(f"gives %{key}.{position(body.nodes, body.outputs[0])} = new loop variable 0")
    assert "<Body" not in text and check_headings(text) == 1


def test_dprint_shows_a_while_loops_body_and_condition() -> None:
    x = gc.placeholder("float32", (3,), name="x")
    n, y = gc.while_loop(lambda n, y: gc.sum(y) < 100.0, lambda n, y: [n + 1, y * 2.0],
                         [gc.constant(0, "int64"), x], maximum_iterations=50)
    text = gc.dprint([n, y], locations=False)
    assert listing(text) == [
        (0, "0", "constant"), (0, "1", "placeholder"), (0, "2", "constant"), (0, "3", "constant"),
        (0, "4", "constant"), (0, "5", "loop"),
        (1, "body", "%5.0 = loop variable 0 (initially %0), %5.3 = loop variable 1 (initially %1), "
                    "%5.1 = captured %2, %5.4 = captured %3; gives %5.2 = new loop variable 0, "
                    "%5.5 = new loop variable 1"),
        (1, "5.0", "parameter"), (1, "5.1", "parameter"), (1, "5.2", "add"),
        (1, "5.3", "parameter"), (1, "5.4", "parameter"), (1, "5.5", "multiply"),
        (1, "cond", "%5.6 = loop variable 1 (initially %1), %5.8 = captured %4; "
                    "gives %5.9 = whether to run the step"),
        (1, "5.6", "parameter"), (1, "5.7", "sum"), (1, "5.8", "parameter"), (1, "5.9", "less"),
        (0, "6", "part"), (0, "7", "part"),
    ]
    nodes = lines_of(text)
    assert "cond=" not in nodes["5"]["attrs"] and "length=50" in nodes["5"]["attrs"]
    assert nodes["5.9"]["mark"] == "->" and nodes["5.7"]["args"] == "%5.6"
    assert check_headings(text) == 2
    opt = gc.optimize([n, y])
    optimised = gc.dprint(opt, locations=False)
    rows = listing(optimised)
    assert [r[1] for r in rows if r[1] in ("body", "cond")] == ["body", "cond"]
    cond = next(r for r in rows if r[1] == "cond")
    assert "loop variable 1 (initially %1)" in cond[2] and cond[2].endswith("= whether to run the step")
    loop = next(t for t in opt.nodes if t.op == "loop")
    body_ops = [r[2] for r in rows[rows.index(next(r for r in rows if r[1] == "body")) + 1:rows.index(cond)]]
    assert body_ops == [t.op for t in loop.attrs["body"].nodes]
    assert check_headings(optimised) == 2


def test_dprint_indents_a_nested_scan_one_level_more() -> None:
    ys = nested_model()
    text = gc.dprint(ys, locations=False)
    assert listing(text) == [
        (0, "0", "placeholder"), (0, "1", "constant"), (0, "2", "placeholder"), (0, "3", "loop"),
        (1, "body", "%3.0 = row of %0, %3.1 = captured %1, %3.2 = captured %2; gives %3.4 = step output 0"),
        (1, "3.0", "parameter"), (1, "3.1", "parameter"), (1, "3.2", "parameter"), (1, "3.3", "loop"),
        (2, "body", "%3.3.1 = row of %3.0, %3.3.0 = loop variable 0 (initially %3.1), %3.3.2 = captured %3.2; "
                    "gives %3.3.5 = new loop variable 0"),
        (2, "3.3.0", "parameter"), (2, "3.3.1", "parameter"), (2, "3.3.2", "parameter"),
        (2, "3.3.3", "multiply"), (2, "3.3.4", "add"), (2, "3.3.5", "exp"),
        (1, "3.4", "part"),
        (0, "4", "part"),
    ]
    assert "    |    |   body: %3.3.1 = row of %3.0" in text
    assert "    |    |-> %3.3.5 = exp(%3.3.4) : float32[3]" in text
    assert check_headings(text) == 2
    optimised = gc.dprint(gc.optimize(ys), locations=False)
    rows = listing(optimised)
    assert [r[:2] for r in rows if r[1] == "body"] == [(1, "body"), (2, "body")]
    inner = next(r for r in rows if r[0] == 2 and r[1] == "body")
    assert re.search(r"row of %3\.\d+", inner[2]) and "loop variable 0 (initially %3." in inner[2]
    # the inner step fused into one kernel, whose nodes are a level further in
    kernel = [r for r in rows if r[0] == 3]
    assert kernel and {r[2] for r in kernel} >= {"parameter", "multiply", "add", "exp"}
    fused = next(r for r in rows if r[0] == 2 and r[2] == "fused")
    assert all(r[1].startswith(fused[1] + ".") for r in kernel)
    assert check_headings(optimised) == 2


def test_dprint_shows_both_branches_of_a_cond() -> None:
    p = gc.placeholder("bool", (), name="p")
    x = gc.placeholder("float32", (3,), name="x")
    k = gc.placeholder("float32", (), name="k")
    y = gc.cond(p, lambda: gc.exp(x) * k, lambda: x - 1.0)
    text = gc.dprint(y, locations=False)
    assert listing(text) == [
        (0, "0", "placeholder"), (0, "1", "placeholder"), (0, "2", "placeholder"), (0, "3", "cond"),
        (1, "true branch", "%3.0 = captured %1, %3.2 = captured %2; gives %3.3 = output 0"),
        (1, "3.0", "parameter"), (1, "3.1", "exp"), (1, "3.2", "parameter"), (1, "3.3", "multiply"),
        (1, "false branch", "%3.4 = captured %1; gives %3.6 = output 0"),
        (1, "3.4", "parameter"), (1, "3.5", "constant"), (1, "3.6", "subtract"),
        (0, "4", "part"),
    ]
    nodes = lines_of(text)
    assert nodes["3"]["args"] == "%0, %1, %2" and nodes["3"]["attrs"] is None  # no Body reprs left
    assert check_headings(text) == 2
    optimised = gc.dprint(gc.optimize(y), locations=False)
    rows = listing(optimised)
    assert [r[1] for r in rows if r[0] == 1 and not r[1][0].isdigit()] == ["true branch", "false branch"]
    true = next(r for r in rows if r[1] == "true branch")
    assert true[2] == "%3.0 = captured %1, %3.1 = captured %2; gives %3.2 = output 0"
    assert (1, "3.2", "fused") in rows and [r[2] for r in rows if r[0] == 2 and r[2] != "parameter"] == \
        ["exp", "multiply"]
    assert check_headings(optimised) == 2


def test_dprint_of_ordinary_graphs_is_unchanged() -> None:
    x = gc.placeholder("float32", (None, 3), name="x")
    w = gc.Variable(np.ones((3, 2), np.float32), name="w")
    y = gc.sum(gc.exp(x @ w), axis=1)
    text = gc.dprint(gc.optimize([y]), locations=False)
    assert "body" not in text and all(NODE.match(line) for line in text.splitlines())
    assert "-> %3 = fused(%2) {kind=reduction} : float32[?]  '" in text
    assert "    |   %3.0 = parameter() {index=0} : float32[?, 2]  'in0" in text


# ---- networkx, DOT, the report's data --------------------------------------------------------------

def test_networkx_and_dot_hold_the_bodies_under_dprints_keys() -> None:
    ys = nested_model()
    opt = gc.optimize(ys)
    g = gc.to_networkx(opt)
    assert list(g.nodes) == [r[1] for r in listing(gc.dprint(opt)) if r[1][0].isdigit()]
    assert nx.is_directed_acyclic_graph(g)
    outer, inner = g.nodes["3"]["tensor"], g.nodes["3.3"]["tensor"]
    body = outer.attrs["body"]
    members = [k for k, d in g.nodes(data=True) if d["kernel"] == "3"]
    assert members == [f"3.{j}" for j in range(len(body.nodes))]
    assert [g.nodes[k]["tensor"] for k in members] == list(body.nodes)
    assert {g.nodes[k]["body"] for k in members} == {"body"} and g.nodes["3"]["body"] is None
    # parameter edges: from the input each parameter stands for; result edges: body outputs -> the loop
    for k in members:
        node = g.nodes[k]["tensor"]
        if node.op == "parameter":
            ((src, _, edge),) = g.in_edges(k, data=True)
            assert edge["kind"] == "parameter" and g.nodes[src]["tensor"] is outer.inputs[edge["index"]]
    assert [g.nodes[s]["tensor"] for s, _, d in g.in_edges("3", data=True) if d["kind"] == "result"] == \
        list(body.outputs)
    assert {d["body"] for k, d in g.nodes(data=True) if d["kernel"] == "3.3"} == {"body"}
    assert [g.nodes[k]["tensor"] for k, d in g.nodes(data=True) if d["kernel"] == "3.3"] == \
        list(inner.attrs["body"].nodes)
    fused = next(k for k, d in g.nodes(data=True) if d["kernel"] == "3.3" and d["op"] == "fused")
    assert {d["body"] for _, d in g.nodes(data=True) if d["kernel"] == fused} == {"kernel"}
    flat = gc.to_networkx(opt, bodies=False)
    assert set(flat.nodes) == {k for k, d in g.nodes(data=True) if d["kernel"] is None}
    dot = parse_dot(gc.to_dot(opt))
    assert dot.subgraphs["cluster_3_body"] == members
    assert set(dot.subgraphs["cluster_3.3_body"]) == {k for k, d in g.nodes(data=True) if d["kernel"] == "3.3"}
    assert f"cluster_{fused}" in dot.subgraphs
    assert dot.subgraph_attrs["cluster_3_body"]["label"] == f"%3 {outer.name}: loop body"
    assert not parse_dot(gc.to_dot(opt, bodies=False)).subgraphs


def test_report_data_holds_each_loops_body(tmp_path: pathlib.Path) -> None:
    xs, hs = scan_model()
    opt = gc.optimize(hs)
    gc.report(opt, tmp_path / "r.html")
    data = report_data_of((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert [p["name"] for p in data["phases"]] == [name for name, _ in opt.phases]
    for (name, graph), phase in zip(opt.phases, data["phases"]):
        loop = next(n for n in graph.nodes if n.op == "loop")
        key = str(position(graph.nodes, loop))
        body = loop.attrs["body"]
        inside = [(k, data["table"][row][0], data["table"][row][1], out)
                  for k, row, owner, out, which in phase["nodes"] if owner == key and which == "body"]
        assert inside == [(f"{key}.{j}", n.op, n.name, int(any(n is o for o in body.outputs)))
                          for j, n in enumerate(body.nodes)], name
        # the same facts as for a node outside: type, attributes, the line that built it
        row = next(data["table"][r] for k, r, *_ in phase["nodes"] if k == f"{key}.0")
        assert row[2] == body.nodes[0].type_str() and row[3].startswith("index=") and ".py:" in row[4]
        (entry,) = phase["bodies"]
        heading = next(r for r in listing(phase["dprint"]) if r[1] == "body")
        assert entry == [key, "body", "body", heading[2]]
        params = {e[1]: e[3] for e in phase["edges"] if e[2] == "p" and e[1] in {k for k, *_ in inside}}
        assert sorted(params.values()) == ["captured", "loop variable 0", "row"]
        for dst, label in params.items():
            index = next(n for j, n in enumerate(body.nodes) if f"{key}.{j}" == dst).attrs["index"]
            assert label == ["row", "loop variable 0", "captured"][index]
        out = next(e for e in phase["edges"] if e[0] == key and e[2] == "i")  # loop -> part: from the new state
        assert out[4] == f"{key}.{position(body.nodes, body.outputs[0])}"
    fuse = data["phases"][-1]
    fused = [k for k, row, owner, *_ in fuse["nodes"] if owner and data["table"][row][0] == "fused"]
    assert fused and all(any(o == f and which == "kernel" for _, _, o, _, which in fuse["nodes"]) for f in fused)
    assert "<Body" not in "".join(row[3] for row in data["table"])
    assert xs.name in [row[1] for row in data["table"]]
