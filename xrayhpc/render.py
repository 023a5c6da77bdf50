"""Tables as text, drawn one way everywhere: Markdown, HTML, aligned columns for logs and pipes, and
rich tables for a terminal. Cells are text; a table is (header, rows)."""

from __future__ import annotations

import html
from collections.abc import Callable

from rich.table import Table
from rich.text import Text


def one_line(text: str, limit: int = 600) -> str:
    """`text` as one printable line: a message or a name read from a file (which anyone sharing the
    folder may have written) never moves the cursor, sets a terminal title or runs past its line."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def markdown(header: list[str], body: list[list[str]], align: str = "") -> str:
    """A Markdown table; `align` has one letter per column, `r` for right-aligned (default: left)."""

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(f"{r}|" for r in rule)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


class Markup(str):
    """An HTML table cell that is markup of ours (a drawing), placed as it is; every other cell is text."""


def html_table(header: list[str], body: list[list[str]]) -> str:
    def cell(c: str) -> str:
        return c if isinstance(c, Markup) else html.escape(c)

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def aligned(header: list[str], body: list[list[str]], notes: list[str] | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart; an empty cell shows "-". A row's note
    follows it whole, so nothing is cut to fit a width (logs and pipes)."""
    cells = [[c or "-" for c in row] for row in body]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    lines = []
    for row, note in zip([header, *cells], ["", *(notes or [""] * len(cells))], strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        lines.append(f"{line}  {note}" if note else line)
    return "\n".join(lines)


def terminal(
    header: list[str], body: list[list[str]], title: str | None = None, style: Callable[[int, str], str] | None = None
) -> Table:
    """A rich table of plain Text cells (a log path in brackets is not markup); `style(column, cell)`
    colours a cell."""
    table = Table(title=title, show_edge=False, title_justify="left")
    for h in header:
        table.add_column(h, overflow="fold")
    for row in body:
        table.add_row(*(Text(c, style=style(i, c) if style else "") for i, c in enumerate(row)))
    return table
