"""Aligned text tables for people: columns padded to their widest cell, two spaces apart.

No dependencies; wide (CJK) characters count as two columns so that tables stay aligned in a
terminal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

GAP = "  "
MISSING = "-"


def width(text: str) -> int:
    """Columns `text` takes in a terminal."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cell(value: object) -> str:
    if value is None or value == "":
        return MISSING
    return str(value)


def _pad(text: str, size: int, right: bool) -> str:
    fill = " " * max(0, size - width(text))
    return fill + text if right else text + fill


def render(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()
) -> str:
    """The table as text, one line per row, each ending in a newline. Columns listed in
    `right` (by index) are right-aligned: numbers read best that way."""
    body = [[cell(v) for v in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, not {len(headers)}")
    sizes = [max([width(h), *(width(r[i]) for r in body)]) for i, h in enumerate(headers)]
    align_right = set(right)
    lines = []
    for row in [list(headers), *body]:
        padded = [_pad(c, sizes[i], i in align_right) for i, c in enumerate(row)]
        lines.append(GAP.join(padded).rstrip())
    return "".join(line + "\n" for line in lines)


def render_pairs(pairs: Iterable[tuple[str, object]]) -> str:
    """`key  value` lines with the values aligned; a value with newlines continues under
    itself."""
    items = [(k, cell(v)) for k, v in pairs]
    size = max((width(k) for k, _ in items), default=0)
    out = []
    for key, value in items:
        first, *rest = value.split("\n")
        out.append(f"{_pad(key, size, False)}{GAP}{first}".rstrip())
        out += [f"{' ' * size}{GAP}{line}".rstrip() for line in rest]
    return "".join(line + "\n" for line in out)
