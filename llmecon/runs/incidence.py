"""Who gains and who loses: incidence tables and the welfare decomposition of a year
against a baseline (``RunData.incidence``, ``RunData.welfare_decomposition``;
docs/runs.md, "Incidence and the welfare decomposition").

**Baseline.** ``status_quo`` (default): the economy's evaluation of the status-quo
schedule (the federal 2025 rates on the run's brackets, within the run's rate bounds: the
schedule of the ``us-federal`` planner) with every worker at its rational best response
(at the within-year equilibrium under CRRA). It is the same counterfactual as the run's
``status_quo_swf`` reference, it exists for every run whatever its planner enacted first,
and on the federal brackets rational workers choose exactly their census usual hours
there (the calibration). ``first_year``: the run's own tax year 1 as logged (its
schedule and its workers' logged hours): for LLM workers it keeps their own behaviour
on both sides of the comparison, but year 1 is the status quo only for planners that
start there (the LLM planner does).

**Aggregation.** Every mean is over people: worker ``i`` counts ``w_i`` times (its survey
weight, mean 1). A group's ``population_share`` is ``Σ_{i∈g} w_i / Σ_i w_i``, its mean
change ``Σ_{i∈g} w_i Δx_i / Σ_{i∈g} w_i`` and its contribution
``Σ_{i∈g} w_i Δx_i / Σ_i w_i = share · mean change``, so the contributions of all groups
sum to the change of the population mean (for ``tax_usd``: the change of revenue per
worker; for ``utility``: of the utilitarian SWF).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from llmecon.economy import Economy, TaxSchedule
from llmecon.economy.welfare import WelfareInputs, get_swf, swf_names, weighted_mean

FloatArray = NDArray[np.float64]

#: Per-worker measures an incidence table reports, in order.
MEASURES: tuple[str, ...] = (
    "consumption_usd",
    "utility",
    "weekly_hours",
    "tax_usd",
    "income_usd",
)

#: Baselines a year is compared with (see the module docstring).
BASELINES: tuple[str, ...] = ("status_quo", "first_year")

#: The grouping by status-quo (baseline) income decile.
DECILE = "decile"


def status_quo_schedule(
    edges: tuple[float, ...], min_rate: float = 0.0, max_rate: float = 1.0
) -> TaxSchedule:
    """The status quo on ``edges`` within the rate bounds (what the ``us-federal``
    planner enacts and the ``status_quo_swf`` reference scores)."""
    rates = np.clip(
        np.asarray(TaxSchedule.status_quo(edges).rates, dtype=float), min_rate, max_rate
    )
    return TaxSchedule(tuple(edges), tuple(rates.tolist()))


def evaluated_outcomes(economy: Economy, schedule: TaxSchedule) -> pd.DataFrame:
    """Per worker (population order), the :data:`MEASURES` of ``schedule`` at rational
    responses (:meth:`Economy.evaluate`)."""
    out, _ = economy.evaluate(schedule)
    return pd.DataFrame(
        {
            "consumption_usd": out.consumption_usd,
            "utility": out.utility,
            "weekly_hours": out.weekly_hours,
            "tax_usd": out.tax_usd,
            "income_usd": out.income_usd,
        }
    )


def weighted_deciles(values: FloatArray, weight: FloatArray) -> NDArray[np.int64]:
    """Decile (1 … 10) of each value in the ``weight``-weighted distribution: the
    mid-point of its cumulative weight, ``(Σ_{j before i} w_j + w_i / 2) / Σ w``, times 10,
    rounded down. Tied values share the mean mid-point of their tie, so equal values
    always fall in one decile."""
    x = np.asarray(values, dtype=float)
    w = np.asarray(weight, dtype=float)
    order = np.argsort(x, kind="stable")
    mid = np.empty(x.size)
    mid[order] = np.cumsum(w[order]) - 0.5 * w[order]
    _, tie, count = np.unique(x, return_inverse=True, return_counts=True)
    mid = (np.bincount(tie, weights=mid) / count)[tie]
    total = w.sum()
    position = mid / total if total > 0 else np.zeros(x.size)
    return np.clip(np.floor(10.0 * position).astype(np.int64) + 1, 1, 10)


def incidence_table(
    labels: pd.Series, weight: FloatArray, now: pd.DataFrame, base: pd.DataFrame
) -> pd.DataFrame:
    """One row per group of ``labels`` (in sorted order; a missing label is its own
    group): ``group``, ``n`` (workers), ``population_share``, ``share_gaining`` and
    ``share_losing`` (the weighted shares of its people whose utility rose or fell by more
    than 1e-9 relative), and for each of :data:`MEASURES` the group means ``x`` (the
    year) and ``x_baseline``, the mean change ``x_change`` and ``x_contribution``, its
    share of the change of the population mean (see the module docstring)."""
    w = np.asarray(weight, dtype=float)
    total = w.sum()
    data: dict[str, object] = {"group": labels.to_numpy(), "n": np.ones(w.size), "w": w}
    du = now["utility"].to_numpy(float) - base["utility"].to_numpy(float)
    tol = 1e-9 * np.maximum(np.abs(base["utility"].to_numpy(float)), 1.0)
    data["w_gain"] = w * (du > tol)
    data["w_loss"] = w * (du < -tol)
    for m in MEASURES:
        x, x0 = now[m].to_numpy(float), base[m].to_numpy(float)
        data[f"{m}__now"] = w * x
        data[f"{m}__base"] = w * x0
        data[f"{m}__diff"] = w * (x - x0)
    sums = pd.DataFrame(data).groupby("group", dropna=False, sort=True).sum()
    gw = sums["w"].to_numpy(float)

    def per_person(column: str) -> FloatArray:
        v = sums[column].to_numpy(float)
        return np.divide(v, gw, out=np.full(v.size, np.nan), where=gw > 0)

    out: dict[str, object] = {
        "group": sums.index.to_numpy(),
        "n": sums["n"].to_numpy().astype(np.int64),
        "population_share": gw / total,
        "share_gaining": per_person("w_gain"),
        "share_losing": per_person("w_loss"),
    }
    for m in MEASURES:
        out[m] = per_person(f"{m}__now")
        out[f"{m}_baseline"] = per_person(f"{m}__base")
        out[f"{m}_change"] = per_person(f"{m}__diff")
        out[f"{m}_contribution"] = sums[f"{m}__diff"].to_numpy(float) / total
    return pd.DataFrame(out)


def _split(economy: Economy, frame: pd.DataFrame, name: str) -> tuple[float, float, float]:
    """(value, efficiency, equity) of the SWF ``name`` on one year's outcomes."""
    sw = economy.survey_weight
    u = frame["utility"].to_numpy(float)
    c = frame["consumption_usd"].to_numpy(float)
    z = frame["income_usd"].to_numpy(float)
    swf = get_swf(name)
    value = float(swf.evaluate(WelfareInputs(u, c, z, economy.weights, sw)))
    u_eq, c_eq, z_eq = (np.full(u.size, float(weighted_mean(x, sw))) for x in (u, c, z))
    equal = WelfareInputs(u_eq, c_eq, z_eq, economy.weights, sw)
    efficiency = float(swf.evaluate(equal))
    return value, efficiency, value - efficiency


def welfare_decomposition_table(
    economy: Economy, now: pd.DataFrame, base: pd.DataFrame, objective: str
) -> pd.DataFrame:
    """One row per registered SWF: its ``value`` split as ``efficiency + equity``, in
    the year and in the baseline, and the changes.

    ``efficiency`` is the SWF of the same year with every person's utility, consumption
    and income replaced by their population means (what the totals would be worth shared
    equally; the fixed inverse-income weights stay as they are, since they are the
    planner's values, not an outcome); ``equity`` is ``value − efficiency``, what the
    actual distribution adds or costs. For the utilitarian SWF ``equity`` is 0; for
    inverse-income it is the weighted covariance of the weights and utility; for Rawlsian
    the gap between the worst-off and the mean; for equality × productivity
    ``−Gini(c)·N/(N−1)·mean(z)``.
    """
    rows = []
    for name in swf_names():
        value, efficiency, equity = _split(economy, now, name)
        value0, efficiency0, equity0 = _split(economy, base, name)
        rows.append(
            {
                "swf": name,
                "objective": name == objective,
                "value": value,
                "efficiency": efficiency,
                "equity": equity,
                "value_baseline": value0,
                "efficiency_baseline": efficiency0,
                "equity_baseline": equity0,
                "change": value - value0,
                "efficiency_change": efficiency - efficiency0,
                "equity_change": equity - equity0,
            }
        )
    return pd.DataFrame(rows)


#: Persona columns that are not groups, and why.
_NOT_GROUPS = {
    "agent": "one value per worker",
    "agent_index": "one value per worker",
    "narrative": "one value per worker",
    "run_id": "one value for the whole run",
    "seed": "one value for the whole run",
}


def _groupable(personas: pd.DataFrame) -> list[str]:
    """The persona columns ``incidence`` can group by: discrete attributes (not an
    identifier, the narrative or a continuous amount)."""
    return [
        c
        for c in personas.columns
        if c not in _NOT_GROUPS and not pd.api.types.is_float_dtype(personas[c])
    ]


def group_labels(
    by: str, personas: pd.DataFrame, base: pd.DataFrame, weight: FloatArray
) -> pd.Series:
    """The group of each worker for ``by``: ``decile`` of baseline income, or a discrete
    persona attribute (``age_band``, ``education``, ``state``, …).

    Raises:
        ValueError: ``by`` is neither (an identifier, the narrative and continuous
            amounts such as ``weight`` or ``hourly_wage_usd`` give one group per worker),
            or the run's personas do not carry it.
    """
    if not isinstance(by, str):
        raise ValueError(f"by takes one attribute name, e.g. 'decile' or 'age_band', not {by!r}")
    if by == DECILE:
        return pd.Series(weighted_deciles(base["income_usd"].to_numpy(float), weight))
    if by in personas.columns and by not in _NOT_GROUPS and personas[by].isna().all():
        raise ValueError(
            f"the run's personas carry no {by!r} (a synthetic population has no persona "
            "attributes, and a bank that changed since the run cannot give them: its "
            "population_note says which): group by 'decile' instead"
        )
    groupable = _groupable(personas)
    if by not in groupable:
        kind = "a continuous amount" if by in personas.columns else "no such attribute"
        why = _NOT_GROUPS.get(by, kind)
        raise ValueError(
            f"cannot group by {by!r} ({why}): use one of {', '.join([DECILE, *groupable])}"
        )
    return personas[by].reset_index(drop=True)


def measure_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The :data:`MEASURES` of one year's agents rows, in population order."""
    return rows.sort_values("agent_index")[list(MEASURES)].reset_index(drop=True)


def with_head(frame: pd.DataFrame, head: Mapping[str, Any]) -> pd.DataFrame:
    """``frame`` with the columns ``head`` (constants) in front."""
    out = frame.copy()
    for i, (key, value) in enumerate(head.items()):
        out.insert(i, key, value)
    return out
