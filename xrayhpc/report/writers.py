"""The report's sections written out: Markdown, one self-contained HTML file, and the terminal."""

from __future__ import annotations

import base64
import html
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from xrayhpc.render import html_table, markdown, terminal
from xrayhpc.report.tables import FileOnly
from xrayhpc.safefiles import is_regular, read_bytes


@dataclass
class Section:
    title: str
    text: str = ""
    table: tuple[list[str], list[list[str]]] | None = None
    images: list[tuple[Path, str]] | None = None


def to_markdown(sections: list[Section], skipped: list[str], root: Path) -> str:
    out = ["# xrayhpc report", ""]
    out += [f"> {line}" for line in skipped] + ([""] if skipped else [])
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text, ""]
        if s.table:
            out += [markdown(*s.table), ""]
        for path, caption in s.images or []:
            out += [f"![{caption}]({path.relative_to(root)})", ""]
    return "\n".join(out)


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}"
    ".gallery{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:420px}.warn{color:#a60}"
    ".fail{color:#b00}pre{background:#f6f6f6;padding:4px 8px;font-size:12px;white-space:pre-wrap}"
)


def to_html(sections: list[Section], skipped: list[str], linked_from: Path | None = None) -> str:
    """One file, images inlined: it opens from anywhere, mailed or copied off the cluster. With
    `linked_from` (the page's folder) images are linked instead, as a page rewritten every few
    seconds wants."""
    body = ["<h1>xrayhpc report</h1>", *sections_html(sections, skipped, linked_from)]
    return html_page("xrayhpc report", body)


def html_page(title: str, body: list[str], reload_s: float | None = None) -> str:
    """A whole page; with `reload_s` the browser loads it again that often (no server needed)."""
    reload = f"<meta http-equiv='refresh' content='{max(1, round(reload_s))}'>" if reload_s else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{reload}<title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def sections_html(sections: list[Section], skipped: list[str], linked_from: Path | None = None) -> list[str]:
    body = [f'<p class="warn">{html.escape(line)}</p>' for line in skipped]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            body.append(html_table(*s.table))
        if s.images:
            body.append(f'<div class="gallery">{"".join(_figure(p, c, linked_from) for p, c in s.images)}</div>')
    return body


def _figure(path: Path, caption: str, linked_from: Path | None = None) -> str:
    """One image inlined (or linked), or in its place why not (swapped for a link or grown past any
    image of ours since the gallery was drawn up): one file never stops the report."""
    if linked_from is not None and path.is_relative_to(linked_from):
        if not is_regular(path):
            return f'<figure><p class="warn">{html.escape(f"{caption}: left out: not a regular file")}</p></figure>'
        src = urllib.parse.quote(path.relative_to(linked_from).as_posix())
        return _img(src, caption)
    try:
        src = f"data:image/png;base64,{base64.b64encode(read_bytes(path)).decode()}"
    except OSError as err:
        return f'<figure><p class="warn">{html.escape(f"{caption}: left out: {err}")}</p></figure>'
    return _img(src, caption)


def _img(src: str, caption: str) -> str:
    alt = html.escape(caption)
    return f'<figure><img alt="{alt}" src="{html.escape(src)}"><figcaption>{alt}</figcaption></figure>'


def print_tables(sections: list[Section], skipped: list[str], warning: str, console: Console) -> None:
    for line in ([warning] if warning else []) + skipped:
        console.print(Text(f"warning: {line}", style="yellow"))
    for s in sections:
        if not s.table:
            continue
        header, body = s.table
        keep = [i for i, h in enumerate(header) if not isinstance(h, FileOnly)]
        if not keep:  # the dataset audit
            continue
        console.print(terminal([header[i] for i in keep], [[row[i] for i in keep] for row in body], s.title))
