"""Inline SVG charts for the report: hover values without JavaScript or a dependency.

Every data point carries a ``<title>`` (the browser shows it on hover), so the page
stays one self-contained offline file. Axes are in the domain's units: each axis has a
:class:`~llmecon._format.Quantity` (dollars, percent, welfare, hours, whole
years or counts) that writes its ticks and hover values as every table writes that
kind; the x axis can be logarithmic (incomes). Every piece of run data passes through
:func:`~llmecon.report._html.esc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmecon._format import COUNT, NUMBER, PERCENT, USD, Quantity
from llmecon.report._html import Markup, esc

Formatter = Quantity
#: Numbers of a series: a list or a numpy array.
Values = Sequence[float] | NDArray[Any]

#: A colour-blind-friendly categorical palette (Okabe–Ito, then Tableau), by index.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#F0E442",
    "#1F3A93",
)
REFERENCE_COLOUR = "#333333"
DASHES = {"solid": "", "dash": "6 4", "dot": "2 3", "dashdot": "7 3 2 3", "longdot": "1 6"}


def colour(i: int) -> str:
    """The ``i``-th categorical colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


# -- number formats: one Quantity per kind (llmecon._format) ---------------------------

usd = USD
pct = PERCENT
integer = COUNT
number = NUMBER


# -- ticks -------------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, n: int = 5, *, integer_only: bool = False) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (whole numbers if asked)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer_only:
        step = max(1.0, math.ceil(step))
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between ``lo`` and ``hi`` (both > 0)."""
    ticks = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**k
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


@dataclass
class Axis:
    """An axis: its label, tick format, scale and optional fixed bounds."""

    label: str
    fmt: Formatter = number
    log: bool = False
    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    zero: bool = False
    """Include 0 in the range (bars, rates)."""


@dataclass
class Series:
    """One line (optionally stepped, with a shaded band and hover tips per point)."""

    name: str
    x: Values
    y: Values
    colour: str
    dash: str = "solid"
    width: float = 2.0
    band: tuple[Values, Values] | None = None
    step: bool = False
    markers: bool = True
    tips: Sequence[str] | None = None


@dataclass
class HLine:
    """A horizontal reference line across the plot (drawn once, labelled)."""

    name: str
    y: float
    dash: str = "dash"
    colour: str = REFERENCE_COLOUR


@dataclass
class _Frame:
    width: int
    height: int
    left: int = 64
    right: int = 12
    top: int = 22
    bottom: int = 42
    x: Axis = field(default_factory=lambda: Axis(""))
    y: Axis = field(default_factory=lambda: Axis(""))
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)

    def px(self, v: float) -> float:
        lo, hi = self.x_range
        if self.x.log:
            v, lo, hi = math.log10(max(v, 1e-12)), math.log10(lo), math.log10(hi)
        span = hi - lo or 1.0
        return self.left + (v - lo) / span * (self.width - self.left - self.right)

    def py(self, v: float) -> float:
        lo, hi = self.y_range
        span = hi - lo or 1.0
        return self.height - self.bottom - (v - lo) / span * (self.height - self.top - self.bottom)


def _range(values: list[float], axis: Axis) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not axis.log)]
    if axis.zero and not axis.log:
        finite.append(0.0)
    lo = axis.lo if axis.lo is not None else (min(finite) if finite else 0.0)
    hi = axis.hi if axis.hi is not None else (max(finite) if finite else 1.0)
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):  # one value (up to float noise)
        if axis.zero and lo == 0:
            hi = 1.0  # all zero (a zero tax): one unit up, nothing below 0
        else:
            pad = abs(lo) * 0.05 or (0.5 if axis.integer else 1.0)
            lo, hi = lo - pad, hi + pad
    elif axis.lo is None and axis.hi is None and not axis.log:
        pad = 0.04 * (hi - lo)
        low = lo
        lo = lo - pad if not (axis.zero and lo == 0) else lo
        if axis.integer:  # whole units (tax years from 1): no tick below the first
            lo = max(lo, low - 0.5)
        hi = hi + pad
    return lo, hi


def _line(x1: float, x2: float, y1: float, y2: float, cls: str) -> str:
    return f'<line class="{cls}" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}"/>'


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle") -> str:
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{esc(text)}</text>'


def _ylabel(f: _Frame, text: str) -> str:
    mid = (f.top + f.height - f.bottom) / 2
    return (
        f'<text class="label" transform="translate(12 {mid:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(text)}</text>'
    )


def _x_ticks(f: _Frame, ticks: Sequence[float], fmt: Formatter, log: bool = False) -> list[str]:
    out = []
    for t, label in zip(ticks, fmt.ticks(ticks, log=log), strict=True):
        x = f.px(t)
        out.append(_line(x, x, f.top, f.height - f.bottom, "grid"))
        out.append(_text(x, f.height - f.bottom + 14, label, "tick"))
    return out


def _y_ticks(f: _Frame, ticks: Sequence[float], fmt: Formatter) -> list[str]:
    out = []
    for t, label in zip(ticks, fmt.ticks(ticks), strict=True):
        y = f.py(t)
        out.append(_line(f.left, f.width - f.right, y, y, "grid"))
        out.append(_text(f.left - 5, y + 3.5, label, "tick", "end"))
    return out


def _plot_area(f: _Frame, title: str) -> list[str]:
    out = [
        f'<rect class="plot" x="{f.left}" y="{f.top}" width="{f.width - f.left - f.right}" '
        f'height="{f.height - f.top - f.bottom}"/>'
    ]
    if title:
        out.append(_text(f.left, 14, title, "title", "start"))
    return out


#: Width of a tick label's character (10 px font) and room for the rotated axis label.
_TICK_CHAR_PX = 6.2
_YLABEL_PX = 22


def _label_margin(axis: Axis, value_range: tuple[float, float]) -> int:
    """The left margin that fits the y tick labels right of the rotated axis label
    (``1,250,000`` does not run into it)."""
    ticks = nice_ticks(*value_range, 5, integer_only=axis.integer)
    longest = max((len(t) for t in axis.fmt.ticks(ticks)), default=0)
    return math.ceil(_YLABEL_PX + 5 + _TICK_CHAR_PX * longest)


def _axes(f: _Frame, title: str) -> list[str]:
    out = _plot_area(f, title)
    xlo, xhi = f.x_range
    xt = log_ticks(xlo, xhi) if f.x.log else nice_ticks(xlo, xhi, 6, integer_only=f.x.integer)
    out += _x_ticks(f, xt, f.x.fmt, f.x.log)
    out += _y_ticks(f, nice_ticks(*f.y_range, 5, integer_only=f.y.integer), f.y.fmt)
    out.append(_text((f.left + f.width - f.right) / 2, f.height - 6, f.x.label, "label"))
    out.append(_ylabel(f, f.y.label))
    return out


def _legend(entries: Sequence[tuple[str, str, str]]) -> str:
    """An HTML legend under the chart: (name, colour, dash) swatches."""
    if not entries:
        return ""
    items = []
    for name, col, dash in entries:
        d = DASHES.get(dash, "")
        items.append(
            f'<span><svg width="26" height="10" aria-hidden="true"><line x1="1" x2="25" y1="5" '
            f'y2="5" stroke="{col}" stroke-width="2.5" stroke-dasharray="{d}"/></svg>'
            f"{esc(name)}</span>"
        )
    return f'<div class="legend">{"".join(items)}</div>'


def _svg(f: _Frame, parts: list[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {f.width} {f.height}" width="{f.width}" '
        f'height="{f.height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>{''.join(parts)}</svg>"
    )


def line_chart(
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    *,
    hlines: Sequence[HLine] = (),
    title: str = "",
    width: int = 560,
    height: int = 280,
    legend: bool = True,
) -> Markup:
    """Lines (or steps) with optional bands, markers with hover values and reference
    lines; the legend is HTML under the chart."""
    xs = [float(v) for s in series for v in s.x]
    ys = [float(v) for s in series for v in s.y]
    for s in series:
        if s.band is not None:
            ys += [float(v) for v in (*s.band[0], *s.band[1])]
    ys += [h.y for h in hlines]
    f = _Frame(width, height, x=x, y=y)
    f.x_range, f.y_range = _range(xs, x), _range(ys, y)
    f.left = max(f.left, _label_margin(y, f.y_range))
    parts = _axes(f, title)
    ylo, yhi = f.y_range
    for h in hlines:
        if not (math.isfinite(h.y) and ylo <= h.y <= yhi):
            continue
        yy = f.py(h.y)
        parts.append(
            f'<line x1="{f.left}" x2="{width - f.right}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{h.colour}" stroke-width="1.3" stroke-dasharray="{DASHES[h.dash]}">'
            f"<title>{esc(h.name)}: {esc(y.fmt(h.y))}</title></line>"
        )
    for s in series:
        parts.extend(_series(f, s))
    entries = [(s.name, s.colour, s.dash) for s in series if s.name]
    entries += [(h.name, h.colour, h.dash) for h in hlines if math.isfinite(h.y)]
    label = title or y.label
    return Markup(
        f'<figure class="chart">{_svg(f, parts, label)}'
        f"{_legend(entries) if legend else ''}</figure>"
    )


def _points(f: _Frame, s: Series) -> list[tuple[float, float, float, float]]:
    """(px, py, x, y) of the finite points (positive x on a log axis)."""
    pts = []
    for xv, yv in zip(s.x, s.y, strict=True):
        xv, yv = float(xv), float(yv)
        if math.isfinite(xv) and math.isfinite(yv) and (xv > 0 or not f.x.log):
            pts.append((f.px(xv), f.py(yv), xv, yv))
    return pts


def _series(f: _Frame, s: Series) -> list[str]:
    out: list[str] = []
    if s.band is not None:
        lo = [float(v) for v in s.band[0]]
        hi = [float(v) for v in s.band[1]]
        keep = [
            i
            for i in range(len(s.x))
            if math.isfinite(lo[i]) and math.isfinite(hi[i]) and math.isfinite(float(s.x[i]))
        ]
        if len(keep) > 1:
            upper = [f"{f.px(float(s.x[i])):.1f},{f.py(hi[i]):.1f}" for i in keep]
            lower = [f"{f.px(float(s.x[i])):.1f},{f.py(lo[i]):.1f}" for i in reversed(keep)]
            out.append(
                f'<polygon points="{" ".join(upper + lower)}" fill="{s.colour}" '
                f'fill-opacity="0.18" stroke="none"/>'
            )
    pts = _points(f, s)
    if not pts:
        return out
    coords: list[str] = []
    for j, (px, py, _, _) in enumerate(pts):
        if s.step and j:
            coords.append(f"{px:.1f},{pts[j - 1][1]:.1f}")
        coords.append(f"{px:.1f},{py:.1f}")
    out.append(
        f'<polyline points="{" ".join(coords)}" fill="none" stroke="{s.colour}" '
        f'stroke-width="{s.width}" stroke-dasharray="{DASHES.get(s.dash, "")}">'
        f"<title>{esc(s.name)}</title></polyline>"
    )
    tips = list(s.tips) if s.tips is not None else None
    for j, (px, py, xv, yv) in enumerate(pts):
        if tips is not None and j >= len(tips):
            continue  # a point without a tip of its own (a histogram's closing edge)
        tip = tips[j] if tips is not None else f"{f.x.fmt(xv)}: {f.y.fmt(yv)}"
        r = 3 if s.markers else 5
        vis = "" if s.markers else ' fill-opacity="0"'
        out.append(
            f'<circle class="pt" cx="{px:.1f}" cy="{py:.1f}" r="{r}" fill="{s.colour}"{vis}>'
            f"<title>{esc(s.name)} — {esc(tip)}</title></circle>"
        )
    return out


@dataclass
class BarGroup:
    """One coloured set of bars, a value per category (NaN: no bar)."""

    name: str
    values: Values
    colour: str
    tips: Sequence[str] | None = None


def bar_chart(
    categories: Sequence[str],
    groups: Sequence[BarGroup],
    value_axis: Axis,
    *,
    horizontal: bool = False,
    stacked: bool = False,
    title: str = "",
    width: int = 560,
    height: int | None = None,
    category_label: str = "",
) -> Markup:
    """Grouped or stacked bars; horizontal bars suit long category names (groups of
    people), vertical ones years. Every bar has a hover value."""
    n_cat = max(len(categories), 1)
    if height is None:
        per_category = 18 if stacked else 10 + 8 * len(groups)
        height = max(160, 60 + n_cat * per_category) if horizontal else 280
    values = np.array([[float(v) for v in g.values] for g in groups], dtype=float).reshape(
        len(groups), len(categories)
    )
    if stacked:
        pos = np.where(values > 0, values, 0).sum(axis=0)
        neg = np.where(values < 0, values, 0).sum(axis=0)
        extent = [*pos.tolist(), *neg.tolist()]
    else:
        extent = values[np.isfinite(values)].tolist()
    axis = Axis(
        value_axis.label,
        value_axis.fmt,
        integer=value_axis.integer,
        lo=value_axis.lo,
        hi=value_axis.hi,
        zero=True,
    )
    longest = max((len(c) for c in categories), default=4)
    rng = _range(extent, axis)
    left = min(40 + 6 * longest, 220) if horizontal else max(64, _label_margin(axis, rng))
    f = _Frame(width, height, left=left)
    cat_axis = Axis(category_label)
    f.x, f.y = (axis, cat_axis) if horizontal else (cat_axis, axis)
    plot_w, plot_h = width - f.left - f.right, height - f.top - f.bottom
    parts = _plot_area(f, title)
    ticks = nice_ticks(*rng, 6 if horizontal else 5, integer_only=axis.integer)
    mid_x = (f.left + width - f.right) / 2
    if horizontal:
        f.x_range, f.y_range = rng, (0.0, 1.0)
        parts += _x_ticks(f, ticks, axis.fmt)
        parts.append(_text(mid_x, height - 6, axis.label, "label"))
    else:
        f.x_range, f.y_range = (0.0, 1.0), rng
        parts += _y_ticks(f, ticks, axis.fmt)
        parts.append(_ylabel(f, axis.label))
        parts.append(_text(mid_x, height - 6, category_label, "label"))
    slot = (plot_h if horizontal else plot_w) / n_cat
    inner = slot * 0.8
    per = inner if stacked else inner / max(len(groups), 1)
    zero = f.px(0.0) if horizontal else f.py(0.0)
    for c, cat in enumerate(categories):
        start = (f.top if horizontal else f.left) + c * slot + 0.1 * slot
        if horizontal:  # a name longer than the margin is cut, whole in its tooltip
            fits = max(4, int((f.left - 10) / 6.5))
            shown = cat if len(cat) <= fits else cat[: fits - 1].rstrip() + "…"
            label = _text(f.left - 5, start + inner / 2 + 3.5, shown, "tick", "end")
            if shown != cat:
                label = label.replace("</text>", f"<title>{esc(cat)}</title></text>")
            parts.append(label)
        else:
            parts.append(_text(start + inner / 2, height - f.bottom + 14, cat, "tick"))
        up = down = 0.0
        for g, group in enumerate(groups):
            v = values[g, c]
            if not math.isfinite(v):
                continue
            if stacked:
                base = up if v >= 0 else down
                a, b = base, base + v
                if v >= 0:
                    up += v
                else:
                    down += v
                off = start
            else:
                a, b = 0.0, v
                off = start + g * per
            tip = group.tips[c] if group.tips is not None else value_axis.fmt(v)
            if horizontal:
                x0, x1 = sorted((f.px(a), f.px(b)))
                rect = _rect(x0, off, max(x1 - x0, 0.5), per)
            else:
                y0, y1 = sorted((f.py(a), f.py(b)))
                rect = _rect(off, y0, per, max(y1 - y0, 0.5))
            parts.append(
                f'<rect class="bar" {rect} fill="{group.colour}"><title>{esc(cat)} · '
                f"{esc(group.name)}: {esc(tip)}</title></rect>"
            )
    if horizontal:
        parts.append(_line(zero, zero, f.top, height - f.bottom, "zero"))
    else:
        parts.append(_line(f.left, width - f.right, zero, zero, "zero"))
    entries = [(g.name, g.colour, "solid") for g in groups if g.name]
    show_legend = len(groups) > 1 or stacked
    return Markup(
        f'<figure class="chart">{_svg(f, parts, title or axis.label)}'
        f"{_legend(entries) if show_legend else ''}</figure>"
    )


def _rect(x: float, y: float, w: float, h: float) -> str:
    return f'x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"'


def grid(charts: Sequence[Markup]) -> Markup:
    """Charts side by side, wrapping (small multiples)."""
    return Markup(f'<div class="charts">{"".join(charts)}</div>')
