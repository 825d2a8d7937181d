"""Saez (2001) bracket formula, at equilibrium incomes or with an estimated elasticity.

``τ(z) = (1 − G(z)) / (1 − G(z) + α(z)·ε)`` where ``G(z)`` is the mean social marginal
welfare weight of workers earning at least ``z`` relative to the population mean, and
``α(z) = z f(z) / (1 − F(z))`` is the local Pareto parameter of the income distribution.

Bracket rates: each bracket below the top takes the formula at the median income of the
workers in it (the bracket midpoint when it is empty), with ``α`` from a Gaussian
kernel density of log income (``z f(z) = f_log z(log z)``). The open top bracket uses the
Pareto form ``α = m / (m − z*)``, ``m`` the mean income above the top edge ``z*``.

- ``saez`` evaluates this on the *equilibrium* incomes of the economy with the true ε,
  iterating schedule → rational incomes → schedule to a (damped) fixed point.
- ``equality_times_productivity`` is not welfarist (it values output directly), so
  the Saez planners use the inverse-income weights as its stand-in.
- ``saez-empirical`` uses the incomes observed last year and an ε estimated from the
  year-to-year responses in the history (so it works with LLM workers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import Economy, Outcome, TaxSchedule
from llmecon.economy.welfare import marginal_welfare_weights
from llmecon.planners.base import PlannerContext, PlannerError, YearRecord, register_planner

FloatArray = NDArray[np.float64]

_KDE_MAX_POINTS = 20_000


def saez_bracket_rates(
    income_usd: FloatArray,
    weights: FloatArray,
    edges: Sequence[float],
    elasticity: float,
    *,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
) -> FloatArray:
    """Saez rates for each bracket given incomes and social marginal welfare weights."""
    z = np.asarray(income_usd, dtype=float)
    g = np.asarray(weights, dtype=float)
    e = np.asarray(edges, dtype=float)
    g_mean = g.mean()
    positive = z[z > 0]
    if positive.size < 2:
        return np.full(e.size, min_rate)
    log_density = _log_income_density(np.log(positive))
    order = np.argsort(z)
    z_sorted = z[order]
    # Mean weight of workers with income >= point, via suffix sums on the sorted incomes.
    g_suffix = np.cumsum(g[order][::-1])[::-1]

    def above(point: float) -> tuple[float, float]:
        k = int(np.searchsorted(z_sorted, point, side="left"))
        share_above = (z.size - k) / z.size
        mean_g_above = g_suffix[k] / (z.size - k) / g_mean if k < z.size else 0.0
        return share_above, mean_g_above

    rates = np.empty(e.size)
    for b in range(e.size):
        top = b == e.size - 1
        if top:
            share, big_g = above(e[b])
            if share > 0:
                m = float(z[z >= e[b]].mean())
                alpha = m / (m - e[b]) if m > e[b] else np.inf
            else:  # nobody above the top edge: take the bracket below
                rates[b] = rates[b - 1] if b > 0 else min_rate
                continue
        else:
            in_bracket = z[(z >= e[b]) & (z < e[b + 1])]
            point = float(np.median(in_bracket)) if in_bracket.size else 0.5 * (e[b] + e[b + 1])
            if point <= 0:
                point = 0.5 * (e[b] + e[b + 1])
            share, big_g = above(point)
            if share <= 0:
                rates[b] = rates[b - 1] if b > 0 else min_rate
                continue
            alpha = float(log_density(np.log(point))) / share
        num = 1.0 - big_g
        den = num + alpha * elasticity
        rates[b] = num / den if den > 0 else max_rate
    return np.clip(rates, min_rate, max_rate)


def _log_income_density(log_z: FloatArray) -> _GaussianKDE:
    """Kernel density of log income (Silverman bandwidth), subsampled when huge."""
    if log_z.size > _KDE_MAX_POINTS:
        idx = np.linspace(0, log_z.size - 1, _KDE_MAX_POINTS).astype(int)
        log_z = np.sort(log_z)[idx]
    return _GaussianKDE(log_z)


class _GaussianKDE:
    def __init__(self, points: FloatArray) -> None:
        self.points = points
        std = float(points.std())
        iqr = float(np.subtract(*np.percentile(points, [75, 25])))
        spread = min(std, iqr / 1.349) if iqr > 0 else std
        self.bandwidth = max(0.9 * spread * points.size ** (-0.2), 1e-3)

    def __call__(self, x: float) -> float:
        u = (x - self.points) / self.bandwidth
        return float(
            np.exp(-0.5 * u * u).sum() / (self.points.size * self.bandwidth * np.sqrt(2 * np.pi))
        )


def saez_fixed_point(
    economy: Economy,
    edges: Sequence[float],
    *,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    damping: float = 0.5,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> tuple[FloatArray, int]:
    """Iterate schedule → rational incomes → Saez rates to a fixed point.

    Returns the rates and the number of iterations used.
    """
    sched = TaxSchedule.status_quo(tuple(edges))
    rates = np.clip(sched.rates_array, min_rate, max_rate)
    eps = economy.utility_config.elasticity
    for it in range(1, max_iter + 1):
        current = sched.with_rates(rates)
        out = economy.outcome(current, economy.rational_hours(current))
        weights = _saez_weights(economy, out)
        target = saez_bracket_rates(
            out.income_usd, weights, edges, eps, min_rate=min_rate, max_rate=max_rate
        )
        new = (1 - damping) * rates + damping * target
        if np.max(np.abs(new - rates)) < tol:
            return new, it
        rates = new
    return rates, max_iter


def _saez_weights(economy: Economy, out: Outcome) -> FloatArray:
    """Social marginal welfare weights of the economy's SWF at an outcome."""
    swf = "inverse_income" if economy.swf == "equality_times_productivity" else economy.swf
    return marginal_welfare_weights(
        swf,
        out.consumption_usd,
        out.income_usd,
        out.utility,
        economy.weights,
        economy.utility_config.crra,
    )


def estimate_elasticity(
    history: Sequence[YearRecord], *, window: int = 10, min_variation: float = 1e-6
) -> float | None:
    """ε from observed responses: OLS through the origin of Δlog z on Δlog(1 − τ).

    For each worker and each pair of consecutive years, ``x`` is the change in the
    log net-of-tax rate at last year's income (the mechanical change, which the worker's
    own response does not move) and ``y`` the change in log income. ``None`` when the
    history has too little tax variation to identify ε.
    """
    recent = list(history)[-(window + 1) :]
    xs, ys = [], []
    for prev, cur in itertools.pairwise(recent):
        z0, z1 = prev.income_usd, cur.income_usd
        ok = (z0 > 0) & (z1 > 0)
        net0 = 1.0 - prev.schedule.marginal_rate(z0[ok])
        net1 = 1.0 - cur.schedule.marginal_rate(z0[ok])
        valid = (net0 > 0) & (net1 > 0)
        xs.append(np.log(net1[valid]) - np.log(net0[valid]))
        ys.append(np.log(z1[ok][valid]) - np.log(z0[ok][valid]))
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    sxx = float(x @ x)
    if x.size == 0 or sxx / x.size < min_variation:
        return None
    return float(np.clip((x @ y) / sxx, 0.05, 3.0))


class SaezPlanner:
    """The Saez schedule at the economy's equilibrium (computed once)."""

    name = "saez"

    def __init__(self, ctx: PlannerContext) -> None:
        self._ctx = ctx
        self._schedule: TaxSchedule | None = None
        self.iterations = 0

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        if self._schedule is None:
            rates, self.iterations = saez_fixed_point(
                self._ctx.economy,
                self._ctx.edges,
                min_rate=self._ctx.min_rate,
                max_rate=self._ctx.max_rate,
            )
            self._schedule = self._ctx.schedule(rates)
        return self._schedule


class EmpiricalSaezPlanner:
    """Saez on last year's observed incomes with an elasticity estimated from history.

    Year 0 enacts the status quo (there is nothing to learn from yet); until the
    history identifies ε it uses ``prior_elasticity`` (default 0.4, the literature's
    usual hours elasticity, not read from the economy).
    """

    name = "saez-empirical"

    def __init__(self, ctx: PlannerContext, prior_elasticity: float = 0.4) -> None:
        self._ctx = ctx
        self.prior_elasticity = prior_elasticity
        self.elasticity_estimates: list[float | None] = []

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        if not history:
            return self._ctx.status_quo()
        last = history[-1]
        estimate = estimate_elasticity(history)
        self.elasticity_estimates.append(estimate)
        eps = estimate if estimate is not None else self.prior_elasticity
        economy = self._ctx.economy
        weights = _saez_weights(economy, economy.outcome(last.schedule, last.weekly_hours))
        rates = saez_bracket_rates(
            last.income_usd,
            weights,
            self._ctx.edges,
            eps,
            min_rate=self._ctx.min_rate,
            max_rate=self._ctx.max_rate,
        )
        return self._ctx.schedule(rates)


@register_planner("saez", "Saez bracket formula at the equilibrium incomes (fixed point)")
def _saez(ctx: PlannerContext, arg: str | None) -> SaezPlanner:
    return SaezPlanner(ctx)


@register_planner(
    "saez-empirical",
    "Saez formula with ε estimated from observed responses (saez-empirical:<prior ε>)",
)
def _saez_empirical(ctx: PlannerContext, arg: str | None) -> EmpiricalSaezPlanner:
    if arg is None:
        return EmpiricalSaezPlanner(ctx)
    try:
        return EmpiricalSaezPlanner(ctx, float(arg))
    except ValueError:
        raise PlannerError(f"saez-empirical takes a prior elasticity, got {arg!r}") from None
