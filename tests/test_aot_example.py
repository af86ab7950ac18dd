"""Ahead-of-time compiled graphs called from C: examples/aot/classify.c, valgrind, and concurrent calls.

The C programs are built with the system's C compiler (the tests skip without one) against small
models (20 -> 16 -> 5, and 32 -> 1024 -> 5 where the thread pool should have work), and their results
are checked against ``gc.function`` on the same inputs.  examples/aot/train_and_compile.py itself
(the 784 -> 500 -> 10 model) runs in tests/test_examples.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "aot"))
import train_and_compile as example

CC = example.c_compiler()
VALGRIND = shutil.which("valgrind")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc, clang or $CC)")
needs_valgrind = pytest.mark.skipif(CC is None or VALGRIND is None, reason="needs a C compiler and valgrind")
N_IN, N_HIDDEN, N_CLASSES = 20, 16, 5


def make_model(rng: np.random.Generator, n_in: int, n_hidden: int, n_classes: int,
               ) -> tuple[gc.Tensor, gc.Tensor, gc.Tensor]:
    """The example's inference graph with random weights, big enough that the probabilities spread out."""
    params = [gc.Variable(rng.standard_normal((n_in, n_hidden)).astype(np.float32) * 0.5),
              gc.Variable(rng.standard_normal(n_hidden).astype(np.float32) * 0.1),
              gc.Variable(rng.standard_normal((n_hidden, n_classes)).astype(np.float32)),
              gc.Variable(rng.standard_normal(n_classes).astype(np.float32) * 0.1)]
    return example.inference_graph(params, n_in)


@pytest.fixture(scope="module")
def classify(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gc.Function]:
    """classify.c built against a small classifier compiled as the example does it (a graph file and
    ``graphc aot``); returns the executable and gc.function of the same graph."""
    assert CC is not None
    build = tmp_path_factory.mktemp("classify")
    x, probabilities, classes = make_model(np.random.default_rng(7), N_IN, N_HIDDEN, N_CLASSES)
    gc.save_graph(build / "classifier.gcg", [probabilities, classes], [x])
    example.graphc_aot(build / "classifier.gcg", build / "classifier")
    executable = example.build_classify(CC, build, ["-Werror"])
    return executable, gc.function([x], [probabilities, classes])


def _inputs(path: Path, rows: int, n_in: int = N_IN, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, n_in)).astype(np.float32)
    x.tofile(path)
    return x


@needs_cc
@pytest.mark.parametrize("rows", [1, 7, 130])
def test_classify_agrees_with_gc_function(classify: tuple[Path, gc.Function], tmp_path: Path, rows: int) -> None:
    executable, reference = classify
    x = _inputs(tmp_path / "x.f32", rows, seed=rows)
    classes, probabilities, error_line = example.run_classify(executable, tmp_path / "x.f32")
    expected_probabilities, expected_classes = reference(x)
    assert len(set(expected_classes.tolist())) > 1 or rows == 1  # the weights do discriminate
    example.check(classes, probabilities, error_line, expected_probabilities, expected_classes)
    assert error_line == "a batch of -1 rows: error 2: a run-time dimension in dims is negative"


@needs_cc
@pytest.mark.parametrize("level", ["1", "3", "4"])
def test_classify_agrees_at_every_cpu_level(classify: tuple[Path, gc.Function], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    """On x86-64 the library carries a version per psABI level; $GRAPHC_CPU_LEVEL caps the one it runs
    (elsewhere, and above what this CPU has, the variable changes nothing)."""
    executable, reference = classify
    monkeypatch.setenv("GRAPHC_CPU_LEVEL", level)
    x = _inputs(tmp_path / "x.f32", 45, seed=3)
    example.check(*example.run_classify(executable, tmp_path / "x.f32"), *reference(x))


@needs_cc
@pytest.mark.parametrize("size", [0, 3, 4 * N_IN + 4])
def test_classify_refuses_a_file_that_is_not_whole_rows(classify: tuple[Path, gc.Function], tmp_path: Path,
                                                        size: int) -> None:
    (tmp_path / "bad.f32").write_bytes(b"\0" * size)
    result = subprocess.run([str(classify[0]), str(tmp_path / "bad.f32")], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{size} bytes is not a whole, non-zero number of rows of {4 * N_IN} bytes" in result.stderr
    assert result.stdout == ""


@needs_valgrind
def test_classify_is_clean_under_valgrind_memcheck(classify: tuple[Path, gc.Function], tmp_path: Path) -> None:
    executable, reference = classify
    x = _inputs(tmp_path / "x.f32", 9)
    log = tmp_path / "valgrind.log"
    memcheck = [str(VALGRIND), "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                f"--log-file={log}"]
    classes, probabilities, error_line = example.run_classify(executable, tmp_path / "x.f32", memcheck)
    example.check(classes, probabilities, error_line, *reference(x))
    report = log.read_text()
    assert "ERROR SUMMARY: 0 errors" in report, report


THREADS_C = r"""
/* Several threads call model_run at once, each with its own batch size, and check every result. */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct {
    int64_t batch;
    model_input_0_t *x;
    model_output_0_t *expected_probabilities;
    model_output_1_t *expected_classes;
    long mismatches;
    int error;
} Job;

static pthread_barrier_t start;
static int calls;

static void *read_exactly(const char *dir, const char *stem, int index, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%d", dir, stem, index);
    FILE *file = fopen(path, "rb");
    void *data = malloc(bytes ? bytes : 1);
    if (file == NULL || data == NULL || fread(data, 1, bytes, file) != bytes || fgetc(file) != EOF) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, path);
        exit(2);
    }
    fclose(file);
    return data;
}

static void *work(void *arg) {
    Job *job = arg;
    const int64_t dims[MODEL_NUM_DIMS] = {job->batch};
    const size_t n_probabilities = (size_t)MODEL_OUTPUT_0_SIZE(dims), n_classes = (size_t)MODEL_OUTPUT_1_SIZE(dims);
    model_output_0_t *probabilities = malloc(n_probabilities * sizeof *probabilities + 1);
    model_output_1_t *classes = malloc(n_classes * sizeof *classes + 1);
    const void *inputs[MODEL_NUM_INPUTS] = {job->x};
    void *outputs[MODEL_NUM_OUTPUTS] = {probabilities, classes};
    pthread_barrier_wait(&start);
    for (int call = 0; call < calls && job->error == 0; call++) {
        memset(probabilities, 0xff, n_probabilities * sizeof *probabilities); /* NaNs: every value is written */
        memset(classes, 0xff, n_classes * sizeof *classes);
        job->error = model_run(dims, inputs, outputs);
        for (size_t i = 0; i < n_probabilities; i++) {
            double want = job->expected_probabilities[i];
            if (!(fabs(probabilities[i] - want) <= 1e-5 + 1e-5 * fabs(want)))
                job->mismatches++;
        }
        for (size_t i = 0; i < n_classes; i++)
            job->mismatches += classes[i] != job->expected_classes[i];
    }
    free(probabilities);
    free(classes);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIR CALLS BATCH...\n", argv[0]);
        return 2;
    }
    calls = atoi(argv[2]);
    const int n = argc - 3;
    if (getenv("WARM_UP") != NULL) { /* one call before the threads start (see the helgrind test) */
        const int64_t dims[MODEL_NUM_DIMS] = {0};
        model_input_0_t x;
        model_output_0_t probabilities;
        model_output_1_t classes;
        const void *inputs[MODEL_NUM_INPUTS] = {&x};
        void *outputs[MODEL_NUM_OUTPUTS] = {&probabilities, &classes};
        if (model_run(dims, inputs, outputs) != MODEL_OK)
            return 2;
    }
    Job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int t = 0; t < n; t++) {
        const int64_t dims[MODEL_NUM_DIMS] = {atoll(argv[3 + t])};
        jobs[t].batch = dims[0];
        jobs[t].x = read_exactly(argv[1], "x", t, (size_t)MODEL_INPUT_0_SIZE(dims) * sizeof(model_input_0_t));
        jobs[t].expected_probabilities = read_exactly(argv[1], "probabilities", t,
                                                      (size_t)MODEL_OUTPUT_0_SIZE(dims) * sizeof(model_output_0_t));
        jobs[t].expected_classes = read_exactly(argv[1], "classes", t,
                                                (size_t)MODEL_OUTPUT_1_SIZE(dims) * sizeof(model_output_1_t));
        if (pthread_create(&threads[t], NULL, work, &jobs[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    int failed = 0;
    for (int t = 0; t < n; t++) {
        pthread_join(threads[t], NULL);
        printf("thread %d: batch %lld, %d calls, %ld mismatches, error %d (%s)\n", t, (long long)jobs[t].batch, calls,
               jobs[t].mismatches, jobs[t].error, model_error_string(jobs[t].error));
        failed |= jobs[t].mismatches != 0 || jobs[t].error != MODEL_OK;
        free(jobs[t].x);
        free(jobs[t].expected_probabilities);
        free(jobs[t].expected_classes);
    }
    pthread_barrier_destroy(&start);
    free(jobs);
    free(threads);
    return failed;
}
"""
BATCHES = [0, 1, 3, 17, 64, 200, 333]  # one thread each, all calling at once


def _build_threads_program(tmp_path: Path, threads: int) -> tuple[Path, list[int]]:
    """A 32 -> 1024 -> 5 classifier compiled with ``threads`` (at 2, its GEMMs and loops are big enough
    to run on the library's own thread pool), the program above, and its data files."""
    assert CC is not None
    x, probabilities, classes = make_model(np.random.default_rng(11), 32, 1024, N_CLASSES)
    artifact = gc.aot.compile([x], [probabilities, classes], tmp_path / "model", threads=threads)
    assert artifact.signature.dims == ((f"{x.name}.shape[0]",),)  # names are unique per process: x, x_1, ...
    assert (b"pthread_create" in artifact.library.read_bytes()) == (threads > 1)  # the pool is there, or not
    reference = gc.function([x], [probabilities, classes])
    for t, batch in enumerate(BATCHES):
        xs = _inputs(tmp_path / f"x_{t}", batch, 32, seed=100 + t)
        expected_probabilities, expected_classes = reference(xs)
        expected_probabilities.astype(np.float32).tofile(tmp_path / f"probabilities_{t}")
        expected_classes.astype(np.int64).tofile(tmp_path / f"classes_{t}")
    (tmp_path / "threads.c").write_text(THREADS_C)
    executable = tmp_path / "threads"
    command = [*CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-pthread", "-I", str(tmp_path),
               str(tmp_path / "threads.c"), "-o", str(executable), "-L", str(tmp_path), "-l:model.so",
               "-Wl,-rpath,$ORIGIN", "-lm"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return executable, BATCHES


@needs_cc
@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_calls_with_different_batch_sizes(tmp_path: Path, threads: int) -> None:
    executable, batches = _build_threads_program(tmp_path, threads)
    calls = 30
    result = subprocess.run([str(executable), str(tmp_path), str(calls), *map(str, batches)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"thread {t}: batch {b}, {calls} calls, 0 mismatches, error 0 (success)"
                                          for t, b in enumerate(batches)]


@needs_valgrind
def test_concurrent_calls_are_race_free_under_helgrind(tmp_path: Path) -> None:
    """With threads=1 (the default) the library starts no threads of its own; helgrind sees the
    application's threads only, and no race between their calls.

    One call is made before the threads start: on x86-64 the first call ever asks cpuid which compiled
    version to run and caches the answer in a global with plain loads and stores (a race that is benign
    by design, and that helgrind would report); this test is about the calls after it."""
    executable, batches = _build_threads_program(tmp_path, 1)
    log = tmp_path / "helgrind.log"
    result = subprocess.run([str(VALGRIND), "--tool=helgrind", "--error-exitcode=99", f"--log-file={log}",
                             str(executable), str(tmp_path), "2", *map(str, batches[:5])],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "WARM_UP": "1"})
    assert result.returncode == 0, result.stdout + result.stderr + log.read_text()
    assert "ERROR SUMMARY: 0 errors" in log.read_text(), log.read_text()
