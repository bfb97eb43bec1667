"""Go's text/tabwriter (as vendored by the docker CLI), for byte-identical table layout.

Cells are tab-*terminated*; text after the last tab of a line is not part of a column. A column
block is a run of consecutive lines that have a cell in that column; its width is the widest cell
plus padding (at least ``minwidth``). The docker CLI renders tables with
``NewWriter(out, 10, 1, 3, ' ', 0)``; `docker version` and `docker info` use other settings.
Pure: text in, text out.
"""

from __future__ import annotations

import unicodedata


def display_width(text: str) -> int:
    """Terminal cell width (go-runewidth): wide East Asian runes count 2, combining marks 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3,
             padchar: str = " ") -> str:
    """Align the tab-terminated cells of ``text`` the way Go's tabwriter.Writer + Flush does."""
    pieces = text.split("\n")
    lines = [p.split("\t") for p in pieces[:-1]]
    tail = pieces[-1]
    if tail:
        cells = tail.split("\t")
        if cells[-1] == "":  # an unterminated empty last cell is not a cell (Flush)
            cells.pop()
        lines.append(cells)
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            parts = []
            for j, cell in enumerate(lines[i]):
                parts.append(cell)
                if j < len(widths):
                    parts.append(_padding(display_width(cell), widths[j], tabwidth, padchar))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if out and not tail else result


def _padding(textw: int, cellw: int, tabwidth: int, padchar: str) -> str:
    if padchar != "\t":
        return padchar * (cellw - textw)
    if tabwidth == 0:
        return ""
    cellw = -(-cellw // tabwidth) * tabwidth
    return "\t" * -(-(cellw - textw) // tabwidth)
