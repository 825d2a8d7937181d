"""The Python API: ``llmecon.run``, ``llmecon.compare`` and ``llmecon.load_run``.

They work the same in a script and in Jupyter: inside a running event loop the run goes
to a worker thread with a loop of its own (or ``await llmecon.run_async(...)``).
Results carry pandas DataFrames::

    import llmecon

    result = llmecon.run(planner="saez", workers="rational", agents=500, years=10)
    result.years[["year", "swf", "revenue_usd"]]

    table = llmecon.compare(["none", "saez", "oracle"], agents=500, years=10).table
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmecon.runs.config import RunConfig, build_config, read_config_file
from llmecon.runs.loop import ProgressCallback, RunResult
from llmecon.runs.wiring import build_simulation

#: The planners ``compare`` runs by default.
DEFAULT_PLANNERS = ("none", "us-federal", "saez", "oracle", "ucb")
#: ``compare``'s own defaults (under the caller's settings); its workers are rational
#: (so 1 000 agents by default, as for any rational-worker run).
COMPARE_DEFAULTS: dict[str, Any] = {"years": 30}


def _config(
    config: RunConfig | str | Path | None,
    settings: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> RunConfig:
    """A resolved config: ``defaults``, under a :class:`RunConfig`'s set fields or a
    YAML/TOML file's, under ``settings`` (RunConfig fields; ``None`` = unset).
    :class:`~llmecon.runs.ConfigError` naming the field when invalid."""
    if isinstance(config, RunConfig):
        data = config.model_dump(exclude_unset=True)
    elif config is not None:
        data = read_config_file(config)
    else:
        data = {}
    given = {k: v for k, v in settings.items() if v is not None}
    return build_config(None, {**(defaults or {}), **data, **given})


def run(
    config: RunConfig | str | Path | None = None,
    /,
    *,
    progress: ProgressCallback | None = None,
    write_log: bool = True,
    **settings: Any,
) -> RunResult:
    """Run one simulation and return its :class:`~llmecon.runs.RunResult`
    (``.years`` DataFrame, ``.summary``, ``.load()`` for every table of its folder).

    Args:
        config: a :class:`~llmecon.runs.RunConfig`, a YAML/TOML config file, or
            nothing (the defaults: the embedded model as planner and workers).
        progress: called after every tax year with the year's record and totals.
        write_log: write the run folder ``<out>/<run-id>/`` (default), or nothing.
        settings: any :class:`~llmecon.runs.RunConfig` field, e.g. ``planner="gpt-4o"``,
            ``agents=100``, ``years=10``, ``seed=3``.

    A run that stops early returns with its ``status`` (``budget_exceeded``,
    ``deadline_exceeded``); a failed run raises :class:`~llmecon.runs.RunFailedError`
    (its ``.result`` holds what was done).
    """
    sim = build_simulation(_config(config, settings), write_log=write_log)
    return sim.run(progress)


async def run_async(
    config: RunConfig | str | Path | None = None,
    /,
    *,
    progress: ProgressCallback | None = None,
    write_log: bool = True,
    **settings: Any,
) -> RunResult:
    """:func:`run`, awaited on the caller's event loop (``await llmecon.run_async(...)``)."""
    sim = build_simulation(_config(config, settings), write_log=write_log)
    return await sim.run_async(progress)


@dataclass
class Comparison:
    """Several planners on one economy (:func:`compare`)."""

    table: pd.DataFrame
    """One row per planner: ``gain_closed`` (share of the no-tax → oracle welfare gain
    its final year closes), ``final_swf``, ``best_swf``, ``pct_of_oracle``,
    ``revenue_per_worker_usd``, ``mean_weekly_hours``, ``gini_income``."""
    none_swf: float
    oracle_swf: float
    oracle_rates: list[float]
    results: dict[str, RunResult] = field(default_factory=dict)
    """Each planner's full result (``.years`` per planner)."""


def compare_config(config: RunConfig | str | Path | None = None, /, **settings: Any) -> RunConfig:
    """The config :func:`compare` runs every planner with: ``config`` and ``settings``
    with its defaults (30 years) and rational workers, no reference welfare."""
    forced = {"workers": "rational", "reference": False}
    return _config(config, {**settings, **forced}, defaults=COMPARE_DEFAULTS)


def compare(
    planners: Sequence[str] = DEFAULT_PLANNERS,
    config: RunConfig | str | Path | None = None,
    /,
    *,
    progress: Callable[[str, Any], None] | None = None,
    write_log: bool = False,
    **settings: Any,
) -> Comparison:
    """Run each planner on the same economy (same population, seed and settings) and
    return a :class:`Comparison` (``.table``, a DataFrame with a row per planner).

    Defaults as ``llmecon compare``: rational workers, 30 years, no run folders
    (``write_log=True`` writes one per planner). ``progress(planner, record)`` is
    called after every year.
    """
    from llmecon.economy import gain_closed
    from llmecon.planners import optimal_rates

    names = [p.strip() for p in planners if p.strip()]
    if not names:
        raise ValueError("compare needs at least one planner")
    base = compare_config(config, **settings)
    sims = {
        name: build_simulation(base.model_copy(update={"planner": name}), write_log=write_log)
        for name in names
    }
    first = sims[names[0]]
    oracle = optimal_rates(
        first.economy, first.edges, min_rate=base.min_rate, max_rate=base.max_rate
    )
    context = first.planner_context
    none_swf = first.economy.evaluate(context.schedule([0.0] * context.n_brackets))[1].swf
    rows: list[dict[str, Any]] = []
    results: dict[str, RunResult] = {}
    for name, sim in sims.items():

        def on_year(record: Any, stats: dict[str, Any], name: str = name) -> None:
            if progress is not None:
                progress(name, record)

        result = sim.run(on_year)
        results[name] = result
        final = result.records[-1].metrics
        rows.append(
            {
                "planner": name,
                "gain_closed": gain_closed(final.swf, none_swf, oracle.swf),
                "final_swf": final.swf,
                "best_swf": max(r.metrics.swf for r in result.records),
                "pct_of_oracle": 100.0 * final.swf / oracle.swf if oracle.swf else None,
                "revenue_per_worker_usd": final.revenue_usd / sim.economy.size,
                "mean_weekly_hours": final.mean_weekly_hours,
                "gini_income": final.gini_income,
            }
        )
    return Comparison(
        pd.DataFrame(rows),
        none_swf,
        oracle.swf,
        [float(r) for r in oracle.rates],
        results,
    )
