"""The report's incidence and welfare-decomposition sections: who gains and who loses
against the status quo, by income decile and persona group, from the data layer's
``RunData.incidence`` and ``RunData.welfare_decomposition`` (see docs/runs.md for their
definitions); the report only lays them out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmecon._format import HOURS, PERCENT, USD, WELFARE, Quantity
from llmecon.report import _plots
from llmecon.report._data import ReportRun, records
from llmecon.report._html import Markup, esc, paragraph, section, table
from llmecon.report._references import status_quo_words
from llmecon.report._svg import Axis, grid

#: The breakdowns shown, in order: (argument of ``incidence``, heading).
BREAKDOWNS: tuple[tuple[str, str], ...] = (
    ("decile", "status-quo income decile"),
    ("occupation_group", "occupation group"),
    ("age_band", "age band"),
    ("education", "education"),
    ("sex", "sex"),
    ("household_type", "household type"),
    ("state", "state"),
)

#: At most this many runs get their own incidence tables (the rest: see their reports).
MAX_RUNS = 4

#: The measures of an incidence table: (column prefix, heading, quantity). Utility is
#: in the SWF's unit, written as welfare.
_MEASURES: tuple[tuple[str, str, Quantity], ...] = (
    ("consumption_usd", "consumption", USD),
    ("utility", "utility", WELFARE),
    ("weekly_hours", "weekly hours", HOURS),
    ("tax_usd", "tax", USD),
)


def _signed(fmt: Quantity, value: float) -> str:
    """``value`` as a change of ``fmt``, with its sign; a value that shows as 0 (float
    noise) has none."""
    return fmt.change(value)


def _incidence(run: ReportRun, by: str) -> pd.DataFrame | None:
    try:
        frame = run.data.incidence(by)
    except ValueError:
        return None  # no per-agent outcomes, or a population without this attribute
    return frame if not frame.empty and frame["group"].notna().any() else None


def _incidence_table(frame: pd.DataFrame) -> Markup:
    """Groups as rows: share, gaining/losing, mean changes and contributions; a last row
    for all workers (the contributions' sum: the change of the population mean)."""
    headers = ["group", "workers", "population share", "gaining", "losing"]
    headers += [f"Δ {name}" for _, name, _ in _MEASURES]
    headers += [f"contribution to Δ {name}" for _, name, _ in _MEASURES[:2]]
    rows: list[list[Any]] = []
    for r in records(frame):
        rows.append(
            [
                str(r["group"]),
                int(r["n"]),
                PERCENT(r["population_share"]),
                PERCENT(r["share_gaining"]),
                PERCENT(r["share_losing"]),
                *(_signed(fmt, float(r[f"{col}_change"])) for col, _, fmt in _MEASURES),
                *(_signed(fmt, float(r[f"{col}_contribution"])) for col, _, fmt in _MEASURES[:2]),
            ]
        )
    total = [
        "all workers",
        int(frame["n"].sum()),
        PERCENT(frame["population_share"].sum()),
        "",
        "",
        *(_signed(fmt, float(frame[f"{col}_contribution"].sum())) for col, _, fmt in _MEASURES),
        *(_signed(fmt, float(frame[f"{col}_contribution"].sum())) for col, _, fmt in _MEASURES[:2]),
    ]
    rows.append(total)
    return table(headers, rows, css_class="data nowrap")


def incidence_section(runs: Sequence[ReportRun]) -> Markup | None:
    """Per breakdown: bars of the mean change in consumption and utility per group (one
    colour per run) and each run's table (collapsible)."""
    shown = runs[:MAX_RUNS]
    parts: list[Markup] = [
        paragraph(
            "The final tax year against the status quo "
            f"({status_quo_words([r.refs for r in shown])}, every worker at its rational "
            "best response), per group of "
            "workers: survey-weighted population share, the shares gaining and losing "
            "utility, mean changes, and each group's contribution to the change of the "
            "population mean (share × mean change; the contributions add up to the row "
            "'all workers'). Deciles are of status-quo income. Hover a bar for its value."
        )
    ]
    if len(runs) > MAX_RUNS:
        parts.append(paragraph(f"Shown for the first {MAX_RUNS} runs only."))
    found = False
    for by, heading in BREAKDOWNS:
        frames = [(r.label, f) for r in shown if (f := _incidence(r, by)) is not None]
        if not frames:
            continue
        found = True
        parts.append(Markup(f"<h3>By {esc(heading)}</h3>"))
        charts = [
            _plots.incidence_bars(
                [(label, f.assign(group=f["group"].astype(str))) for label, f in frames],
                f"{col}_change",
                Axis(f"mean change in {name}" + (" (USD/yr)" if fmt is USD else ""), fmt),
                f"Mean change in {name} by {heading}",
            )
            for col, name, fmt in _MEASURES[:2]
        ]
        parts.append(grid(charts))
        for label, frame in frames:
            parts.append(
                Markup(
                    f'<details class="table"><summary>{esc(label)}: table by {esc(heading)}'
                    f"</summary>{_incidence_table(frame)}</details>"
                )
            )
    if not found:
        return None
    return section("incidence", "Who gains and who loses (incidence)", *parts)


def decomposition_section(runs: Sequence[ReportRun]) -> Markup | None:
    """Per run: every registered SWF of the final tax year split into efficiency and
    equity, against the status quo (the run's objective first)."""
    parts: list[Markup] = []
    skipped: list[str] = []
    for run in runs[:MAX_RUNS]:
        try:
            frame = run.data.welfare_decomposition()
        except ValueError as exc:
            skipped.append(f"{run.label}: {exc}")
            continue
        if frame.empty:
            continue
        frame = frame.sort_values("objective", ascending=False, kind="stable")
        rows = [
            [
                str(r["swf"]) + (" (objective)" if bool(r["objective"]) else ""),
                WELFARE(r["value"]),
                WELFARE(r["efficiency"]),
                WELFARE(r["equity"]),
                WELFARE(r["value_baseline"]),
                WELFARE.change(r["change"]),
                WELFARE.change(r["efficiency_change"]),
                WELFARE.change(r["equity_change"]),
            ]
            for r in records(frame)
        ]
        headers = [
            "SWF",
            "value",
            "efficiency",
            "equity",
            "status quo",
            "Δ value",
            "Δ efficiency",
            "Δ equity",
        ]
        if len(runs) > 1:
            parts.append(Markup(f"<h3>{esc(run.label)}</h3>"))
        parts.append(table(headers, rows, css_class="data nowrap"))
    if not parts:
        return None
    notes = [
        "Each SWF of the final tax year as value = efficiency + equity (docs/runs.md "
        "defines the split per SWF), and its change against the status quo; the "
        "run's own objective first."
    ]
    if len(runs) > MAX_RUNS:
        notes.append(f"Shown for the first {MAX_RUNS} runs only.")
    notes.extend(f"Not shown for {why}" for why in skipped)
    return section("decomposition", "Welfare decomposition", *(paragraph(n) for n in notes), *parts)
