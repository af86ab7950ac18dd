"""A real browser for the tests: headless Chromium driven by Playwright, or a clean skip.

Chromium is the system's (Debian's ``chromium`` package, which ``.ci/run`` installs where it is missing) or
the one ``GRAPHC_CHROMIUM`` names; Playwright comes with the test extra and drives it, so no browser is
downloaded.  Pages are opened from files with the flags a closed network needs, and every console error
and uncaught exception on a page is collected so that a test can require there were none.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ARTIFACTS = pathlib.Path(__file__).parent.parent / "test-artifacts"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium to use: ``GRAPHC_CHROMIUM`` if set, else the first one on PATH."""
    named = os.environ.get("GRAPHC_CHROMIUM")
    if named:
        return named
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


@contextmanager
def launched() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), or ``pytest.skip`` saying what is missing."""
    import pytest  # here, so that benchmarks can use this module without pytest

    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; or set GRAPHC_CHROMIUM)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=path, args=FLAGS)
        except Error as exc:
            pytest.skip(f"Chromium at {path} does not start: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """One opened page and what went wrong on it: ``errors`` (console errors, uncaught exceptions)."""

    def __init__(self, browser: Any, path: pathlib.Path, width: int = 1400, height: int = 900) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(path.resolve().as_uri())

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def screenshot(self, name: str) -> pathlib.Path:
        """Keep a screenshot among the test artifacts (``test-artifacts/NAME.png``)."""
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(out))
        return out

    def close(self) -> None:
        self.page.close()
