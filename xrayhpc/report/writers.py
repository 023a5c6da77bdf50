"""The report's sections written out: Markdown, one self-contained HTML file, and the terminal."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from xrayhpc.render import html_table, markdown, terminal
from xrayhpc.report.tables import FileOnly
from xrayhpc.safefiles import read_bytes


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


def to_html(sections: list[Section], skipped: list[str]) -> str:
    """One file, images inlined: it opens from anywhere, mailed or copied off the cluster."""
    body = ["<h1>xrayhpc report</h1>"]
    body += [f'<p class="warn">{html.escape(line)}</p>' for line in skipped]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            body.append(html_table(*s.table))
        if s.images:
            body.append(f'<div class="gallery">{"".join(_figure(p, c) for p, c in s.images)}</div>')
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}"
        ".gallery{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:420px}.warn{color:#a60}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>xrayhpc report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def _figure(path: Path, caption: str) -> str:
    """One image inlined, or in its place why not (swapped for a link or grown past any image of ours
    since the gallery was drawn up): one file never stops the report."""
    try:
        src = f"data:image/png;base64,{base64.b64encode(read_bytes(path)).decode()}"
    except OSError as err:
        return f'<figure><p class="warn">{html.escape(f"{caption}: left out: {err}")}</p></figure>'
    return f'<figure><img alt="{html.escape(caption)}" src="{src}"><figcaption>{html.escape(caption)}</figcaption></figure>'


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
