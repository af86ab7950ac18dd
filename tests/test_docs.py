"""Every ```python block in README.md and docs/*.md runs (blocks of one page share a namespace, in order).

A block whose first line is ``# doctest: skip`` is not run (for fragments that are not complete programs).
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page: pathlib.Path, tmp_path: pathlib.Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)  # blocks that write files write them here
    try:
        for number, block in enumerate(BLOCK.findall(page.read_text()), 1):
            if block.startswith("# doctest: skip"):
                continue
            code = compile(block, f"{page.name} block {number}", "exec")
            exec(code, namespace)
    finally:
        os.chdir(cwd)


def test_ops_page_names_every_registered_op() -> None:
    from graphc.ir.registry import REGISTRY

    text = (ROOT / "docs" / "ops.md").read_text()
    missing = [name for name in REGISTRY if f" {name} " not in text.replace("`", " ")]
    assert not missing, f"docs/ops.md does not mention: {missing}"
