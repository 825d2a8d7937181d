"""Social welfare functions and inequality measures (DESIGN.md §2).

All functions work on the last axis, so a batch of outcomes ``(S, N)`` gives ``(S,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

SWFName = Literal["utilitarian", "inverse_income", "rawlsian", "equality_times_productivity"]
SWF_NAMES: tuple[str, ...] = get_args(SWFName)


def gini(values: FloatArray) -> FloatArray:
    """Gini coefficient along the last axis (0 = equal; negative values allowed)."""
    x = np.sort(np.asarray(values, dtype=float), axis=-1)
    n = x.shape[-1]
    total = x.sum(axis=-1)
    rank = np.arange(1, n + 1, dtype=float)
    weighted = (rank * x).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (2.0 * weighted) / (n * total) - (n + 1.0) / n
    return np.where(total != 0, g, 0.0)


def equality(consumption: FloatArray) -> FloatArray:
    """AI Economist's equality ``1 − Gini(c)·N/(N−1)`` (1 = perfectly equal)."""
    n = consumption.shape[-1]
    scale = n / (n - 1.0) if n > 1 else 1.0
    return 1.0 - gini(consumption) * scale


def inverse_income_weights(hourly_wage: FloatArray) -> FloatArray:
    """Saez-style weights ``g_i ∝ 1/(52·40·s_i)``, normalised to mean 1.

    Potential (not realised) income, so the weights are fixed across policies and do
    not reward workers who stop working.
    """
    w = 1.0 / (52.0 * 40.0 * np.asarray(hourly_wage, dtype=float))
    return w / w.mean()


def utilitarian_welfare(utility: FloatArray) -> FloatArray:
    """Mean utility."""
    return np.asarray(utility).mean(axis=-1)


def inverse_income_welfare(utility: FloatArray, weights: FloatArray) -> FloatArray:
    """``mean(g_i u_i)`` with fixed inverse-potential-income weights."""
    return (np.asarray(utility) * weights).mean(axis=-1)


def rawlsian_welfare(utility: FloatArray) -> FloatArray:
    """The worst-off worker's utility."""
    return np.asarray(utility).min(axis=-1)


def equality_times_productivity(consumption: FloatArray, income: FloatArray) -> FloatArray:
    """AI Economist's ``(1 − Gini(c)·N/(N−1)) · mean(z)``."""
    return equality(consumption) * np.asarray(income).mean(axis=-1)


def social_welfare(
    name: str,
    utility: FloatArray,
    consumption: FloatArray,
    income: FloatArray,
    weights: FloatArray,
) -> FloatArray:
    """Evaluate the named SWF (one of :data:`SWF_NAMES`)."""
    fns: dict[str, Callable[[], FloatArray]] = {
        "utilitarian": lambda: utilitarian_welfare(utility),
        "inverse_income": lambda: inverse_income_welfare(utility, weights),
        "rawlsian": lambda: rawlsian_welfare(utility),
        "equality_times_productivity": lambda: equality_times_productivity(consumption, income),
    }
    try:
        return fns[name]()
    except KeyError:
        raise ValueError(
            f"unknown social welfare function {name!r}: use one of {', '.join(SWF_NAMES)}"
        ) from None


def marginal_welfare_weights(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
) -> FloatArray:
    """Social marginal welfare weights ``∂W/∂c_i``, normalised to mean 1.

    What the Saez formula needs: how much the planner values a dollar to each worker
    under the named SWF (incomes held fixed).
    """
    w = _raw_marginal_weights(swf, consumption, income, utility, fixed_weights, crra)
    mean = w.mean()
    return w / mean if mean > 0 else np.ones(w.size)


def output_welfare_weight(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
) -> float | None:
    """``∂W/∂z_i`` with every consumption held fixed, in units of the mean ``∂W/∂c_i``.

    ``None`` for the welfarist SWFs (utilitarian, inverse-income, Rawlsian): they value
    income only through consumption and leisure, so a worker's own response to a tax
    change has no first-order welfare effect (envelope theorem). The AI Economist's
    ``equality × productivity`` values output directly (``∂W/∂z_i = equality(c)/N``)
    and does not value leisure; its value is returned (``inf`` when no dollar of
    consumption can raise equality, i.e. all consumptions are equal).
    """
    if swf != "equality_times_productivity":
        if swf not in SWF_NAMES:
            raise ValueError(f"unknown social welfare function {swf!r}")
        return None
    c = np.asarray(consumption, dtype=float)
    raw_mean = float(_raw_marginal_weights(swf, c, income, utility, fixed_weights, crra).mean())
    if raw_mean <= 0:
        return float("inf")
    return float(equality(c)) / c.size / raw_mean


def _raw_marginal_weights(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
) -> FloatArray:
    """``∂W/∂c_i`` (up to a positive factor for the welfarist SWFs)."""
    c = np.asarray(consumption, dtype=float)
    n = c.size
    mu = np.ones(n) if crra is None else np.maximum(c, 1e-9) ** (-crra)
    if swf == "utilitarian":
        return mu
    if swf == "inverse_income":
        return np.asarray(fixed_weights * mu, dtype=float)
    if swf == "rawlsian":
        w = np.zeros(n)
        w[int(np.argmin(utility))] = 1.0
        return w
    if swf == "equality_times_productivity":
        rank = np.empty(n)
        rank[np.argsort(c, kind="stable")] = np.arange(1, n + 1)
        total = c.sum()
        d_gini = ((2.0 * rank - n - 1.0) / n - gini(c)) / total if total else np.zeros(n)
        return np.asarray(
            -d_gini * (n / (n - 1.0) if n > 1 else 1.0) * float(np.mean(income)), dtype=float
        )
    raise ValueError(f"unknown social welfare function {swf!r}")


def gain_closed(swf: float, none_swf: float | None, oracle_swf: float | None) -> float | None:
    """Share of the welfare gain from no tax to the oracle that ``swf`` closes.

    ``(W − W_none) / (W_oracle − W_none)``: 0 for the free market, 1 for the oracle,
    negative when worse than no tax. Unlike ``W / W_oracle`` it does not depend on the
    SWF's origin, so it works for negative SWFs (CRRA with η > 1). ``None`` ("n/a") when
    a reference is missing or the gap is not resolvable (``|W_oracle − W_none|`` at most
    1e-9 of the larger of the two in magnitude): then no planner can gain anything.
    """
    if none_swf is None or oracle_swf is None:
        return None
    gap = oracle_swf - none_swf
    if not np.isfinite(gap) or abs(gap) <= GAIN_GAP_RTOL * max(abs(oracle_swf), abs(none_swf)):
        return None
    return (swf - none_swf) / gap


#: Smallest resolvable none → oracle gap, relative to the SWF's magnitude.
GAIN_GAP_RTOL = 1e-9
