"""Train the classifier of ../softmax_classifier.py, compile it ahead of time, and call it from C.

1. trains the 784 -> 500 tanh -> 10 classifier (two epochs are plenty on its synthetic data);
2. builds the inference graph ``x: float32[None, 784] -> (probabilities float32[None, 10], classes
   int64[None])`` and saves it with ``gc.save_graph`` (the trained weights travel in the file);
3. runs ``graphc aot`` on the graph file: ``classifier.so`` + ``classifier.h`` (``x.shape[0]``, the
   batch size, is the one run-time dimension);
4. writes some held-out rows as raw float32 and compiles ``classify.c`` against the library with the
   system's C compiler;
5. runs the C program and checks that its classes and probabilities are those ``gc.function`` computes
   (and those of ``gc.aot.load``, the same library called from Python).

    python3 examples/aot/train_and_compile.py [--build-dir DIR]     (default: examples/aot/build)

Without a C compiler the library cannot be linked: the script then writes the object file and the
header only (``graphc aot --no-link``) and skips the C part.  See README.md here and docs/aot.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import graphc as gc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from softmax_classifier import BATCH, N_CLASSES, N_HIDDEN, N_IN, N_TRAIN, glorot, make_data  # noqa: E402

NAME = "classifier"  # the C prefix: classifier_run, CLASSIFIER_INPUT_0_SIZE, ... in classifier.h
EPOCHS = 2
N_ROWS = 37  # held-out rows the C program classifies (any number works: the batch size is a run-time dim)
TOLERANCE = 1e-5
LINE = re.compile(r"^row (\d+): class (-?\d+), probability (\S+)$")


def train(rng: np.random.Generator, device: str = "cpu") -> tuple[list[gc.Variable], np.ndarray]:
    """Train as ../softmax_classifier.py does (fewer epochs) on ``device``; returns the parameters and the
    test images."""
    x_train, y_train, x_test, y_test = make_data(rng)
    x = gc.placeholder("float32", (None, N_IN), name="x_train")
    y = gc.placeholder("int64", (None,), name="y_train")
    params = [gc.Variable(glorot(rng, N_IN, N_HIDDEN), name="w_hidden"),
              gc.Variable(np.zeros(N_HIDDEN, np.float32), name="b_hidden"),
              gc.Variable(np.zeros((N_HIDDEN, N_CLASSES), np.float32), name="w_out"),
              gc.Variable(np.zeros(N_CLASSES, np.float32), name="b_out")]
    logits = logits_of(x, params)
    loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    step = gc.function([x, y], loss, updates=gc.optimizers.SGD(0.1, momentum=0.9).updates(loss, params),
                       device=device)
    accuracy = gc.function([x, y], gc.mean(gc.cast(gc.argmax(logits, axis=1) == y, "float32")), device=device)
    for epoch in range(EPOCHS):
        losses = [float(step(x_train[i], y_train[i])) for i in np.split(rng.permutation(N_TRAIN), N_TRAIN // BATCH)]
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}")
    test_accuracy = float(accuracy(x_test, y_test))
    print(f"held-out accuracy {test_accuracy:.3f} (chance: {1 / N_CLASSES:.3f})")
    assert test_accuracy > 0.8, f"held-out accuracy {test_accuracy:.3f} is not clearly better than chance"
    return params, x_test


def logits_of(x: gc.Tensor, params: Sequence[gc.Tensor]) -> gc.Tensor:
    w_hidden, b_hidden, w_out, b_out = params
    return gc.tanh(x @ w_hidden + b_hidden) @ w_out + b_out


def inference_graph(params: Sequence[gc.Tensor], n_in: int = N_IN) -> tuple[gc.Tensor, gc.Tensor, gc.Tensor]:
    """``x: float32[None, n_in] -> (probabilities float32[None, n_classes], classes int64[None])``."""
    x = gc.placeholder("float32", (None, n_in), name="x")
    logits = logits_of(x, params)
    return x, gc.softmax(logits, axis=-1), gc.argmax(logits, axis=1)


def c_compiler() -> list[str] | None:
    """The system's C compiler driver ($CC, else cc, gcc or clang), or None."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate.split()
    return None


def graphc_aot(graph_file: Path, output: Path, *options: str) -> None:
    """``graphc aot GRAPH_FILE -o OUTPUT --name classifier OPTIONS...`` (the command line tool)."""
    graphc_root = str(Path(gc.__file__).resolve().parent.parent)  # the graphc this script runs
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [graphc_root, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "graphc.cli", "aot", str(graph_file), "-o", str(output), "--name", NAME, *options]
    print("$ graphc", *command[3:])
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    print(result.stdout.strip())
    assert result.returncode == 0, result.stderr


def build_classify(cc: Sequence[str], build_dir: Path, flags: Sequence[str] = ()) -> Path:
    """Compile classify.c against ``build_dir``/classifier.so and .h into ``build_dir``/classify
    (``flags``: more compiler options).

    ``-l:classifier.so`` records the library by its file name and the run path ``$ORIGIN`` makes the
    loader look for it next to the executable, so the program runs without LD_LIBRARY_PATH."""
    executable = build_dir / "classify"
    command = [*cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", *flags, "-I", str(build_dir),
               str(HERE / "classify.c"), "-o", str(executable), "-L", str(build_dir), f"-l:{NAME}.so",
               "-Wl,-rpath,$ORIGIN"]
    print("$", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return executable


def run_classify(executable: Path, inputs: Path, wrapper: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray, str]:
    """Run the C program; returns its classes, the probabilities of those classes, and its error-path line."""
    result = subprocess.run([*wrapper, str(executable), str(inputs)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{executable} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
    lines = result.stdout.splitlines()
    rows = [LINE.match(line) for line in lines[:-1]]
    assert all(rows) and [int(m[1]) for m in rows] == list(range(len(rows))), result.stdout  # type: ignore[index]
    classes = np.array([int(m[2]) for m in rows], np.int64)  # type: ignore[index]
    probabilities = np.array([float(m[3]) for m in rows])  # type: ignore[index]
    return classes, probabilities, lines[-1]


def check(classes: np.ndarray, probabilities: np.ndarray, error_line: str, expected_probabilities: np.ndarray,
          expected_classes: np.ndarray) -> None:
    """The C program's output against gc.function's: equal classes, probabilities within TOLERANCE."""
    np.testing.assert_array_equal(classes, expected_classes)
    chosen = expected_probabilities[np.arange(len(expected_classes)), expected_classes]
    np.testing.assert_allclose(probabilities, chosen, rtol=TOLERANCE, atol=TOLERANCE)
    assert error_line.startswith("a batch of -1 rows: error 2: "), error_line  # CLASSIFIER_ERROR_NEGATIVE_DIM


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=HERE / "build",
                        help="where the graph file, the library, the header and the C program go "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="where to train: cpu (default), cuda, cuda:N, cuda-sim or reference (the library "
                             "is compiled for this machine's CPU either way)")
    args = parser.parse_args(argv)
    build_dir = args.build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(1234)
    params, x_test = train(rng, args.device)

    # the inference graph, saved with its trained weights, and what gc.function says it computes
    x, probabilities, classes = inference_graph(params)
    graph_file = build_dir / f"{NAME}.gcg"
    gc.save_graph(graph_file, [probabilities, classes], [x])
    rows = x_test[:N_ROWS]
    expected_probabilities, expected_classes = gc.function([x], [probabilities, classes])(rows)

    cc = c_compiler()
    if cc is None:
        graphc_aot(graph_file, build_dir / NAME, "--no-link")
        print("note: no C compiler found (cc, gcc, clang or $CC): wrote the object file and the header only, "
              "skipped linking and the C program")
        return
    graphc_aot(graph_file, build_dir / NAME)

    # the same library from Python
    library = gc.aot.load(build_dir / f"{NAME}.so")
    from_python = library(rows)
    np.testing.assert_array_equal(from_python[1], expected_classes)
    np.testing.assert_allclose(from_python[0], expected_probabilities, rtol=TOLERANCE, atol=TOLERANCE)
    print(f"{NAME}.so needs only {', '.join(gc.aot.needed_libraries(build_dir / f'{NAME}.so'))}")

    # ... and from C
    inputs = build_dir / "inputs.f32"
    np.ascontiguousarray(rows, np.float32).tofile(inputs)
    executable = build_classify(cc, build_dir)
    print(f"$ {executable} {inputs}")
    got_classes, got_probabilities, error_line = run_classify(executable, inputs)
    for row in range(3):
        print(f"row {row}: class {got_classes[row]}, probability {got_probabilities[row]:.6f}")
    print(f"... ({N_ROWS} rows)\n{error_line}")
    check(got_classes, got_probabilities, error_line, expected_probabilities, expected_classes)
    print(f"the C program agrees with gc.function on all {N_ROWS} rows")


if __name__ == "__main__":
    main()
