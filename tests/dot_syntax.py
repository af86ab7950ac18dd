"""A strict parser for the DOT language subset graphc writes, for tests that must not need Graphviz.

It follows the grammar at https://graphviz.org/doc/info/lang.html (graph, subgraph, node, edge and
attribute statements; quoted and bare IDs) and is stricter than Graphviz where graphc promises more:
quoted strings hold no raw line breaks or control characters, every backslash starts one of the
escapes graphc writes (``\\\\``, ``\\"``, ``\\n``), and every edge joins declared nodes.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

KEYWORDS = {"strict", "graph", "digraph", "node", "edge", "subgraph"}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<arrow>->|--)
  | (?P<punct>[{}\[\]=;,])
  | (?P<bare>[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*|-?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?))
""", re.X | re.S)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class DotSyntaxError(AssertionError):
    pass


@dataclass
class Dot:
    name: str | None
    directed: bool
    graph_attrs: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    subgraphs: dict[str, list[str]] = field(default_factory=dict)  # name -> node ids declared inside
    subgraph_attrs: dict[str, dict[str, str]] = field(default_factory=dict)


def unescape(raw: str) -> str:
    """The text a quoted DOT label stands for: ``\\n`` is a line break, ``\\\\`` one backslash."""
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\":
            out.append(_ESCAPES[raw[i + 1]])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise DotSyntaxError(f"unexpected character {text[pos]!r} at offset {pos}: {text[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "space":
            continue
        value = m.group()
        if kind == "string":
            body = value[1:-1]
            if re.search(r"[\x00-\x1f\x7f]", body):
                raise DotSyntaxError(f"raw control character or line break in string {value!r}")
            k = 0
            while k < len(body):
                if body[k] == "\\" and body[k + 1] not in _ESCAPES:
                    raise DotSyntaxError(f"unknown escape \\{body[k + 1]} in string {value!r}")
                k += 2 if body[k] == "\\" else 1
            tokens.append(("id", body))
        elif kind == "bare":
            tokens.append(("kw", value.lower()) if value.lower() in KEYWORDS else ("id", value))
        else:
            tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise DotSyntaxError(f"expected {value or kind}, got {tok} at token {self.pos}")
        self.pos += 1
        return tok[1]

    def at(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == kind and (value is None or tok[1] == value)

    def parse(self) -> Dot:
        if self.at("kw", "strict"):
            self.take("kw")
        kind = self.take("kw")
        if kind not in ("graph", "digraph"):
            raise DotSyntaxError(f"expected graph or digraph, got {kind}")
        name = self.take("id") if self.at("id") else None
        dot = Dot(name, kind == "digraph")
        self.take("punct", "{")
        self.stmt_list(dot, None)
        self.take("punct", "}")
        if self.peek() is not None:
            raise DotSyntaxError(f"text after the closing brace: {self.peek()}")
        for src, dst, _ in dot.edges:
            for end in (src, dst):
                if end not in dot.nodes:
                    raise DotSyntaxError(f"edge {src} -> {dst} uses undeclared node {end!r}")
        return dot

    def stmt_list(self, dot: Dot, subgraph: str | None) -> None:
        while not self.at("punct", "}"):
            self.stmt(dot, subgraph)
            if self.at("punct", ";"):
                self.take("punct")

    def attr_list(self) -> dict[str, str]:
        attrs: dict[str, str] = {}
        while self.at("punct", "["):
            self.take("punct", "[")
            while not self.at("punct", "]"):
                key = self.take("id")
                self.take("punct", "=")
                attrs[key] = self.take("id")
                if self.at("punct", ",") or self.at("punct", ";"):
                    self.take("punct")
            self.take("punct", "]")
        return attrs

    def stmt(self, dot: Dot, subgraph: str | None) -> None:
        if self.at("kw", "graph") or self.at("kw", "node") or self.at("kw", "edge"):
            which = self.take("kw")
            attrs = self.attr_list()
            if which == "graph":
                (dot.subgraph_attrs.setdefault(subgraph, {}) if subgraph else dot.graph_attrs).update(attrs)
            return
        if self.at("kw", "subgraph"):
            self.take("kw")
            name = self.take("id") if self.at("id") else f"anonymous_{len(dot.subgraphs)}"
            if name in dot.subgraphs:
                raise DotSyntaxError(f"subgraph {name!r} defined twice")
            dot.subgraphs[name] = []
            self.take("punct", "{")
            self.stmt_list(dot, name)
            self.take("punct", "}")
            return
        first = self.take("id")
        if self.at("punct", "="):
            self.take("punct")
            value = self.take("id")
            (dot.subgraph_attrs.setdefault(subgraph, {}) if subgraph else dot.graph_attrs)[first] = value
            return
        chain = [first]
        while self.at("arrow"):
            arrow = self.take("arrow")
            if arrow != ("->" if dot.directed else "--"):
                raise DotSyntaxError(f"edge operator {arrow} in a {'digraph' if dot.directed else 'graph'}")
            chain.append(self.take("id"))
        attrs = self.attr_list()
        if len(chain) == 1:
            if first in dot.nodes:
                raise DotSyntaxError(f"node {first!r} declared twice")
            dot.nodes[first] = attrs
            if subgraph is not None:
                dot.subgraphs[subgraph].append(first)
        else:
            dot.edges.extend((a, b, dict(attrs)) for a, b in itertools.pairwise(chain))


def parse_dot(text: str) -> Dot:
    """Parse ``text``; raise :class:`DotSyntaxError` (an AssertionError) when it is not valid DOT."""
    return _Parser(text).parse()
