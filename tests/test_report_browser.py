"""gc.report in a real browser: headless Chromium opens the page, the tests read the SVG it drew and use it.

Skipped cleanly where Playwright or Chromium cannot be had (see tests/browser.py).  Every page must load
and be used without a console error.  No timing is asserted here (benchmarks/bench_report.py measures it).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import graphc as gc
from browser import Page, launched
from report_page import report_data_of

Opener = Callable[[pathlib.Path], Page]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as b:
        yield b


@pytest.fixture
def open_page(browser: Any) -> Iterator[Opener]:
    pages: list[Page] = []

    def opener(path: pathlib.Path) -> Page:
        page = Page(browser, path)
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.close()
    assert [e for page in pages for e in page.errors] == []


def classifier(hidden: int = 5) -> tuple[list[gc.Tensor], gc.Tensor, dict]:
    """A two-layer classifier in name scopes, with its gradient and an SGD step; about 50 nodes as built."""
    rng = np.random.default_rng(0)
    x = gc.placeholder("float32", (None, 6), name="x")
    labels = gc.placeholder("int64", (None,), name="labels")
    with gc.name_scope("dense"):
        w = gc.Variable(rng.standard_normal((6, hidden)).astype(np.float32), name="w")
        b = gc.Variable(np.zeros(hidden, np.float32), name="b")
        h = gc.relu(x @ w + b)
    with gc.name_scope("head"):
        w2 = gc.Variable(rng.standard_normal((hidden, 3)).astype(np.float32), name="w")
        logits = h @ w2
        # written by hand: stabilize turns log(softmax) into log_softmax
        loss = gc.mean(-gc.sum(gc.log(gc.softmax(logits)) * gc.one_hot(labels, 3), axis=1))
    grads = gc.grad(loss, [w, b, w2])
    return [x, labels], loss, {v: v - 0.1 * g for v, g in zip([w, b, w2], grads)}


def deep_net(layers: int) -> gc.Function:
    """Many scoped layers and their gradients: far more nodes than the first view opens."""
    rng = np.random.default_rng(1)
    x = gc.placeholder("float32", (None, 8), name="x")
    h, params = x, []
    for i in range(layers):
        with gc.name_scope(f"layer{i}"):
            w = gc.Variable(rng.standard_normal((8, 8)).astype(np.float32) * 0.3, name="w")
            b = gc.Variable(np.zeros(8, np.float32), name="b")
            h = gc.tanh(h @ w + b) + h
            params += [w, b]
    loss = gc.mean(gc.square(h))
    return gc.function([x], loss, updates=gc.optimizers.SGD(0.1).updates(loss, params))


def conv_net(blocks: int) -> gc.Function:
    """A small residual conv net with batch normalisation, its gradient and Adam: ~180 nodes per block."""
    rng = np.random.default_rng(2)
    c = 4
    x = gc.placeholder("float32", (2, c, 8, 8), name="images")
    y = gc.placeholder("int64", (2,), name="labels")
    h = x
    for i in range(blocks):
        with gc.name_scope(f"block{i + 1}"):
            with gc.name_scope("conv"):
                z = gc.conv2d(h, gc.Variable(rng.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.2, name="w"),
                              padding="SAME")
            with gc.name_scope("batch_norm"):
                mean = gc.mean(z, axis=(0, 2, 3), keepdims=True)
                var = gc.mean(gc.square(z - mean), axis=(0, 2, 3), keepdims=True)
                gamma = gc.Variable(np.ones(c, np.float32), name="gamma")
                z = (z - mean) * gc.rsqrt(var + 1e-5) * gc.reshape(gamma, (1, c, 1, 1))
            h = gc.relu(z) + h
    with gc.name_scope("head"):
        logits = gc.mean(h, axis=(2, 3)) @ gc.Variable(rng.standard_normal((c, 10)).astype(np.float32), name="w")
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    params = list(gc.Graph([loss]).variables)
    return gc.function([x, y], loss, updates=gc.optimizers.Adam(1e-3).updates(loss, params))


def click(page: Page, item: str, part: str = "") -> None:
    """Click drawn item ``item`` (a node key or a group id), panned into view first as a user would."""
    page.js("(id) => window.graphcReport.centre(id)", item)
    attribute = "data-group" if item[:2] in ("s:", "k:", "b:") else "data-key"
    page.page.click(f'#scene [{attribute}="{item}"] {part}'.rstrip())


def drawn(page: Page) -> dict[str, Any]:
    """What the page drew: node names, group ids (collapsed / expanded), edge count, the view transform."""
    return page.js("""() => ({
        nodes: [...document.querySelectorAll('#scene [data-key]')].map(g => g.querySelector('title').textContent),
        keys: [...document.querySelectorAll('#scene [data-key]')].map(g => g.dataset.key),
        collapsed: [...document.querySelectorAll('#scene .group.collapsed')].map(g => g.dataset.group),
        expanded: [...document.querySelectorAll('#scene .group.expanded')].map(g => g.dataset.group),
        edges: document.querySelectorAll('#scene path.edge').length,
        params: document.querySelectorAll('#scene path.edge.param').length,
        fresh: [...document.querySelectorAll('#scene .node.new')].map(g => g.querySelector('title').textContent),
        selected: [...document.querySelectorAll('#scene .node.sel, #scene .group.sel')].map(
            g => g.dataset.key || g.dataset.group.replace(/^k:/, '')),  // a kernel's box is its fused node
        transform: document.getElementById('scene').getAttribute('transform'),
    })""")


OVERLAPS = """() => {
    // boxes of drawn items (nodes, collapsed boxes) that overlap, and items outside their group's frame
    const rect = (g) => {
        const b = g.querySelector('rect.box, rect').getBBox();
        return [b.x, b.y, b.width, b.height];
    };
    const items = [...document.querySelectorAll('#scene [data-key], #scene .group.collapsed')];
    const boxes = items.map(rect);
    const bad = [];
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const [ax, ay, aw, ah] = boxes[i], [bx, by, bw, bh] = boxes[j];
        if (ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah) bad.push([i, j]);
    }
    const frames = new Map([...document.querySelectorAll('#scene .group.expanded')].map(
        (g) => [g.dataset.group, g.querySelector('rect.frame').getBBox()]));
    const lay = window.graphcReport.layout();
    const outside = [];
    for (const [i, g] of items.entries()) {
        const id = g.dataset.key || g.dataset.group;
        const node = lay.model.nodes.get(id), group = lay.model.groups.get(id);
        const parent = node ? node.parent : group.parent;
        const f = frames.get(parent);
        if (!f) continue;
        const [x, y, w, h] = boxes[i];
        if (x < f.x || y < f.y || x + w > f.x + f.width || y + h > f.y + f.height) outside.push(id);
    }
    return {overlaps: bad.length, outside: outside};
}"""


def test_the_first_view_draws_every_node_of_a_small_graph(tmp_path: pathlib.Path, open_page: Opener) -> None:
    inputs, loss, updates = classifier()
    fn = gc.function(inputs, loss, updates=updates)
    gc.report(fn, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    built = fn.graph.phases[0][1]
    seen = drawn(page)
    assert sorted(seen["nodes"]) == sorted(n.name for n in built.nodes)  # small enough: every scope open
    scopes = {n.name.rsplit("/", 1)[0] for n in built.nodes if n.op == "variable"}  # dense, head (made unique)
    assert {f"s:{scope}" for scope in scopes} <= set(seen["expanded"]) and not seen["collapsed"]
    assert seen["edges"] == gc.to_networkx(built).number_of_edges()
    layout = page.js(OVERLAPS)
    assert layout == {"overlaps": 0, "outside": []}
    assert page.js("window.graphcReport.stats.nodes") == len(built.nodes)


def test_a_fused_kernel_is_one_box_that_expands_to_its_body(tmp_path: pathlib.Path, open_page: Opener) -> None:
    inputs, loss, updates = classifier()
    fn = gc.function(inputs, loss, updates=updates)
    gc.report(fn, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    page.page.click('#phases button[data-phase="4"]')
    final = fn.graph.phases[-1][1]
    keys = {str(i): n for i, n in enumerate(final.nodes)}
    fused = {k: n for k, n in keys.items() if n.op == "fused"}
    assert fused
    seen = drawn(page)
    assert {g for g in seen["collapsed"] if g.startswith("k:")} == {f"k:{k}" for k in fused}
    assert not any("." in k for k in seen["keys"])  # no kernel body is drawn yet
    key, node = max(fused.items(), key=lambda kv: len(kv[1].attrs["kernel"].nodes))
    kernel = node.attrs["kernel"]
    click(page, f"k:{key}", ".toggle")
    seen = drawn(page)
    body = sorted(k for k in seen["keys"] if k.startswith(f"{key}."))
    assert body == sorted(f"{key}.{j}" for j in range(len(kernel.nodes)))
    assert f"k:{key}" in seen["expanded"] and seen["params"] == len(kernel.params)
    assert page.js(OVERLAPS) == {"overlaps": 0, "outside": []}
    click(page, f"k:{key}", ".toggle")
    assert not any(k.startswith(f"{key}.") for k in drawn(page)["keys"])


def test_a_loop_is_one_box_that_opens_into_its_bodies(tmp_path: pathlib.Path, open_page: Opener) -> None:
    xs = gc.placeholder("float32", (5, 2, 3), name="xs")
    h0 = gc.placeholder("float32", (2, 3), name="h0")
    w = gc.Variable(np.eye(3, dtype=np.float32), name="w")
    hs = gc.scan(lambda x, h: gc.tanh(x + h @ w), xs, outputs_info=h0)
    p = gc.placeholder("bool", (), name="p")
    opt = gc.optimize([gc.cond(p, lambda: gc.exp(hs[-1]), lambda: hs[-1] - 1.0)])
    gc.report(opt, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    page.page.click('#phases button[data-phase="4"]')
    keys = {str(i): n for i, n in enumerate(opt.phases[-1][1].nodes)}
    loop = next(k for k, n in keys.items() if n.op == "loop")
    branch = next(k for k, n in keys.items() if n.op == "cond")
    seen = drawn(page)
    assert {f"k:{loop}", f"k:{branch}"} <= set(seen["collapsed"])
    assert not any("." in k for k in seen["keys"])  # no body is drawn yet
    click(page, f"k:{loop}", ".toggle")
    seen = drawn(page)
    body = keys[loop].attrs["body"]
    assert {f"k:{loop}", f"b:{loop}:body"} <= set(seen["expanded"])
    # the body's nodes are drawn (its kernels as boxes of their own), its parameters fed by labelled edges
    assert {k for k in seen["keys"] if k.startswith(loop + ".")} == {
        f"{loop}.{j}" for j, n in enumerate(body.nodes) if n.op != "fused"}
    assert {f"k:{loop}.{j}" for j, n in enumerate(body.nodes) if n.op == "fused"} <= set(seen["collapsed"])
    labels = page.js("[...document.querySelectorAll('#scene text.elabel')].map(t => t.textContent)")
    assert {"row", "loop variable 0", "captured"} <= set(labels)
    assert page.js(OVERLAPS) == {"overlaps": 0, "outside": []}
    row = next(f"{loop}.{j}" for j, n in enumerate(body.nodes) if n.op == "parameter" and n.attrs["index"] == 0)
    click(page, row)
    details = page.page.inner_text("#details")
    assert f"the body of %{loop} loop" in details and f"row: the input of %{loop} it reads" in details
    assert xs.name in details and "parameter" in details
    page.js(f"window.graphcReport.select('b:{loop}:body')")
    heading = next(text for owner, which, _, text in report_data_of((tmp_path / "r.html").read_text())["phases"][4][
        "bodies"] if owner == loop and which == "body")
    sequence = next(k for k, n in keys.items() if n.name == xs.name)
    assert heading in page.page.inner_text("#details") and f"row of %{sequence}" in heading
    click(page, f"k:{branch}", ".toggle")
    assert {f"b:{branch}:true_body", f"b:{branch}:false_body"} <= set(drawn(page)["expanded"])
    assert page.js(OVERLAPS) == {"overlaps": 0, "outside": []}
    page.js(f"window.graphcReport.toggle('k:{loop}')")
    assert not any(k.startswith(f"{loop}.") for k in drawn(page)["keys"])
    page.screenshot("report-loops")


def test_name_scopes_are_boxes_that_open_and_close(tmp_path: pathlib.Path, open_page: Opener) -> None:
    fn = deep_net(12)
    gc.report(fn, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    built = fn.graph.phases[0][1]
    seen = drawn(page)
    assert len(seen["nodes"]) < len(built.nodes)
    scope = next(g for g in seen["collapsed"] if g.startswith("s:layer"))  # names are unique per process
    members = sorted(n.name for n in built.nodes if n.name.startswith(scope[2:] + "/"))
    assert members and not set(members) & set(seen["nodes"])
    click(page, scope, ".toggle")
    seen = drawn(page)
    assert set(members) <= set(seen["nodes"]) and scope in seen["expanded"]
    assert page.js(OVERLAPS) == {"overlaps": 0, "outside": []}
    page.page.click("#collapse-all")
    seen = drawn(page)
    top = {n.name.split("/", 1)[0] for n in built.nodes if "/" in n.name}
    assert sorted(seen["collapsed"]) == sorted(f"s:{s}" for s in top)
    assert sorted(seen["nodes"]) == sorted(n.name for n in built.nodes if "/" not in n.name)
    page.page.click("#expand-all")
    assert sorted(drawn(page)["nodes"]) == sorted(n.name for n in built.nodes)


def test_clicking_a_node_shows_its_facts_and_the_rewrites_that_made_it(tmp_path: pathlib.Path,
                                                                        open_page: Opener) -> None:
    _inputs, loss, _updates = classifier()
    opt = gc.optimize([loss])
    gc.report(opt, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    graph = dict(opt.phases)["stabilize"]
    keys = {n.name: str(i) for i, n in enumerate(graph.nodes)}
    # a node a stabilize rewrite built that is still in the graph after the phase
    record = next(r for r in opt.phase_rewrites["stabilize"] if any(c in keys for c in r.created))
    key = keys[next(c for c in record.created if c in keys)]
    node = graph.nodes[int(key)]
    page.page.click('#phases button[data-phase="2"]')
    click(page, key)
    details = page.page.inner_text("#details")
    for fact in (node.op, node.name, node.type_str(), str(node.location), record.rewrite, f"'{record.node}'"):
        assert fact in details, fact
    assert "test_report_browser.py:" in str(node.location)
    assert drawn(page)["selected"] == [key]
    # an input is a link that selects it
    first_input = keys[node.inputs[0].name]
    page.page.click(f'#details a[data-goto="{first_input}"]')
    assert drawn(page)["selected"] == [first_input]
    # a node built as written says so
    page.page.click('#phases button[data-phase="0"]')
    click(page, "0")
    assert "none: built as written" in page.page.inner_text("#details")


def test_search_finds_a_node_inside_a_closed_scope(tmp_path: pathlib.Path, open_page: Opener) -> None:
    fn = deep_net(12)
    gc.report(fn, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    built = fn.graph.phases[0][1]
    scope = next(g for g in drawn(page)["collapsed"] if g.startswith("s:layer"))
    target = next(n for n in built.nodes if n.name.startswith(scope[2:] + "/") and n.op == "tanh")
    assert target.name not in drawn(page)["nodes"]
    page.page.fill("#search", target.name)
    assert target.name in page.page.inner_text("#results")  # among the matches, first in graph order
    page.page.press("#search", "Enter")
    seen = drawn(page)
    key = str(next(i for i, n in enumerate(built.nodes) if n is target))
    assert target.name in seen["nodes"] and seen["selected"] == [key]
    box = page.js(f"""() => {{
        const r = document.querySelector('#scene [data-key="{seen["selected"][0]}"] rect').getBoundingClientRect();
        const c = document.getElementById('canvas').getBoundingClientRect();
        return r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom; }}""")
    assert box  # brought into view


def test_stepping_through_phases_shows_what_each_rewrite_changed(tmp_path: pathlib.Path, open_page: Opener) -> None:
    _inputs, loss, updates = classifier()
    opt = gc.optimize([loss, *updates.values()])
    gc.report(opt, tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")
    for i in range(1, len(opt.phases)):
        page.page.keyboard.press("ArrowRight")
        name, graph = opt.phases[i]
        assert page.page.inner_text("#phases button.current").startswith(name)
        records = opt.phase_rewrites[name]
        assert page.page.locator("#details a[data-rewrite]").count() == len(records)
        # nodes whose names the previous phase did not have are outlined
        before = {n.name for n in opt.phases[i - 1][1].nodes}
        seen = drawn(page)
        assert sorted(seen["fresh"]) == sorted(n for n in seen["nodes"] if n not in before)
        names = {n.name: str(k) for k, n in enumerate(graph.nodes)}
        shown = next((r for r in records if any(c in names for c in r.created)), None)
        if shown is not None:  # a rewrite's link brings the first node it made (still there) into view
            index = next(k for k, r in enumerate(opt.rewrites) if r is shown)
            page.page.click(f'#details a[data-rewrite="{index}"]')
            assert drawn(page)["selected"] == [next(names[c] for c in shown.created if c in names)]
    assert page.page.inner_text("#phases button.current").startswith("fuse")
    page.page.keyboard.press("ArrowLeft")
    assert page.page.inner_text("#phases button.current").startswith("specialize")


def test_zoom_and_pan(tmp_path: pathlib.Path, open_page: Opener) -> None:
    _inputs, loss, _updates = classifier()
    gc.report([loss], tmp_path / "r.html")
    page = open_page(tmp_path / "r.html")

    def view() -> tuple[float, float, float]:
        t = drawn(page)["transform"]
        x, y = t.split("translate(")[1].split(")")[0].split(",")
        return float(x), float(y), float(t.split("scale(")[1].rstrip(")"))

    x0, _y0, k0 = view()
    # what the wheel shows at once, read as its event bubbles past the canvas's handler: reading it
    # afterwards would race the settle timer on a loaded machine
    page.js("window.addEventListener('wheel', () => {"
            " window.previewed = document.getElementById('graph').style.transform; })")
    page.page.mouse.move(500, 500)
    page.page.mouse.wheel(0, -400)
    # shown at once as a scaled picture, drawn at the new scale when the wheel rests
    page.page.wait_for_function("window.previewed !== undefined")
    assert page.js("window.previewed").startswith("translate(")
    page.page.wait_for_function(f"!document.getElementById('scene').getAttribute('transform').endsWith('scale({k0:.4f})')")
    assert page.js("document.getElementById('graph').style.transform") == ""
    x1, y1, k1 = view()
    assert k1 > k0
    # the point under the pointer stays where it was
    assert (500 - x1) / k1 == pytest.approx((500 - x0) / k0, abs=0.05)
    page.page.mouse.down()
    page.page.mouse.move(400, 450, steps=5)
    page.page.mouse.up()
    x2, y2, k2 = view()
    assert (round(x2 - x1), round(y2 - y1), k2) == (-100, -50, k1)
    page.page.click("#zoom-out")
    page.page.wait_for_function(f"!document.getElementById('scene').getAttribute('transform').endsWith('scale({k2:.4f})')")
    assert view()[2] < k2


def test_a_large_gradient_graph_opens_collapsed_by_name_scope(tmp_path: pathlib.Path, open_page: Opener) -> None:
    fn = conv_net(15)
    built = fn.graph.phases[0][1]
    assert len(built.nodes) >= 2000
    gc.report(fn, tmp_path / "big.html")
    page = open_page(tmp_path / "big.html")
    seen = drawn(page)
    assert len(seen["nodes"]) + len(seen["collapsed"]) <= 80  # usable at first sight
    groups = {*seen["collapsed"], *seen["expanded"]}
    assert any(g.startswith("s:gradients") for g in groups) and any(g.startswith("s:Adam") for g in groups)
    page.page.click("#expand-all")
    assert len(drawn(page)["nodes"]) == len(built.nodes)
    page.page.click('#phases button[data-phase="4"]')
    assert any(g.startswith("k:") for g in drawn(page)["collapsed"])
    page.screenshot("report-large")


def test_graphc_inspect_html_draws_a_graph_file(tmp_path: pathlib.Path, open_page: Opener) -> None:
    inputs, loss, _ = classifier()
    gc.save_graph(tmp_path / "model.gcg", [loss], inputs=inputs)
    done = subprocess.run([sys.executable, "-m", "graphc", "inspect", str(tmp_path / "model.gcg"), "--format", "html",
                           "-o", str(tmp_path / "model.html")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = open_page(tmp_path / "model.html")
    assert sorted(drawn(page)["nodes"]) == sorted(n.name for n in gc.Graph([loss]).nodes)  # names as saved
    scopes = {n.name.rsplit("/", 1)[0] for n in gc.Graph([loss]).nodes if n.op == "variable"}
    assert {f"s:{scope}" for scope in scopes} <= set(drawn(page)["expanded"])


def test_the_example_report_with_a_node_selected(tmp_path: pathlib.Path, open_page: Opener) -> None:
    """The screenshot in docs/inspecting.md: examples/inspect_report.py's page, fuse phase, one kernel open."""
    root = pathlib.Path(__file__).parent.parent
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, str(root / "examples" / "inspect_report.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = open_page(out)
    page.page.click('#phases button[data-phase="4"]')
    kernel = next(g for g in drawn(page)["collapsed"] if g.startswith("k:"))
    click(page, kernel, ".toggle")
    body = next(k for k in drawn(page)["keys"] if k.startswith(kernel[2:] + "."))
    click(page, body)
    assert drawn(page)["selected"] == [body]
    page.screenshot("report")
