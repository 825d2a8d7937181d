"""The report's figures, rendered by matplotlib (Agg) to base64 PNG."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llmecon.report._references import References
from llmecon.runs.dataframes import RunData

# Figures are built with ``Figure`` directly, never pyplot: no global figure state, no
# GUI backend; ``savefig`` renders with Agg.
_DPI = 90


def color(i: int) -> str:
    return f"C{i % 10}"  # the default colour cycle


def text(label: object) -> str:
    """Run data as plain matplotlib text: ``$`` would start mathtext, ``_`` a hidden label."""
    s = str(label).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def to_png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True
) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _usd(x: float) -> str:
    return f"${x / 1000:,.0f}k" if x >= 1000 else f"${x:,.0f}"


def bracket_labels(edges: Sequence[float]) -> list[str]:
    return [f"{_usd(e)}+" for e in edges]


def _shared(values: Sequence[object]) -> bool:
    """Whether every run has the same reference (same economy): draw it once."""
    return len(values) > 1 and all(v == values[0] for v in values)


_REF_STYLES: dict[str, Any] = {
    "no tax": (0, (1, 4)),
    "status quo": ":",
    "Saez": "--",
    "oracle": "-.",
}


def welfare_by_year(
    runs: Sequence[RunData], labels: Sequence[str], refs: Sequence[References]
) -> str:
    fig, ax = _subplots(figsize=(9, 4.2))
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        ax.plot(
            run.years["year"], run.years["swf"], marker="o", ms=3, color=color(i), label=text(label)
        )
    for name, values in (
        ("no tax", [r.none_swf for r in refs]),
        ("status quo", [r.status_quo_swf for r in refs]),
        ("Saez", [r.saez_swf for r in refs]),
        ("oracle", [r.oracle_swf for r in refs]),
    ):
        style = _REF_STYLES[name]
        if _shared(values) and values[0] is not None:
            ax.axhline(values[0], ls=style, lw=1.2, color="black", alpha=0.7, label=name)
            continue
        for i, (value, label) in enumerate(zip(values, labels, strict=True)):
            suffix = f" ({text(label)})" if len(runs) > 1 else ""
            if value is not None:
                ax.axhline(value, ls=style, lw=1.2, color=color(i), alpha=0.7, label=name + suffix)
    ax.set_xlabel("tax year")
    ax.set_ylabel("social welfare (run objective)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return to_png_base64(fig)


def schedules_over_time(runs: Sequence[RunData], labels: Sequence[str]) -> str:
    n = len(runs)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = _subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        ax: Axes = axes[i // cols][i % cols]
        names = bracket_labels(run.edges)
        for b, name in enumerate(names):
            col = f"rate_{b}"
            if col in run.years:
                ax.plot(run.years["year"], 100 * run.years[col], marker=".", label=text(name))
        ax.set_title(text(label), fontsize=9)
        ax.set_xlabel("tax year")
        ax.set_ylabel("marginal rate (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, title="bracket", title_fontsize=6)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.tight_layout()
    return to_png_base64(fig)


def _step(ax: Axes, edges: Sequence[float], rates: Sequence[float], **kw: object) -> None:
    top = 1.25 * edges[-1] if edges[-1] > 0 else 100_000.0
    x = [*edges, top]
    y = [100 * r for r in rates] + [100 * rates[-1]]
    ax.step(np.asarray(x) / 1000, y, where="post", **kw)  # type: ignore[arg-type]


def final_schedules(
    runs: Sequence[RunData], labels: Sequence[str], refs: Sequence[References]
) -> str:
    fig, ax = _subplots(figsize=(9, 4.2))
    first = refs[0]
    _step(
        ax,
        runs[0].edges,
        first.status_quo_rates,
        color="grey",
        lw=2.5,
        alpha=0.6,
        label="US federal 2025",
    )
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        if run.years.empty:
            continue
        last = run.years.iloc[-1]
        rates = [float(last[f"rate_{b}"]) for b in range(len(run.edges))]
        _step(ax, run.edges, rates, color=color(i), lw=2, label=f"{text(label)} (final)")
    for name, key in (("Saez", "saez_rates"), ("oracle", "oracle_rates")):
        style = "--" if name == "Saez" else ":"
        values = [getattr(r, key) for r in refs]
        same_edges = all(r.edges == runs[0].edges for r in runs)
        if same_edges and _shared(values) and values[0] is not None:
            _step(ax, runs[0].edges, values[0], color="black", ls=style, lw=1, label=name)
            continue
        for i, (run, label, ref_rates) in enumerate(zip(runs, labels, values, strict=True)):
            suffix = f" ({text(label)})" if len(runs) > 1 else ""
            if ref_rates is not None:
                _step(ax, run.edges, ref_rates, color=color(i), ls=style, lw=1, label=name + suffix)
    ax.set_xlabel("annual income (USD thousands)")
    ax.set_ylabel("marginal rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return to_png_base64(fig)


def _final_year(run: RunData) -> pd.DataFrame:
    if run.agents.empty:
        return run.agents
    return run.agents[run.agents["year"] == run.agents["year"].max()]


def distributions(runs: Sequence[RunData], labels: Sequence[str]) -> str:
    fig, (ax_h, ax_z) = _subplots(1, 2, figsize=(10, 3.8))
    hours_bins = np.arange(0, 82, 2)
    incomes = [_final_year(r)["income_usd"].dropna().to_numpy(float) for r in runs]
    positive = np.concatenate([z[z > 0] for z in incomes]) if incomes else np.array([])
    income_bins = (
        np.logspace(np.log10(positive.min()), np.log10(positive.max()), 40)
        if positive.size and positive.max() > positive.min()
        else 20
    )
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        final = _final_year(run)
        hist = dict(histtype="step", lw=1.6, color=color(i), label=text(label))
        ax_h.hist(final["weekly_hours"].to_numpy(float), bins=hours_bins, **hist)
        if incomes[i].size:
            ax_z.hist(incomes[i][incomes[i] > 0], bins=income_bins, **hist)
    ax_h.set_xlabel("weekly hours (final year)")
    ax_z.set_xlabel("annual pre-tax income, USD (final year, log scale)")
    ax_z.set_xscale("log")
    for ax in (ax_h, ax_z):
        ax.set_ylabel("workers")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png_base64(fig)


def lorenz_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population share and cumulative share of the total, from 0 to 1."""
    v = np.sort(np.asarray(values, dtype=float))
    total = v.sum()
    share = np.cumsum(v) / total if total != 0 else np.linspace(0, 1, v.size)
    return np.linspace(0, 1, v.size + 1), np.concatenate([[0.0], share])


def lorenz(runs: Sequence[RunData], labels: Sequence[str]) -> str:
    fig, axes = _subplots(1, 2, figsize=(10, 4.2))
    for ax, column, title in zip(
        axes, ("income_usd", "consumption_usd"), ("pre-tax income", "consumption"), strict=True
    ):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="equality")
        for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
            values = _final_year(run)[column].dropna().to_numpy(float)
            if values.size:
                x, y = lorenz_points(values)
                ax.plot(x, y, color=color(i), lw=1.6, label=text(label))
        ax.set_title(f"Lorenz curve: {title} (final year)", fontsize=9)
        ax.set_xlabel("share of workers")
        ax.set_ylabel("share of total")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png_base64(fig)


def vote_shares(runs: Sequence[RunData], labels: Sequence[str]) -> str:
    with_votes = [(r, lab) for r, lab in zip(runs, labels, strict=True) if not r.votes.empty]
    fig, axes = _subplots(1, len(with_votes), figsize=(5 * len(with_votes), 3.6), squeeze=False)
    for ax, (run, label) in zip(axes[0], with_votes, strict=True):
        shares = run.votes.pivot_table(
            index="year", columns="label", values="share", aggfunc="last"
        )
        bottom = np.zeros(len(shares))
        for j, cand in enumerate(shares.columns):
            vals = shares[cand].fillna(0).to_numpy(float)
            ax.bar(shares.index, vals, bottom=bottom, color=color(j), label=text(cand))
            bottom += vals
        ax.set_title(text(label), fontsize=9)
        ax.set_xlabel("tax year")
        ax.set_ylabel("vote share")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return to_png_base64(fig)


def calls_by_year(runs: Sequence[RunData], labels: Sequence[str]) -> str:
    with_calls = [(r, lab) for r, lab in zip(runs, labels, strict=True) if not r.calls.empty]
    fig, (ax_t, ax_l) = _subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / max(len(with_calls), 1)
    for i, (run, label) in enumerate(with_calls):
        by_year = run.calls.groupby("year")[["input_tokens", "output_tokens"]].sum()
        x = by_year.index.to_numpy(float) + (i - (len(with_calls) - 1) / 2) * width
        total = (by_year["input_tokens"] + by_year["output_tokens"]).to_numpy(float)
        ax_t.bar(x, total, width=width, color=color(i), label=text(label))
        ax_l.hist(
            run.calls["latency_s"].to_numpy(float),
            bins=30,
            histtype="step",
            lw=1.6,
            color=color(i),
            label=text(label),
        )
    ax_t.set_xlabel("tax year")
    ax_t.set_ylabel("tokens (input + output)")
    ax_l.set_xlabel("latency per call (s)")
    ax_l.set_ylabel("calls")
    for ax in (ax_t, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png_base64(fig)
