# -*- test-case-name: tests.test_cli_services -*-
"""
How C{novasvc-manage} prints: tables in a box, as C{nova service-list}
prints them, and client-chosen text escaped so that it cannot move the
cursor or reorder the line.
"""

import unicodedata
from typing import List, Optional, Sequence

__all__ = ["escape", "format_table", "width"]

# Categories shown as escapes: controls, format characters (bidirectional
# overrides, zero-width), surrogates, private use, unassigned, line and
# paragraph separators.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def escape(text: str) -> str:
    """
    @param text: text a client chose (a host, a reason...).
    @return: C{text} whole, with each character that could move the cursor,
        change the terminal's state or reorder the line written as a Python
        escape (C{\\x1b}, C{\\u202e}).
    """
    if text.isprintable():
        return text
    parts = []
    for char in text:
        if unicodedata.category(char) in _ESCAPED:
            code = ord(char)
            parts.append(f"\\x{code:02x}" if code < 0x100 else
                         f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            parts.append(char)
    return "".join(parts)


def width(text: str) -> int:
    """
    @return: the columns C{text} takes on a terminal: East Asian wide
        characters take two, combining marks none.
    """
    columns = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        columns += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return columns


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Optional[str]]]) -> str:
    """
    A table in a box, as C{nova service-list} prints it: C{None} shows as
    C{-}; text is never cut, and is escaped (L{escape}).

    @param headers: the column titles.
    @param rows: the cells, one sequence per row, as many as C{headers}.
    @return: the lines, each ending with a newline.
    """
    cells: List[List[str]] = [list(headers)] + [
        ["-" if cell is None else escape(cell) for cell in row] for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(headers))]
    rule = "+" + "+".join("-" * (columns + 2) for columns in widths) + "+\n"

    def line(row: List[str]) -> str:
        return "|" + "|".join(f" {cell}{' ' * (columns - width(cell))} "
                              for cell, columns in zip(row, widths)) + "|\n"

    return rule + line(cells[0]) + rule + "".join(line(row) for row in cells[1:]) + rule
