"""Small HTML building blocks. Every piece of run data passes through :func:`esc`."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any


class Markup(str):
    """Text that is already HTML (built here from escaped parts); not escaped again."""

    __slots__ = ()


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A compact human-readable number (``–`` for missing)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def truncate(text: Any, limit: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def table(
    headers: Sequence[Any], rows: Iterable[Sequence[Any]], *, css_class: str = "data"
) -> Markup:
    """An HTML table; every header and cell is escaped (numbers formatted)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text = cell if isinstance(cell, Markup | str) else fmt(cell)
            cells.append(f"<td>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    # Wide tables scroll sideways inside their box instead of widening the page.
    return Markup(
        f'<div class="scroll"><table class="{esc(css_class)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def image(png_base64: str, alt: str) -> Markup:
    """An ``<img>`` with an embedded PNG (``data:`` URL)."""
    return Markup(f'<img src="data:image/png;base64,{png_base64}" alt="{esc(alt)}">')


def paragraph(text: str, css_class: str = "note") -> Markup:
    return Markup(f'<p class="{esc(css_class)}">{esc(text)}</p>')


def section(section_id: str, title: str, *parts: Markup) -> Markup:
    return Markup(
        f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>\n'
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd;
     padding-bottom: .2rem; margin-top: 2rem; }
table.data { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
table.data th, table.data td { border: 1px solid #ddd; padding: .25rem .5rem;
     text-align: left; vertical-align: top; }
table.data th { background: #f4f4f4; }
table.calls td { font-family: ui-monospace, monospace; white-space: pre-wrap;
     overflow-wrap: anywhere; max-width: 28rem; }
table.calls td:nth-child(-n+4) { overflow-wrap: normal; }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
div.scroll { overflow-x: auto; max-width: 100%; }
table.nowrap td, table.nowrap th { white-space: nowrap; }
p.note { color: #555; font-size: .9rem; }
p.warn { background: #fff4e0; border-left: 4px solid #e69f00; padding: .4rem .6rem; }
nav a { margin-right: .8rem; }
details { margin: .3rem 0; }
details > summary { cursor: pointer; font-size: .9rem; }
details.call > summary { font-family: ui-monospace, monospace; font-size: .8rem; }
details.call div.msg { margin: .3rem 0 .3rem 1rem; }
details.call pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7;
     padding: .4rem; font-size: .78rem; max-height: 24rem; overflow-y: auto; margin: .2rem 0; }
div.charts { display: flex; flex-wrap: wrap; gap: .5rem 1.2rem; }
figure.chart { margin: .4rem 0; }
svg.chart { max-width: 100%; height: auto; font-size: 11px; }
svg.chart rect.plot { fill: #fff; stroke: #bbb; }
svg.chart line.grid { stroke: #eee; }
svg.chart line.zero { stroke: #888; }
svg.chart text.tick { fill: #555; font-size: 10px; }
svg.chart text.label { fill: #333; }
svg.chart text.title { fill: #222; font-weight: 600; }
svg.chart circle.pt:hover, svg.chart rect.bar:hover { stroke: #000; stroke-width: 1.5; }
div.legend { font-size: .8rem; display: flex; flex-wrap: wrap; gap: .1rem .9rem;
     max-width: 560px; }
div.legend span { white-space: nowrap; }
div.legend svg { vertical-align: middle; margin-right: .25rem; }
"""


#: In the ``<head>`` of every report: how ``llmecon report`` recognises its own files.
GENERATOR_META = '<meta name="generator" content="llmecon report">'


def page(title: str, nav: Sequence[tuple[str, str]], body: Sequence[Markup]) -> str:
    """A complete, self-contained HTML document."""

    links = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in nav)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{GENERATOR_META}'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{esc(title)}</h1><nav>{links}</nav>\n" + "".join(body) + "</body></html>\n"
    )
