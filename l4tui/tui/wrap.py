"""Wrapping plain-text output to a pane's width with a hanging indent.

The console's answers are plain text made for any terminal: tables whose
columns are separated by two or more spaces, and `usage  help` lines. Cut at
the pane's edge they lose their ends; wrapped naively, a continuation starts
at column 0 and reads as a new row. Here a long line breaks at a space and
goes on under the column it was in — the start of its last table column, or
the text's own indent plus two — so a wrapped row still reads as one row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_GAP = re.compile(r"\S( {2,})(?=\S)")
MIN_TAIL = 16  # a hanging column narrower than this wastes the line: indent less


def hanging_indent(line: str, width: int) -> int:
    """Where a continuation of `line` starts: its last column before `width`, or its indent."""
    lead = len(line) - len(line.lstrip(" "))
    column = lead + 2
    for m in _GAP.finditer(line):
        start = m.end(1)
        if start >= width:
            break
        column = start
    if width - column < MIN_TAIL:
        column = min(lead + 2, max(0, width - MIN_TAIL))
    return column


def wrap_line(line: str, width: int) -> list[str]:
    """`line` as rows of at most `width` characters, continuations under its last column.

    Words longer than a row are cut into pieces (never lost); a width under 8
    is treated as 8.
    """
    width = max(8, width)
    line = line.rstrip()
    if len(line) <= width:
        return [line]
    if not line.strip(" -=─"):  # a table's rule: it only has to span what shows
        return [line[:width].rstrip()]
    indent = hanging_indent(line, width)
    rows: list[str] = []
    rest = line
    first = True
    while rest:
        room = width if first else width - indent
        prefix = "" if first else " " * indent
        if len(rest) <= room:
            rows.append(prefix + rest)
            break
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= 0 or (first and cut <= indent):
            cut = room  # one long word: break it
            head, rest = rest[:cut], rest[cut:]
        else:
            head, rest = rest[:cut], rest[cut:].lstrip(" ")
        rows.append(prefix + head.rstrip())
        first = False
    return rows


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters: whole, or its start and `…`."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def hang(head: str, words: list[str], width: int, indent: int | None = None) -> list[str]:
    """`head` followed by `words` separated by spaces, wrapped to `width` with continuation
    rows indented to `indent` (default: under the first word). A word longer than a row is
    cut with `…`: the only way a value is shortened."""
    indent = len(head) if indent is None else indent
    if width - indent < 8:
        indent = min(indent, 2)
    rows: list[str] = []
    row = head
    fresh = True  # nothing after the head on this row yet
    for word in words:
        sep = "" if fresh else " "
        if len(row) + len(sep) + len(word) <= width or (fresh and not rows and not head):
            row += sep + word
            fresh = False
            continue
        if not fresh:
            rows.append(row)
            row = " " * indent
        row += cut(word, width - len(row))
        fresh = False
    rows.append(row)
    return [r.rstrip() for r in rows]


def fit_table(
    headers: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    width: int,
    right: tuple[bool, ...],
) -> list[str] | None:
    """Aligned columns (one space apart) if every value fits whole in `width`; None if not,
    so the caller can lay the rows out another way rather than cut a number."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if sum(widths) + len(widths) - 1 > width:
        return None

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return " ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def pairs(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], width: int) -> list[str]:
    """Each row as `first  header value  header value …` wrapped with a hanging indent:
    the narrow form of a table that does not fit."""
    out: list[str] = []
    for r in rows:
        head = r[0] + " "
        words = [f"{h} {v}" for h, v in zip(headers[1:], r[1:], strict=True)]
        out.extend(hang(head, words, width, indent=len(head)))
    return out
