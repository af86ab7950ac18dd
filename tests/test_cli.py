"""The `graphc` command, run as `python -m graphc` in a subprocess."""

from __future__ import annotations

import html
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from dot_syntax import parse_dot

import graphc as gc
from graphc import cli
from report_page import report_data_of

ROOT = pathlib.Path(__file__).parent.parent
HAVE_DOT = shutil.which("dot") is not None


def graphc_cmd(*args: str, cwd: pathlib.Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "graphc", *map(str, args)], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("graphc") and ": error: " in lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A saved graph whose optimisation fires rewrites and fuses kernels."""
    x = gc.placeholder("float32", (None, 4), name="x")
    w = gc.Variable(np.ones((4, 3), np.float32), name="w")
    h = gc.exp(x @ w)
    y = gc.sum(h * h, axis=1)
    z = gc.relu(gc.exp(x @ w)) - gc.tanh(h)  # x @ w and exp twice: CSE merges them
    path = tmp_path_factory.mktemp("graphs") / "model.gcg"
    gc.save_graph(path, [y, z], inputs=[x])
    return path


def test_help_texts(tmp_path: pathlib.Path) -> None:
    top = graphc_cmd("--help", cwd=tmp_path)
    assert top.returncode == 0 and top.stderr == ""
    assert "usage: graphc" in top.stdout and "inspect" in top.stdout
    sub = graphc_cmd("inspect", "--help", cwd=tmp_path)
    assert sub.returncode == 0
    for word in ("usage: graphc inspect", "FILE.gcg", "--level", "--format", "text", "dot", "html", "-o OUT",
                 "examples:"):
        assert word in sub.stdout
    version = graphc_cmd("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"graphc {gc.__version__}"
    bare = graphc_cmd(cwd=tmp_path)
    assert bare.returncode == 2 and "usage: graphc" in bare.stderr


def test_text_format(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = graphc_cmd("inspect", model_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    graph_text, log_text = result.stdout.split("\n\n# rewrites: ")
    lines = graph_text.splitlines()
    assert lines[0].startswith("   %0 = placeholder() : float32[?, 4]  'x")  # saved names are kept
    assert any(" = fused(" in line and "kind=reduction" in line for line in lines)
    assert any(line.startswith("    |") for line in lines)  # kernels are shown with their inner graphs
    assert lines[-1].startswith("    |") or lines[-1].startswith("->")
    # the same text as gc.dprint of gc.optimize of the loaded graph, up to process-unique names
    _, outputs = gc.load_graph(model_file)
    expected = gc.dprint(gc.optimize(outputs))
    assert [line.split("'")[0] for line in lines] == [line.split("'")[0] for line in expected.splitlines()]
    log = gc.optimize(outputs).rewrites
    assert log_text.startswith(f"{len(log)} applied at level 2\n")
    for record in log:
        assert f"#   {record.phase}/{record.rewrite}: {record.op} '" in log_text
    counts_text = log_text.split("# counts:\n")[1]
    counts = {line.split()[1]: int(line.split()[2]) for line in counts_text.splitlines()}
    assert counts == {f"{r.phase}/{r.rewrite}": n for r in log for name, n in log.counts().items()
                      if r.rewrite == name}


def test_levels(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    level0 = graphc_cmd("inspect", model_file, "--level", "0", cwd=tmp_path)
    assert level0.returncode == 0, level0.stderr
    assert "fused(" not in level0.stdout and "# rewrites: 0 applied at level 0" in level0.stdout
    assert "multiply(%" in level0.stdout  # h * h as built
    level1 = graphc_cmd("inspect", model_file, "--level=1", cwd=tmp_path)
    assert level1.returncode == 0 and "fused(" not in level1.stdout and "at level 1" in level1.stdout
    level2 = graphc_cmd("inspect", model_file, "--level", "2", cwd=tmp_path)
    assert "fused(" in level2.stdout and "square(" in level2.stdout
    assert level2.stdout == graphc_cmd("inspect", model_file, cwd=tmp_path).stdout  # 2 is the default


def test_dot_format(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = graphc_cmd("inspect", model_file, "--format", "dot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dot = parse_dot(result.stdout)
    assert dot.name == "model" and len(dot.subgraphs) == 2
    assert all(name.startswith("cluster_") for name in dot.subgraphs)
    flat = parse_dot(graphc_cmd("inspect", model_file, "--format", "dot", "--level", "0", cwd=tmp_path).stdout)
    assert not flat.subgraphs
    if HAVE_DOT:
        done = subprocess.run(["dot", "-Tsvg"], input=result.stdout, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "<svg" in done.stdout, done.stderr


def test_output_file(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for fmt in ("text", "dot"):
        out = tmp_path / f"out.{fmt}"
        result = graphc_cmd("inspect", model_file, "--format", fmt, "-o", out, cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
        assert out.read_text(encoding="utf-8") == graphc_cmd("inspect", model_file, "--format", fmt,
                                                             cwd=tmp_path).stdout
    bad = graphc_cmd("inspect", model_file, "-o", tmp_path / "no" / "such" / "dir.txt", cwd=tmp_path)
    assert_one_line_error(bad, "cannot write")


def test_html_format(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "report.html"
    result = graphc_cmd("inspect", model_file, "--format", "html", "-o", out, "--level", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and html.escape("model.gcg") in text
    data = report_data_of(text)
    assert [p["name"] for p in data["phases"]] == ["input", "canonicalize", "stabilize"]
    assert "<td>cse</td>" in text and "<svg" in text  # drawn by the page itself, Graphviz or not
    # without -o: <name of the graph file>.html in the current directory
    workdir = tmp_path / "work"
    workdir.mkdir()
    default = graphc_cmd("inspect", model_file, "--format", "html", cwd=workdir)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "model.html" and (workdir / "model.html").is_file()
    assert report_data_of((workdir / "model.html").read_text(encoding="utf-8"))["phases"][-1]["name"] == "fuse"


def test_missing_and_unreadable_files(tmp_path: pathlib.Path) -> None:
    assert_one_line_error(graphc_cmd("inspect", "nowhere.gcg", cwd=tmp_path), "nowhere.gcg", "no such file")
    assert_one_line_error(graphc_cmd("inspect", tmp_path, cwd=tmp_path), "is a directory")


def test_corrupt_files(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    garbage = tmp_path / "garbage.gcg"
    garbage.write_bytes(b"this is not a graph file\n\x00\xff" * 10)
    assert_one_line_error(graphc_cmd("inspect", garbage, cwd=tmp_path), "garbage.gcg")
    data = model_file.read_bytes()
    truncated = tmp_path / "truncated.gcg"
    truncated.write_bytes(data[: len(data) // 2])
    assert_one_line_error(graphc_cmd("inspect", truncated, cwd=tmp_path), "truncated.gcg")
    empty = tmp_path / "empty.gcg"
    empty.write_bytes(b"")
    assert_one_line_error(graphc_cmd("inspect", empty, "--format", "html", cwd=tmp_path), "empty.gcg")
    assert not (tmp_path / "empty.html").exists()


def test_bad_arguments(model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert_one_line_error(graphc_cmd("inspect", model_file, "--level", "3", cwd=tmp_path), "--level", "3")
    assert_one_line_error(graphc_cmd("inspect", model_file, "--level", "two", cwd=tmp_path), "--level", "two")
    assert_one_line_error(graphc_cmd("inspect", model_file, "--format", "png", cwd=tmp_path), "--format", "png")
    assert_one_line_error(graphc_cmd("inspect", cwd=tmp_path), "FILE.gcg")
    assert_one_line_error(graphc_cmd("frobnicate", cwd=tmp_path), "frobnicate")


def test_main_in_process(model_file: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(model_file), "--level", "0", "--format", "dot"]) == 0
    assert parse_dot(capsys.readouterr().out).nodes
    assert cli.main(["inspect", str(model_file) + ".missing"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_console_script_entry_point() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["graphc"] == "graphc.cli:main"


# ---- --format llvm / asm: the code the CPU backend generates ---------------------------------------------

@pytest.fixture(scope="module")
def cpu_model_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A saved graph with matmuls, a fused reduction and an elementwise kernel; its placeholder is
    ``inspect_x`` (a name no other test takes, so the file keeps it)."""
    x = gc.placeholder("float32", (None, 4), name="inspect_x")
    w = gc.Variable(np.ones((4, 3), np.float32), name="w")
    h = gc.exp(x @ w)
    path = tmp_path_factory.mktemp("graphs") / "cpu_model.gcg"
    gc.save_graph(path, [gc.sum(h * h, axis=1), gc.relu(h) - gc.tanh(h)], inputs=[x])
    return path


def test_llvm_and_asm_formats(cpu_model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    model_file = cpu_model_file
    default = graphc_cmd("inspect", model_file, "--format", "llvm", cwd=tmp_path)
    assert default.returncode == 0 and default.stderr == "", default.stderr
    assert "define void @graphc_entry(" in default.stdout and "target triple" in default.stdout
    # unknown dimensions: --dim for all of them, --shape for one placeholder's whole shape
    dim = graphc_cmd("inspect", model_file, "--format", "llvm", "--dim", "37", cwd=tmp_path)
    shape = graphc_cmd("inspect", model_file, "--format=llvm", "--shape", "inspect_x=37,4", cwd=tmp_path)
    assert dim.returncode == 0 and shape.returncode == 0, dim.stderr + shape.stderr
    assert dim.stdout == shape.stdout != default.stdout
    assert any(f" {n}" in dim.stdout for n in (37, 37 * 3, 37 * 4))  # a trip count for 37 rows
    out = tmp_path / "model.s"
    asm = graphc_cmd("inspect", model_file, "--format", "asm", "--level", "0", "-o", out, cwd=tmp_path)
    assert asm.returncode == 0 and asm.stdout == "" and asm.stderr == "", asm.stderr
    text = out.read_text(encoding="utf-8")
    assert "graphc_entry:" in text and "ret" in text


def test_compiled_formats_report_graphs_that_do_not_compile(tmp_path: pathlib.Path) -> None:
    x = gc.placeholder("float32", (None, 4), name="inspect_a")
    y = gc.placeholder("float32", (None, 4), name="inspect_b")
    path = tmp_path / "pair.gcg"
    gc.save_graph(path, [x + y], inputs=[x, y])
    fine = graphc_cmd("inspect", path, "--format", "llvm", "--shape", "inspect_b=3,4", "--dim", "3", cwd=tmp_path)
    assert fine.returncode == 0, fine.stderr
    # the shapes asked for do not fit together: graphc rejects the graph (status 1), in one line
    result = graphc_cmd("inspect", path, "--format", "asm", "--shape", "inspect_b=3,4", "--dim", "2", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphc: error: ") and "Traceback" not in result.stderr
    assert "pair.gcg" in lines[0] and "add" in lines[0] and "inspect_b: [3, 4]" in lines[0]


def test_compiled_formats_report_ops_the_backend_cannot_compile(
        cpu_model_file: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(self: gc.Function, *args: object) -> None:
        raise gc.ArgumentError("op pad has no lowering rule yet (use device='reference'): 'pad'\n"
                               "  (float32[?, 6], pad at model.py:3)")

    monkeypatch.setattr(gc.Function, "__call__", refuse)  # as the backend refuses an op it cannot lower
    for fmt in ("llvm", "asm"):
        assert cli.main(["inspect", str(cpu_model_file), "--format", fmt]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith("graphc: error: ") and "op pad has no lowering rule" in captured.err
        assert "cpu_model.gcg" in captured.err and "pad at model.py:3" in captured.err


def test_shape_and_dim_errors(cpu_model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    model_file = cpu_model_file
    for args, fragments in [
        (("--shape", "x=a,b"), ("--shape x=a,b", "NAME=D0,D1")),
        (("--shape", "x"), ("--shape x",)),
        (("--shape", "=3"), ("--shape =3",)),
        (("--shape", "x=-1,4"), (">= 0",)),
        (("--shape", "inspect_x=5"), ("--shape inspect_x=5", "float32[?, 4]")),
        (("--shape", "inspect_x=5,3"), ("--shape inspect_x=5,3", "float32[?, 4]")),
        (("--shape", "nosuch=1"), ("no placeholder 'nosuch'", "inspect_x (float32[?, 4])")),
        (("--dim", "-2"), ("--dim", "-2")),
        (("--dim", "two"), ("--dim", "two")),
    ]:
        assert_one_line_error(graphc_cmd("inspect", model_file, "--format", "llvm", *args, cwd=tmp_path), *fragments)
    assert_one_line_error(graphc_cmd("inspect", model_file, "--shape", "inspect_x=2,4", cwd=tmp_path),
                          "--format llvm")
    assert_one_line_error(graphc_cmd("inspect", model_file, "--format", "dot", "--dim", "2", cwd=tmp_path), "--dim")


def test_ptx_format_without_a_gpu(cpu_model_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = graphc_cmd("inspect", cpu_model_file, "--format", "ptx", "--arch", "sm_90", "--dim", "64", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = result.stdout
    assert ".target sm_90" in text and ".visible .entry" in text
    assert "// graphc: the launches of" in text and "BLAS gemm float32 64x4 @ 4x3" in text and "grid" in text
    default = graphc_cmd("inspect", cpu_model_file, "--format", "ptx", cwd=tmp_path)
    assert default.returncode == 0 and ".target sm_80" in default.stdout
    assert_one_line_error(graphc_cmd("inspect", cpu_model_file, "--format", "ptx", "--arch", "90", cwd=tmp_path),
                          "sm_80", "'90'")
    assert_one_line_error(graphc_cmd("inspect", cpu_model_file, "--arch", "sm_90", cwd=tmp_path), "--arch", "ptx")


def test_feed_shapes() -> None:
    x = gc.placeholder("float32", (None, 4, None), name="feed_shapes_x")
    s = gc.placeholder("int64", (), name="feed_shapes_s")
    assert cli.feed_shapes([x, s], [], 1) == [(1, 4, 1), ()]
    assert cli.feed_shapes([x, s], ["feed_shapes_x=2,4,3"], 7) == [(2, 4, 3), ()]
    assert cli.feed_shapes([x, s], ["feed_shapes_s="], 7) == [(7, 4, 7), ()]
    assert cli.parse_shape(" y = 0, 5") == ("y", (0, 5))
    with pytest.raises(cli.CommandError, match="does not fit"):
        cli.feed_shapes([x, s], ["feed_shapes_s=1"], 1)


def test_help_names_the_compiled_formats(tmp_path: pathlib.Path) -> None:
    sub = graphc_cmd("inspect", "--help", cwd=tmp_path)
    assert sub.returncode == 0
    for word in ("llvm", "asm", "ptx", "--arch sm_XY", "--shape NAME=D0,D1,...", "--dim N", "default: 1",
                 "device=\"cpu\"", "device=\"cuda\""):
        assert word in sub.stdout, word
