"""The benchmark harness runs: ``benchmarks/run_all.py --quick`` exits 0 and every section prints its lines.

No timing is asserted (this machine's numbers are not the test's business), but every section checks graphc's
results against NumPy's before timing, so a wrong kernel fails this test.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
SECTIONS = "abcdefghopqt"


def test_gpu_sections_run_on_the_cuda_emulator() -> None:
    """``run_all.py --device cuda-sim --quick``: the GPU sections' code runs (on a GPU: ``--device cuda``)."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--device", "cuda-sim",
                             "--quick", "--threads", "1", "--in-process"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for key in "ijklm":
        assert f"== ({key}) " in result.stdout and f"({key}) FAILED" not in result.stdout, out
    assert "1-element call on cuda-sim" in result.stdout.split("SUMMARY", 1)[1], out


def test_run_all_quick() -> None:
    """``run_all.py --quick`` exits 0, every section starts and prints a result, and the summary names them all."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--threads", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for key in SECTIONS:
        assert f"== ({key}) " in result.stdout, f"section ({key}) did not start\n{out}"
        assert re.search(rf"^\({key}\) .*\d", result.stdout, re.M), f"section ({key}) printed no result\n{out}"
        assert f"({key}) FAILED" not in result.stdout, out
    summary = result.stdout.split("SUMMARY", 1)
    assert len(summary) == 2, f"no summary table\n{out}"
    for key in SECTIONS:
        assert re.search(rf"^\({key}\) ", summary[1], re.M), f"section ({key}) has no summary row\n{out}"
    assert "targets met:" in summary[1], out


def test_bench_report_quick() -> None:
    """``bench_report.py --quick`` (the report in a browser; not part of run_all) exits 0 and prints its lines."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_report.py"), "--quick"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert re.search(r"^\(r\) gc.report in Python: .*\d", result.stdout, re.M), out
    assert "(r) FAILED" not in result.stdout, out
