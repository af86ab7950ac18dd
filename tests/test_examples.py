"""Every example in examples/ runs to completion (they check their own results against NumPy)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("**/*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["two_layer_relu.py", "softmax_classifier.py"])
def test_training_examples_run_on_the_cuda_emulator(name: str) -> None:
    """The examples' ``--device``: the CUDA backend's kernels, emulated (on a GPU: ``--device cuda``)."""
    path = pathlib.Path(__file__).parent.parent / "examples" / name
    result = subprocess.run([sys.executable, str(path), "--device", "cuda-sim"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_examples() -> None:
    assert EXAMPLES
