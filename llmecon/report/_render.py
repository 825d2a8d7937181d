"""Assemble the report: one HTML page with sections, tables and embedded figures."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmecon.report import _plots
from llmecon.report._html import Markup, image, page, paragraph, section, table, truncate
from llmecon.report._references import References, gain_closed_text, references
from llmecon.runs.dataframes import RunData
from llmecon.runs.events import KNOWN_EVENT_TYPES

#: Sample LLM calls shown per run, and the characters of raw output shown per call.
SAMPLE_CALLS = 8
RAW_OUTPUT_CHARS = 400

#: Event types the report tabulates although this release does not type them.
_TABULATED_OTHER = {"vote_round"}


def run_labels(runs: Sequence[RunData]) -> list[str]:
    """Run ids, made unique (``id``, ``id #2``) when two runs share one."""
    seen: Counter[str] = Counter()
    labels = []
    for run in runs:
        seen[run.run_id] += 1
        n = seen[run.run_id]
        labels.append(run.run_id if n == 1 else f"{run.run_id} #{n}")
    return labels


def _text(value: Any) -> str:
    """A cell's text: empty for missing values (None, or NaN after pandas)."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _pct(value: float | None, ref: float | None) -> str:
    if value is None or not ref:
        return "–"
    return f"{100 * value / ref:.2f} %"


def _summary(runs: Sequence[RunData], labels: Sequence[str], refs: Sequence[References]) -> Markup:
    rows: list[list[Any]] = []

    def add(name: str, values: Sequence[Any]) -> None:
        rows.append([name, *values])

    cfg = [r.manifest.config for r in runs]
    add("planner", [c.get("planner") for c in cfg])
    add("workers", [c.get("workers") for c in cfg])
    add("agents", [c.get("agents") for c in cfg])
    add("personas", [c.get("personas") for c in cfg])
    add("objective (SWF)", [c.get("swf") for c in cfg])
    add("seed", [r.manifest.seed for r in runs])
    add("status", [r.status for r in runs])
    add("years completed", [len(r.years) for r in runs])
    final = [float(r.years["swf"].iloc[-1]) if len(r.years) else None for r in runs]
    add(
        "gain closed, no tax → oracle (final year)",
        [gain_closed_text(v, f) for v, f in zip(final, refs, strict=True)],
    )
    add("final SWF", final)
    add("best SWF", [float(r.years["swf"].max()) if len(r.years) else None for r in runs])
    add("status-quo SWF", [f.status_quo_swf for f in refs])
    add("no-tax SWF", [f.none_swf for f in refs])
    add("Saez SWF", [f.saez_swf for f in refs])
    add("oracle SWF", [f.oracle_swf for f in refs])
    add(
        "final, % of status quo",
        [_pct(v, f.status_quo_swf) for v, f in zip(final, refs, strict=True)],
    )
    add(
        "final, % of oracle (secondary: depends on the SWF's origin)",
        [_pct(v, f.oracle_swf) for v, f in zip(final, refs, strict=True)],
    )
    add("LLM calls", [len(r.calls) for r in runs])
    add("fallbacks", [len(r.fallbacks) for r in runs])
    add("population", [r.population_note for r in runs])
    add("created", [r.manifest.created for r in runs])
    parts = [table(["", *labels], rows)]
    objectives = {c.get("swf") for c in cfg}
    if len(objectives) > 1:
        parts.append(
            paragraph("The runs optimise different SWFs: their welfare is not comparable.")
        )
    notes = sorted({n for f in refs for n in f.notes})
    parts.extend(paragraph(n) for n in notes)
    return section("summary", "Summary", *parts)


def _final_metrics(runs: Sequence[RunData], labels: Sequence[str]) -> Markup:
    names = [c for c in runs[0].years.columns if c not in ("year", "source", "planner")]
    names = [c for c in names if not c.startswith("rate_")]
    rows = []
    for name in names:
        vals = [r.years[name].iloc[-1] if len(r.years) and name in r.years else None for r in runs]
        rows.append([name, *[None if v is None else float(v) for v in vals]])
    return table(["metric (final year)", *labels], rows)


def _schedule_table(
    runs: Sequence[RunData], labels: Sequence[str], refs: Sequence[References]
) -> Markup:
    edges = runs[0].edges
    same = all(r.edges == edges for r in runs)
    headers = ["bracket from (USD/yr)", "US federal 2025"]
    columns: list[list[float] | None] = [refs[0].status_quo_rates]
    for run, label, ref in zip(runs, labels, refs, strict=True):
        if not same and run is not runs[0]:
            continue
        last = run.years.iloc[-1] if len(run.years) else None
        final = [float(last[f"rate_{b}"]) for b in range(len(edges))] if last is not None else None
        headers += [f"{label}: final", f"{label}: Saez", f"{label}: oracle"]
        columns += [final, ref.saez_rates, ref.oracle_rates]
    rows = []
    for b, edge in enumerate(edges):
        cells: list[Any] = [f"{edge:,.0f}"]
        cells += [f"{100 * col[b]:.1f} %" if col is not None else "–" for col in columns]
        rows.append(cells)
    parts = [table(headers, rows)]
    if not same:
        parts.append(paragraph("The runs use different brackets; the table shows the first run."))
    return Markup("".join(parts))


def _sample_calls(run: RunData) -> pd.DataFrame:
    """A few calls, failures and planner calls first (they are the interesting ones)."""
    calls = run.calls
    if calls.empty:
        return calls
    failed = calls[calls["error_type"].notna() | calls["fallback"].astype(bool)]
    planner = calls[calls["role"] == "planner"]
    picked = pd.concat([failed.head(3), planner.head(3), calls.head(SAMPLE_CALLS)])
    return picked.drop_duplicates("seq").head(SAMPLE_CALLS).sort_values("seq")


def _calls_section(runs: Sequence[RunData], labels: Sequence[str]) -> Markup:
    rows = []
    for run, label in zip(runs, labels, strict=True):
        c = run.calls
        if c.empty:
            continue
        latency = c["latency_s"].astype(float)
        cost = c["cost_usd"].dropna()
        rows.append(
            [
                label,
                len(c),
                ", ".join(f"{k}: {v}" for k, v in c["role"].value_counts().items()),
                int(c["input_tokens"].sum()),
                int(c["output_tokens"].sum()),
                float(cost.sum()) if len(cost) else None,
                float(latency.mean()),
                float(latency.quantile(0.95)),
                int(c["error_type"].notna().sum()),
                int(c["fallback"].astype(bool).sum()),
                int(c["retries"].sum()),
                int(c["repairs"].sum()),
                int(c["cached"].astype(bool).sum()),
            ]
        )
    headers = [
        "run",
        "calls",
        "by role",
        "input tokens",
        "output tokens",
        "cost (USD)",
        "mean latency (s)",
        "p95 latency (s)",
        "errors",
        "fallbacks",
        "retries",
        "repairs",
        "cached",
    ]
    parts = [
        table(headers, rows),
        image(_plots.calls_by_year(runs, labels), "tokens per year and call latency"),
        Markup("<h3>Sample calls</h3>"),
        paragraph(f"Raw output truncated to {RAW_OUTPUT_CHARS} characters; failures first."),
    ]
    sample_rows = []
    for run, label in zip(runs, labels, strict=True):
        for _, call in _sample_calls(run).iterrows():
            outputs = json.loads(call["raw_outputs_json"])
            raw = "\n--- re-ask ---\n".join(str(o) for o in outputs)
            error = _text(call["error_type"])
            if error:
                error += f": {_text(call['error_message'])}"
            sample_rows.append(
                [
                    label,
                    int(call["seq"]),
                    int(call["year"]),
                    call["role"],
                    _text(call["agent"]),
                    call["model"],
                    truncate(raw, RAW_OUTPUT_CHARS),
                    truncate(_text(call["parsed_json"]), 200),
                    truncate(error, 200),
                ]
            )
    headers = ["run", "seq", "year", "role", "agent", "model", "raw output", "parsed", "error"]
    parts.append(table(headers, sample_rows, css_class="data calls"))
    return section("calls", "LLM calls, tokens, cost and latency", *parts)


def _fallbacks_section(runs: Sequence[RunData], labels: Sequence[str]) -> Markup:
    rows = []
    for run, label in zip(runs, labels, strict=True):
        for _, f in run.fallbacks.head(20).iterrows():
            rows.append(
                [label, int(f["year"]), f["role"], _text(f["agent"]), f["reason"], f["action"]]
            )
        if len(run.fallbacks) > 20:
            rows.append([label, "…", "", "", f"{len(run.fallbacks) - 20} more", ""])
    headers = ["run", "year", "role", "agent", "reason", "action"]
    return section("fallbacks", "Fallbacks", table(headers, rows, css_class="data calls"))


def _votes_section(runs: Sequence[RunData], labels: Sequence[str]) -> Markup:
    rows = []
    for run, label in zip(runs, labels, strict=True):
        winners = run.votes[run.votes["is_winner"].astype(bool)]
        for _, v in winners.iterrows():
            rows.append(
                [
                    label,
                    int(v["year"]),
                    _text(v["rule"]),
                    _text(v["winner"]),
                    _text(v["origin"]),
                    float(v["share"]),
                    float(v["turnout"]),
                    float(v["winner_swf"]),
                    _text(v["best_candidate"]),
                ]
            )
    headers = [
        "run",
        "year",
        "rule",
        "winner",
        "origin",
        "winner's share",
        "turnout",
        "winner's SWF",
        "best candidate (SWF)",
    ]
    return section(
        "votes",
        "Votes",
        image(_plots.vote_shares(runs, labels), "vote shares by year"),
        table(headers, rows, css_class="data calls"),
    )


def _other_events_note(runs: Sequence[RunData]) -> Markup | None:
    counts: Counter[str] = Counter()
    for run in runs:
        counts.update(e.type for e in run.events if e.type not in KNOWN_EVENT_TYPES)
    shown = {t: n for t, n in counts.items() if t not in _TABULATED_OTHER}
    if not shown:
        return None
    listed = ", ".join(f"{t} ({n})" for t, n in sorted(shown.items()))
    return paragraph(f"Events of types this report does not tabulate: {listed}.")


def render_report(runs: Sequence[RunData], *, title: str | None = None) -> str:
    """The HTML report for one or more loaded runs (compared side by side)."""
    if not runs:
        raise ValueError("render_report needs at least one run")
    labels = run_labels(runs)
    refs = [references(r) for r in runs]
    title = title or (
        f"llmecon run {labels[0]}" if len(runs) == 1 else "llmecon runs: " + " vs ".join(labels)
    )
    has_years = all(len(r.years) for r in runs)
    body: list[Markup] = [_summary(runs, labels, refs)]
    nav = [("summary", "Summary")]
    if has_years:
        body.append(
            section(
                "welfare",
                "Welfare by year",
                image(_plots.welfare_by_year(runs, labels, refs), "welfare by year"),
                _final_metrics(runs, labels),
            )
        )
        body.append(
            section(
                "schedules",
                "Schedules over time",
                image(_plots.schedules_over_time(runs, labels), "marginal rates by year"),
            )
        )
        body.append(
            section(
                "final-schedule",
                "Final schedule vs US federal, Saez and oracle",
                image(_plots.final_schedules(runs, labels, refs), "final schedules"),
                _schedule_table(runs, labels, refs),
            )
        )
        nav += [("welfare", "Welfare"), ("schedules", "Schedules"), ("final-schedule", "Final")]
    else:
        body.append(paragraph("A run has no completed year: only the summary is shown."))
    if has_years and all(r.agents["income_usd"].notna().any() for r in runs):
        body.append(
            section(
                "distributions",
                "Hours and income (final year)",
                image(_plots.distributions(runs, labels), "hours and income distributions"),
            )
        )
        body.append(
            section(
                "lorenz",
                "Lorenz curves (final year)",
                image(_plots.lorenz(runs, labels), "Lorenz curves of income and consumption"),
            )
        )
        nav += [("distributions", "Distributions"), ("lorenz", "Lorenz")]
    elif has_years:
        body.append(paragraph("Distributions omitted: the population could not be rebuilt."))
    if any(len(r.votes) for r in runs):
        body.append(_votes_section(runs, labels))
        nav.append(("votes", "Votes"))
    if any(len(r.calls) for r in runs):
        body.append(_calls_section(runs, labels))
        nav.append(("calls", "LLM calls"))
    if any(len(r.fallbacks) for r in runs):
        body.append(_fallbacks_section(runs, labels))
        nav.append(("fallbacks", "Fallbacks"))
    note = _other_events_note(runs)
    if note is not None:
        body.append(note)
    body.append(
        paragraph(
            "Runs: " + "; ".join(f"{lab} = {r.path}" for lab, r in zip(labels, runs, strict=True))
        )
    )
    return page(title, nav, body)
