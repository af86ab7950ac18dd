"""(r) The interactive report on a large graph: writing it, laying it out in the browser, zooming and panning it.

    python3 benchmarks/bench_report.py [--quick]

The graph is a residual conv net's training step (conv 3x3, batch normalisation, ReLU per block, in name
scopes; softmax cross-entropy; Adam), about 2,200 nodes as built (--quick: 3 blocks).  Measured:

* ``gc.report`` in Python (the page's data and text), best of 3;
* in headless Chromium (skipped with a note where Playwright or Chromium is missing), as the page itself
  reports it: the layout and drawing of the first view (name scopes collapsed), of every scope and kernel
  open (the worst case, target: layout under 2 s), and of the fused phase;
* frames a second while zooming (the wheel) and panning (a drag) at every animation frame for 2 s, at the
  first view and fully open (target at the first view: 30);
* for comparison, Graphviz ``dot -Tsvg`` on the same graph's DOT text when ``dot`` is on PATH (the static
  drawing the report made before; not in --quick, and given at most DOT_TIMEOUT_S): the ratio is dot's
  time over the report's layout and drawing with every scope open.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from _harness import Section, main_cli
from _timing import Config, Row, at_least, at_most, fmt_time

import graphc as gc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from browser import FLAGS, chromium_path

FRAMES_PER_SECOND = """async ([kind, ms]) => {
    // zoom (wheel) or pan (drag) at every animation frame for ``ms``: the frames the page keeps up with
    const canvas = document.getElementById('canvas'), r = canvas.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    let frames = 0;
    const t0 = performance.now();
    await new Promise((done) => {
        const step = () => {
            if (performance.now() - t0 > ms) { done(); return; }
            const i = frames++;
            if (kind === 'zoom') {
                canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: (i >> 3) % 2 ? 60 : -60, clientX: x, clientY: y,
                                                              bubbles: true, cancelable: true}));
            } else {
                canvas.dispatchEvent(new MouseEvent('mousedown', {clientX: x, clientY: y, bubbles: true}));
                window.dispatchEvent(new MouseEvent('mousemove', {clientX: x + ((i >> 3) % 2 ? -30 : 30), clientY: y}));
                window.dispatchEvent(new MouseEvent('mouseup', {}));
            }
            requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
    });
    return frames * 1000 / (performance.now() - t0);
}"""


DOT_TIMEOUT_S = 180.0


def conv_net_step(blocks: int, channels: int = 8) -> gc.Function:
    rng = np.random.default_rng(0)
    x = gc.placeholder("float32", (8, channels, 16, 16), name="images")
    y = gc.placeholder("int64", (8,), name="labels")

    def weight(shape: tuple[int, ...], name: str, scale: float = 0.1) -> gc.Variable:
        return gc.Variable((rng.standard_normal(shape) * scale).astype(np.float32), name=name)

    h = x
    for i in range(blocks):
        with gc.name_scope(f"block{i + 1}"):
            with gc.name_scope("conv"):
                z = gc.conv2d(h, weight((channels, channels, 3, 3), "w"), padding="SAME")
            with gc.name_scope("batch_norm"):
                mean = gc.mean(z, axis=(0, 2, 3), keepdims=True)
                var = gc.mean(gc.square(z - mean), axis=(0, 2, 3), keepdims=True)
                gamma = gc.reshape(weight((channels,), "gamma"), (1, channels, 1, 1))
                beta = gc.reshape(weight((channels,), "beta"), (1, channels, 1, 1))
                z = (z - mean) * gc.rsqrt(var + 1e-5) * gamma + beta
            h = gc.relu(z) + h
    with gc.name_scope("head"):
        logits = gc.mean(h, axis=(2, 3)) @ weight((channels, 10), "w") + weight((10,), "b")
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    params = list(gc.Graph([loss]).variables)
    return gc.function([x, y], loss, updates=gc.optimizers.Adam(1e-3).updates(loss, params))


def _browser_rows(path: str, quick: bool) -> tuple[list[Row], float | None]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("(r) browser: skipped, playwright is not installed")
        return [], None
    exe = chromium_path()
    if exe is None:
        print("(r) browser: skipped, no Chromium on PATH")
        return [], None
    rows: list[Row] = []
    duration_ms = 200 if quick else 2000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("file://" + os.path.abspath(path))

        def stats() -> dict[str, Any]:
            return page.evaluate("window.graphcReport.stats")

        def report_view(label: str, target: float | None = None) -> float:
            s = stats()
            total = s["layoutMs"] + s["renderMs"]
            print(f"(r) {label}: {s['nodes']} nodes, {s['boxes']} boxes, {s['edges']} edges drawn  "
                  f"layout {s['layoutMs']:.0f} ms  drawing {s['renderMs']:.0f} ms")
            if target is not None:
                rows.append(Row("r", f"layout, {label}", s["layoutMs"], "ms", None if quick else at_most(target, "ms")))
            return total

        def frames(label: str, target: float | None = None) -> None:
            for kind in ("zoom", "pan"):
                fps = page.evaluate(FRAMES_PER_SECOND, [kind, duration_ms])
                print(f"(r) {label}: {'zooming' if kind == 'zoom' else 'panning'} at {fps:.0f} frames a second")
                rows.append(Row("r", f"{kind} frames/s, {label}", fps, "fps",
                                None if quick or target is None else at_least(target, "fps")))

        report_view("first view, scopes collapsed", 2000)
        frames("first view", 30)
        page.click("#expand-all")
        full = report_view("every scope open", 2000)
        frames("every scope open")
        page.click('#phases button[data-phase="4"]')
        page.click("#expand-all")
        report_view("fused phase, every scope and kernel open", 2000)
        browser.close()
    if errors:
        raise RuntimeError(f"the page raised: {errors}")
    return rows, full


def section_r(cfg: Config) -> list[Row]:
    blocks = 3 if cfg.quick else 12
    fn = conv_net_step(blocks)
    built = fn.graph.phases[0][1]
    print(f"(r) graph: {len(built.nodes)} nodes as built, {len(fn.graph.nodes)} after fusion ({blocks} blocks)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "report.html")
        best = float("inf")
        for _ in range(1 if cfg.quick else 3):
            t0 = time.perf_counter()
            gc.report(fn, path)
            best = min(best, time.perf_counter() - t0)
        size = os.path.getsize(path) / 1e6
        print(f"(r) gc.report in Python: {fmt_time(best)}, page {size:.1f} MB")
        rows = [Row("r", "gc.report (Python)", best * 1e3, "ms")]
        browser_rows, full_ms = _browser_rows(path, cfg.quick)
        rows += browser_rows
        dot = shutil.which("dot")
        if dot is None or cfg.quick:
            print("(r) Graphviz: skipped, " + ("--quick" if cfg.quick else "'dot' is not on PATH"))
        elif full_ms is not None:
            t0 = time.perf_counter()
            try:
                done = subprocess.run([dot, "-Tsvg"], input=gc.to_dot(built), capture_output=True, text=True,
                                      timeout=DOT_TIMEOUT_S)
                if done.returncode != 0:
                    raise RuntimeError(f"dot failed: {done.stderr.strip()}")
                dot_s, more = time.perf_counter() - t0, ""
            except subprocess.TimeoutExpired:
                dot_s, more = DOT_TIMEOUT_S, "more than "
            ratio = dot_s * 1e3 / full_ms
            print(f"(r) Graphviz dot -Tsvg of the same graph (every node): {more}{fmt_time(dot_s)}; "
                  f"the report with every scope open {full_ms:.0f} ms: ratio {more}{ratio:.0f}x")
            rows.append(Row("r", "dot -Tsvg time / report's", ratio, "x", note="at least" if more else ""))
    return rows


SECTIONS: dict[str, Section] = {"r": ("the interactive report of a ~2,200-node training step", section_r)}

if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
