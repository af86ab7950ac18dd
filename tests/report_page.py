"""Reading a ``gc.report`` page back in tests: its tags nest, and the data its script draws."""

from __future__ import annotations

import html.parser
import json
from typing import Any, ClassVar


class _TagChecker(html.parser.HTMLParser):
    """Fails on mismatched tags (void elements and self-closing SVG tags aside)."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> str:
    """Assert the page's tags nest; return its text content (entities decoded)."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    return "".join(checker.text)


def report_data_of(text: str) -> dict[str, Any]:
    """The data the page's script draws, read back from the page."""
    start = text.index('<script type="application/json" id="graphc-data">')
    body = text[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)
