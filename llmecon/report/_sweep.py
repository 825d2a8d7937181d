"""The report of a sweep folder: per setting, the mean SWF (and gain closed) by year
with a 95 % band across seeds, and the per-setting table (``llmecon report SWEEP``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmecon.report._data import records
from llmecon.report._html import Markup, page, paragraph, section, table
from llmecon.report._plots import YEAR_AXIS
from llmecon.report._svg import Axis, Series, colour, grid, line_chart, number, pct
from llmecon.sweeps.results import SUMMARY_METRICS, SweepData, interval


def setting_label(row: Any, by: Sequence[str]) -> str:
    """``planner=saez, swf=rawlsian`` (just the value when one column)."""
    if len(by) == 1:
        return str(row[by[0]])
    return ", ".join(f"{c}={row[c]}" for c in by) or "all cells"


def _groups(data: SweepData) -> list[tuple[str, pd.DataFrame]]:
    years = data.years
    by = data.years_by
    if years.empty:
        return []
    if not by:
        return [("all cells", years)]
    keys = years[by].astype(str).agg("\x1f".join, axis=1)
    out = []
    for key in dict.fromkeys(keys):
        group = years[keys == key]
        out.append((setting_label(group.iloc[0], by), group))
    return out


def band(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per year: mean of ``column`` across the cells (seeds) and its 95 % t-interval."""
    rows = []
    for year, at in group.groupby("year", sort=True):
        mean, lo, hi = interval(at[column].tolist())
        rows.append({"year": year, "mean": mean, "lo": lo, "hi": hi, "n": len(at)})
    return pd.DataFrame(rows)


def _band_series(group: pd.DataFrame, column: str, i: int, label: str) -> Series | None:
    b = band(group, column)
    if b.empty:
        return None
    lo, hi = b["lo"].to_numpy(float), b["hi"].to_numpy(float)
    tips = [
        f"tax year {int(r['year'])}: {number(r['mean'])} [{number(r['lo'])}, "
        f"{number(r['hi'])}], {int(r['n'])} seeds"
        for r in records(b)
    ]
    return Series(
        label,
        b["year"].to_numpy(float),
        b["mean"].to_numpy(float),
        colour(i),
        band=(lo, hi) if np.isfinite(lo).any() else None,
        tips=tips,
    )


def swf_by_setting(data: SweepData) -> Markup:
    """One chart per setting: each seed's SWF by year (thin), their mean and its 95 %
    band."""
    charts = []
    for i, (label, group) in enumerate(_groups(data)):
        series = [
            Series(
                f"seed cell {cell_id}",
                cell["year"].to_numpy(float),
                cell["swf"].to_numpy(float),
                colour(i),
                width=0.7,
                markers=False,
            )
            for cell_id, cell in group.groupby("cell_id", sort=False)
        ]
        mean = _band_series(group, "swf", i, "mean, 95 % band")
        if mean is not None:
            series.append(mean)
        charts.append(
            line_chart(
                series,
                YEAR_AXIS,
                Axis("social welfare (objective)", number),
                title=label,
                width=420,
                height=260,
                legend=False,
            )
        )
    return grid(charts)


def overlay(data: SweepData, column: str, ylabel: str, scale: float = 1.0) -> Markup:
    """Every setting's mean of ``column`` by year with its 95 % band, on one axis."""
    series = []
    for i, (label, group) in enumerate(_groups(data)):
        scaled = group.assign(**{column: pd.to_numeric(group[column], errors="coerce") * scale})
        s = _band_series(scaled, column, i, label)
        if s is not None:
            series.append(s)
    return line_chart(series, YEAR_AXIS, Axis(ylabel, number), width=760, height=320)


def _fmt_interval(row: Any, metric: str) -> str:
    mean = row.get(metric)
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    scale = 100.0 if metric == "gain_closed" else 1.0
    unit = " %" if metric == "gain_closed" else ""

    def f(v: float) -> str:
        v = v * scale
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"

    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f(float(mean)) + unit
    return f"{f(float(mean))}{unit} [{f(float(lo))}, {f(float(hi))}]"


def _stopped_cells(data: SweepData, limit: int = 20) -> list[Markup]:
    """A highlighted line per cell that did not complete, with why it stopped."""
    if data.cells.empty or "status" not in data.cells:
        return []
    stopped = data.cells[data.cells["status"] != "completed"]
    lines = []
    for row in records(stopped.head(limit)):
        error = row.get("error")
        why = f": {error}." if isinstance(error, str) and error else "."
        lines.append(paragraph(f"{row['cell_id']} ended {row['status']}{why}", css_class="warn"))
    if len(stopped) > limit:
        lines.append(paragraph(f"… and {len(stopped) - limit} more cells (cells.csv)."))
    return lines


def render_sweep_report(data: SweepData, title: str | None = None) -> str:
    """The HTML page of a sweep (self-contained: figures embedded)."""
    by = data.by
    title = title or f"llmecon sweep {data.path.name}"
    rows = records(data.table) if not data.table.empty else []
    summary = table(
        [*by, "seeds", "failed", *SUMMARY_METRICS.values()],
        [
            [
                *(str(r[c]) for c in by),
                int(r["n"]),
                int(r["failed"]),
                *(_fmt_interval(r, m) for m in SUMMARY_METRICS),
            ]
            for r in rows
        ],
    )
    parts: list[Markup] = [
        section(
            "summary",
            "Settings",
            paragraph(
                f"{len(data.cells)} cells; per setting the mean across seeds and its 95 % "
                "Student-t interval [low, high] (none with one seed). Gain closed = "
                "(W − W_none) / (W_oracle − W_none) of the final year."
            ),
            summary,
            *_stopped_cells(data),
        )
    ]
    nav = [("summary", "Settings")]
    if not data.years.empty:
        parts.append(
            section(
                "swf",
                "Welfare by year, per setting",
                paragraph("Thin lines: each seed; thick: their mean, shaded: its 95 % band."),
                swf_by_setting(data),
            )
        )
        nav.append(("swf", "Welfare"))
        if "gain_closed" in data.years and data.years["gain_closed"].notna().any():
            parts.append(
                section(
                    "gain",
                    "Gain closed by year",
                    overlay(data, "gain_closed", "gain closed (%)", 100.0),
                )
            )
            nav.append(("gain", "Gain closed"))

    def cost(v: float) -> str:
        return f"${v:,.4f}"

    shown: dict[str, tuple[str, Callable[[float], str]]] = {
        "final_swf": ("final SWF", number),
        "gain_closed": ("gain closed", pct),
        "cost_usd": ("cost", cost),
    }
    cell_cols = [c for c in shown if c in data.cells]

    def cell_text(value: Any, fmt: Any) -> str:
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "–" if missing else fmt(float(value))

    cells = table(
        ["cell", *data.axes, "status", *(shown[c][0] for c in cell_cols)],
        [
            [
                r["cell_id"],
                *(str(r.get(a)) for a in data.axes),
                r.get("status"),
                *(cell_text(r.get(c), shown[c][1]) for c in cell_cols),
            ]
            for r in data.cells.to_dict("records")
        ],
    )
    parts.append(section("cells", "Cells", cells))
    nav.append(("cells", "Cells"))
    return page(title, nav, parts)
