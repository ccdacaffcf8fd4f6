"""One self-contained ``report.html`` beside ``report.md``: the same tables and text, figures embedded.

The markdown aetbench writes uses a small subset (``#`` headings, paragraphs, ``-`` lists, pipe tables,
``![alt](file.png)`` images, ``**bold**`` and backtick code); this module renders exactly that subset, so
the HTML needs no other package and no file beside it (PNGs are inlined as base64 data URIs).

>>> page = markdown_to_html("# T\\n\\n| a | b |\\n| --- | --- |\\n| 1 | 2 |\\n", Path("."))
>>> print(page.split("<body>")[1].split("</body>")[0].strip())
<h1>T</h1>
<table><thead><tr><th>a</th><th>b</th></tr></thead>
<tbody><tr><td>1</td><td>2</td></tr></tbody></table>
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..io.files import atomic_write_text

__all__ = ["markdown_to_html", "write_html"]

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px;"
          "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
          "img{max-width:100%;margin:0.5em 0}code{background:#f3f3f3;padding:0 3px}")


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', t)


def _image(alt: str, src: str, folder: Path) -> str:
    p = folder / src
    if p.suffix.lower() == ".png" and p.is_file():
        src = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="{src}">'


def markdown_to_html(text: str, folder: Path, title: str = "aetbench report") -> str:
    """Render aetbench's markdown subset as a complete HTML page; images under ``folder`` are inlined."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,6}) (.*)$", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in rows[0]) + "</tr></thead>"
                       "\n<tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                                           for r in body) + "</tbody></table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        elif m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line.strip()):
            imgs = []
            while i < len(lines) and (m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", lines[i].strip())):
                imgs.append(_image(m.group(1), m.group(2), folder))
                i += 1
            out.append("<div>" + "\n".join(imgs) + "</div>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i]):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>" + "\n".join(out) + "\n</body></html>\n")


def write_html(md_path, title: str = "aetbench report") -> Path:
    """Write ``report.html`` beside the markdown file ``md_path``; returns its path."""
    md_path = Path(md_path)
    out = md_path.with_suffix(".html")
    atomic_write_text(out, markdown_to_html(md_path.read_text(), md_path.parent, title))
    return out
