"""Running benchmark sections: the command line every script shares, the header, the summary table.

A section is ``(title, fn)`` where ``fn(Config) -> list[Row]`` prints its own comparison lines and returns the
rows for the summary.  A section that raises (a graphc result that differs from NumPy's, a crash) is reported
as FAILED and makes the exit status 1; targets that are not met do not (the numbers are information).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence

from _timing import Config, Row, blas_threads, default_threads, library_versions

Section = tuple[str, Callable[[Config], list[Row]]]


def make_parser(sections: Sequence[str], description: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes: ``--quick``, ``--only a,b``, ``--threads N``, ``--repeat N``,
    ``--markdown``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small sizes, few repeats, no target judged (what the tests use)")
    parser.add_argument("--only", default="", help=f"comma-separated sections to run, of: {','.join(sections)}")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for graphc, NumPy's BLAS and the other libraries (default: every core, "
                             f"{default_threads()} here)")
    parser.add_argument("--repeat", type=int, default=0, help="timed runs per measurement (default 15, quick 3)")
    parser.add_argument("--markdown", action="store_true", help="also print the summary as a Markdown table")
    return parser


def parse_args(parser: argparse.ArgumentParser, sections: Sequence[str], argv: Sequence[str] | None = None
               ) -> tuple[Config, list[str], argparse.Namespace]:
    """Parse and check the command line: (config, the chosen sections in order, all the options)."""
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sorted(wanted - set(sections))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections)}")
    chosen = [s for s in sections if s in wanted] if wanted else list(sections)
    return Config(quick=args.quick, threads=args.threads, repeat=args.repeat), chosen, args


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_header(cfg: Config) -> None:
    """Date, graphc's location and commit, machine and load, threads, library versions."""
    from _probe import graphc_location

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"graphc benchmarks, {now}{', QUICK (smoke sizes)' if cfg.quick else ''}")
    print(f"graphc: {graphc_location()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"machine: {cpu_name()}, {default_threads()} cores available, load average {load}; "
          f"Python {platform.python_version()}")
    print(f"threads: {cfg.threads} (graphc threads=, BLAS, numexpr, torch); NumPy BLAS: {blas_threads()}")
    print(f"libraries: {library_versions()}")
    print("ratios: the other's best time / graphc's best time (above 1: graphc is faster); [median ratio]")
    print(flush=True)


def summary(rows: list[Row], failed: dict[str, str], quick: bool, markdown: bool) -> str:
    """The summary table: every row, its target and whether it is met; failed sections at the end."""
    width = max([len(f"({r.section}) {r.what}") for r in rows] + [30])
    lines = ["", "SUMMARY" + (" (quick run: sizes are not the targets' sizes, nothing judged)" if quick else ""),
             f"{'comparison':<{width}}  {'measured':>10}  {'target':>10}  status"]
    md = ["| comparison | measured | target | status |", "| --- | ---: | ---: | --- |"]
    for r in rows:
        if math.isnan(r.value):
            status = "not measured"
        else:
            status = "-" if r.target is None else ("met" if r.target.met(r.value) else "NOT MET")
        target = str(r.target) if r.target else ""
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"{f'({r.section}) {r.what}':<{width}}  {r.formatted():>10}  {target:>10}  {status}{note}")
        md.append(f"| ({r.section}) {r.what}{f' ({r.note})' if r.note else ''} | {r.formatted()} | {target} | "
                  f"{status} |")
    for section, error in failed.items():
        lines.append(f"({section}) FAILED: {error}")
        md.append(f"| ({section}) FAILED: {error} | | | |")
    judged = [r for r in rows if r.target is not None and not math.isnan(r.value)]
    lines.append(f"targets met: {sum(r.target.met(r.value) for r in judged)} of {len(judged)}"  # type: ignore[union-attr]
                 + (f"; {len(failed)} section(s) FAILED" if failed else ""))
    if markdown:
        lines += ["", *md]
    return "\n".join(lines)


def run_section(key: str, section: Section, cfg: Config) -> tuple[list[Row], str | None]:
    """Run one section, printing its title and how long it took: (its rows, None) or ([], the error)."""
    title, fn = section
    print(f"== ({key}) {title} ==", flush=True)
    start = time.perf_counter()
    rows: list[Row] = []
    error = None
    try:
        rows = fn(cfg)
    except Exception as exc:
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(f"({key}) FAILED: {error}", flush=True)
    print(f"   ({key} took {time.perf_counter() - start:.1f} s)", flush=True)
    return rows, error


def run_sections(sections: dict[str, Section], chosen: Sequence[str], cfg: Config, markdown: bool = False) -> int:
    """Run the chosen sections in order in this process, print the summary; 1 if any section failed, else 0."""
    rows: list[Row] = []
    failed: dict[str, str] = {}
    for key in chosen:
        section_rows, error = run_section(key, sections[key], cfg)
        rows += section_rows
        if error is not None:
            failed[key] = error
    print(summary(rows, failed, cfg.quick, markdown), flush=True)
    return 1 if failed else 0


def main_cli(sections: dict[str, Section], description: str | None, argv: Sequence[str] | None = None) -> int:
    """The command line of a single benchmark script: its sections, in this process."""
    cfg, chosen, args = parse_args(make_parser(list(sections), description or ""), list(sections), argv)
    print_header(cfg)
    return run_sections(sections, chosen, cfg, args.markdown)


__all__ = ["Section", "main_cli", "make_parser", "parse_args", "print_header", "run_section", "run_sections", "summary"]
