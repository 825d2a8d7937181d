"""The within-year equilibrium: hours that best-respond to the rebate they produce.

Under CRRA utility (income effects) a worker's hours depend on the lump-sum rebate
``R`` (USD per worker), and ``R`` is the rebate share ``ρ`` times the mean tax those
hours raise. The equilibrium rebate is the root of

``f(R) = ρ · mean_i T(52 · s_i · l_i(R)) − R``   (USD per worker; with survey weights
``w_i`` the mean is ``Σ w_i T_i / Σ w_i``, revenue per person).

Leisure is normal: the worker's objective ``u(y(l) + R) − v(l)`` has decreasing
differences in ``(l, R)`` whenever the net-of-tax wage is non-negative (rates ≤ 100 %),
so each ``l_i(R)`` is non-increasing in ``R`` (Topkis), and ``T`` is non-decreasing.
``f`` is therefore strictly decreasing with slope ≤ −1 and changes sign exactly once on
``[0, ρ · revenue at R = 0]``. The plain iteration ``R ← ρ · revenue(R)`` alternates
around the root and diverges when income effects are strong (at rates near 100 % with
η = 2 it swings between $9k and $72k), so instead:

1. ``R₀`` = the status-quo rebate (a good guess for most schedules), ``R₁ = R₀ + f(R₀)``:
   by the monotonicity above, ``R₀`` and ``R₁`` bracket the root;
2. Illinois regula falsi on the bracket (superlinear, never leaves the bracket) until
   ``|f(R)| ≤ 1e-6 USD + 1e-9 · R``, at most :data:`MAX_ITERATIONS` steps.

A worker whose best response jumps between brackets makes ``f`` jump (by that worker's
change in tax × ρ / N); if the root sits inside such a jump there is no exact
equilibrium in pure strategies. The bracket then closes on the jump (detected as soon as
the bracket is narrower than 1/20 of the residual at both ends), the point with the
smaller residual is returned and the result is flagged ``converged = False`` with its
residual, which is at most the jump. The oracle only enacts converged schedules.

Everything is vectorised over a batch of schedules; each schedule's iterates depend only
on its own values, so a schedule gives the same equilibrium alone or inside any batch
(the oracle's claimed welfare is exactly what enacting its schedule yields).

Quasi-linear utility has no income effects: hours ignore the rebate, one best response
is the equilibrium (residual 0, converged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.best_response import best_response_hours
from llmecon.economy.schedule import tax_of_rates
from llmecon.economy.utility import WEEKS_PER_YEAR, UtilityConfig

FloatArray = NDArray[np.float64]

#: Most regula-falsi steps after the two bracketing evaluations.
MAX_ITERATIONS = 100
#: Convergence: ``|f(R)| ≤ ABS_TOL_USD + REL_TOL · |R|``.
ABS_TOL_USD = 1e-6
REL_TOL = 1e-9
#: A bracket narrower than this fraction of the residual at both of its ends holds a
#: jump of ``f`` (``|f'|`` is 1 plus the income-effect response of revenue, of order 1).
JUMP_RATIO = 0.05


@dataclass(frozen=True)
class RebateEquilibrium:
    """Equilibrium of a batch of ``S`` schedules for ``N`` workers.

    Attributes:
        weekly_hours: ``(S, N)`` best responses to ``rebate_usd``.
        rebate_usd: ``(S,)`` the rebate (USD per worker) the hours respond to.
        realised_rebate_usd: ``(S,)`` ``ρ`` × the mean tax those hours raise.
        residual_usd: ``(S,)`` realised − anticipated rebate (0 at an exact equilibrium).
        converged: ``(S,)`` whether ``|residual|`` is within the tolerance.
        evaluations: ``(S,)`` best responses computed for each schedule.
    """

    weekly_hours: FloatArray
    rebate_usd: FloatArray
    realised_rebate_usd: FloatArray
    residual_usd: FloatArray
    converged: NDArray[np.bool_]
    evaluations: NDArray[np.int64]


def tolerance_usd(rebate_usd: FloatArray) -> FloatArray:
    """Largest residual counted as converged at rebate ``R`` (USD per worker)."""
    return ABS_TOL_USD + REL_TOL * np.abs(rebate_usd)


def solve_rebate_equilibrium(
    hourly_wage: FloatArray,
    psi: FloatArray,
    edges: ArrayLike,
    rates: ArrayLike,
    config: UtilityConfig,
    start_rebate_usd: float,
    weight: FloatArray | None = None,
) -> RebateEquilibrium:
    """Within-year equilibrium of each rate vector in ``rates`` ``(S, B)``.

    ``start_rebate_usd`` is the first guess (the economy passes its status-quo rebate);
    ``weight`` the workers' survey weights (``None``: each counts once).
    """
    s = np.asarray(hourly_wage, dtype=float)
    e = np.asarray(edges, dtype=float)
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    n_sched = r.shape[0]
    share = config.rebate_share

    def respond(idx: NDArray[np.intp], rebate: FloatArray) -> tuple[FloatArray, FloatArray]:
        hours = best_response_hours(s, psi, e, r[idx], config, rebate)
        if hours.ndim == 1:
            hours = hours[None, :]
        tax = tax_of_rates(e, r[idx], WEEKS_PER_YEAR * s[None, :] * hours)
        if weight is None:
            return hours, share * tax.mean(axis=1)
        return hours, share * (tax @ weight) / weight.sum()

    every = np.arange(n_sched)
    start = np.full(n_sched, float(start_rebate_usd))
    hours, realised = respond(every, start)
    if config.crra is None:  # hours ignore the rebate: already the equilibrium
        return RebateEquilibrium(
            hours,
            realised.copy(),
            realised,
            np.zeros(n_sched),
            np.ones(n_sched, dtype=bool),
            np.ones(n_sched, dtype=np.int64),
        )

    best_r = start.copy()
    best_f = realised - start
    best_realised = realised.copy()
    evaluations = np.ones(n_sched, dtype=np.int64)
    done = np.abs(best_f) <= tolerance_usd(best_r)

    # Second point: one fixed-point step, on the other side of the root.
    idx = np.flatnonzero(~done)
    lo = np.zeros(n_sched)
    hi = np.zeros(n_sched)
    f_lo = np.full(n_sched, np.nan)
    f_hi = np.full(n_sched, np.nan)
    side = np.zeros(n_sched, dtype=np.int8)  # which end moved last: +1 lo, −1 hi
    if idx.size:
        r1 = realised[idx].copy()
        h1, g1 = respond(idx, r1)
        evaluations[idx] += 1
        f1 = g1 - r1
        _keep_best(idx, r1, f1, g1, h1, best_r, best_f, best_realised, hours)
        f0 = realised[idx] - start[idx]
        up = f0 > 0  # f(R₀) > 0: R₀ below the root, R₁ above
        lo[idx] = np.where(up, start[idx], r1)
        f_lo[idx] = np.where(up, f0, f1)
        hi[idx] = np.where(up, r1, start[idx])
        f_hi[idx] = np.where(up, f1, f0)
        # Theory guarantees a sign change; if rounding breaks it, fall back to the hard
        # bounds (f(0) ≥ 0 since rates ≥ 0; f(R) < 0 above ρ · revenue at R = 0).
        bad_lo = ~(f_lo[idx] > 0)
        bad_hi = ~(f_hi[idx] < 0)
        lo[idx[bad_lo]], f_lo[idx[bad_lo]] = 0.0, np.nan
        hi[idx[bad_hi]] = np.maximum(hi[idx[bad_hi]], lo[idx[bad_hi]]) * 2.0 + 1.0
        f_hi[idx[bad_hi]] = np.nan
        done[idx] = np.abs(f1) <= tolerance_usd(r1)

    # True residuals at the bracket ends (Illinois scales f_lo/f_hi, not these).
    size_lo, size_hi = np.abs(f_lo), np.abs(f_hi)
    for _ in range(MAX_ITERATIONS):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        a, b, fa, fb = lo[idx], hi[idx], f_lo[idx], f_hi[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            trial = (a * fb - b * fa) / (fb - fa)
        mid = 0.5 * (a + b)
        inside = np.isfinite(trial) & (trial > a) & (trial < b)
        trial = np.where(inside, trial, mid)
        h, g = respond(idx, trial)
        evaluations[idx] += 1
        f = g - trial
        _keep_best(idx, trial, f, g, h, best_r, best_f, best_realised, hours)
        pos = f > 0
        neg = f < 0
        # Illinois: halve the stale end's value when the same end moves twice in a row.
        f_hi[idx[pos & (side[idx] == 1)]] *= 0.5
        f_lo[idx[neg & (side[idx] == -1)]] *= 0.5
        lo[idx[pos]], f_lo[idx[pos]], side[idx[pos]] = trial[pos], f[pos], 1
        hi[idx[neg]], f_hi[idx[neg]], side[idx[neg]] = trial[neg], f[neg], -1
        size_lo[idx[pos]] = f[pos]
        size_hi[idx[neg]] = -f[neg]
        # A jump: the bracket is so narrow that the smooth part of f (slope of order 1)
        # cannot account for the residual left at both ends.
        width = hi[idx] - lo[idx]
        jump = width <= JUMP_RATIO * np.fmin(size_lo[idx], size_hi[idx])
        collapsed = (width <= tolerance_usd(hi[idx])) | jump
        done[idx] = (np.abs(f) <= tolerance_usd(trial)) | collapsed

    return RebateEquilibrium(
        hours,
        best_r,
        best_realised,
        best_f,
        np.abs(best_f) <= tolerance_usd(best_r),
        evaluations,
    )


def _keep_best(
    idx: NDArray[np.intp],
    rebate: FloatArray,
    residual: FloatArray,
    realised: FloatArray,
    hours: FloatArray,
    best_r: FloatArray,
    best_f: FloatArray,
    best_realised: FloatArray,
    best_hours: FloatArray,
) -> None:
    """Record, per schedule, the point with the smallest ``|f|`` seen so far."""
    better = np.abs(residual) < np.abs(best_f[idx])
    where = idx[better]
    best_r[where] = rebate[better]
    best_f[where] = residual[better]
    best_realised[where] = realised[better]
    best_hours[where] = hours[better]
