"""Exact rational best response to any piecewise-linear schedule (docs/design.md §2).

On each bracket segment the worker's objective is concave in hours, so the segment's
maximiser is the interior first-order solution clipped to the hours that keep income in
that segment. Evaluating every segment's candidate and keeping the best is exact for
any schedule, including non-monotone (non-convex) ones. Everything is vectorised over
agents × brackets, and over a leading batch of schedules for the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.economy.utility import (
    WEEKS_PER_YEAR,
    UtilityConfig,
    consumption_utility,
    labour_disutility,
    marginal_consumption_utility,
)

FloatArray = NDArray[np.float64]

#: Safeguarded Newton steps of the CRRA segment solver (quadratic convergence: hours
#: are exact to rounding well before this; see tests/economy/test_best_response.py).
_NEWTON_STEPS = 7
#: Consumption floor of the CRRA marginal utility (as in ``marginal_consumption_utility``).
_MIN_CONSUMPTION = 1e-9
#: Smallest weekly hours of the CRRA root search (its bracket lives in log hours).
_MIN_HOURS = 1e-12
#: The root search stops for an element once a step moves its log hours by at most this.
_Y_TOL = 1e-14
_BLOCK_ELEMENTS = 1 << 16
#: Smallest group (schedules × workers × brackets) handled together: smaller groups
#: join the next one up (each block costs a fixed overhead of numpy calls).
_MIN_GROUP_ELEMENTS = 1 << 14


def best_response_hours(
    hourly_wage: FloatArray,
    psi: FloatArray,
    edges: ArrayLike,
    rates: ArrayLike,
    config: UtilityConfig,
    rebate_usd: float | FloatArray = 0.0,
) -> FloatArray:
    """Utility-maximising weekly hours of each worker.

    Args:
        hourly_wage: ``s_i``, shape ``(N,)``.
        psi: calibrated disutility weights ``ψ_i``, shape ``(N,)``.
        edges: bracket lower edges (annual USD), shape ``(B,)``.
        rates: marginal rates, shape ``(B,)`` or a batch ``(S, B)``.
        config: preferences (ε, hour cap, optional CRRA).
        rebate_usd: the lump-sum transfer each worker takes as given (only matters
            under CRRA), a scalar or shape ``(S,)`` for a batch.

    Returns:
        Weekly hours, shape ``(N,)`` or ``(S, N)``; ties go to the lowest bracket.
    """
    edges_arr = np.asarray(edges, dtype=float)
    rates_arr = np.asarray(rates, dtype=float)
    batched = rates_arr.ndim == 2
    r = rates_arr if batched else rates_arr[None, :]  # (S, B)
    s = np.asarray(hourly_wage, dtype=float)
    p = np.asarray(psi, dtype=float)
    n_sched = r.shape[0]
    # Brackets a worker can reach within the hour cap (the first always counts).
    reach = edges_arr[None, :] / (WEEKS_PER_YEAR * s[:, None]) < config.max_weekly_hours
    counts = np.maximum(np.count_nonzero(reach, axis=1), 1)
    order = np.argsort(counts, kind="stable")
    sorted_counts = counts[order]
    out = np.empty((n_sched, s.size))
    min_group = -(-_MIN_GROUP_ELEMENTS // (n_sched * edges_arr.size))
    # Work on groups of workers that reach the same brackets, dropping the brackets
    # none of them reaches (about half of all worker × bracket pairs on the federal
    # schedule), in blocks that keep the (S, N, B) temporaries cache-sized. Dropping
    # unreachable brackets changes no number: the last kept segment already ends at
    # the hour cap for every worker of the group.
    i = 0
    while i < s.size:
        j = int(np.searchsorted(sorted_counts, sorted_counts[i], side="right"))
        if j - i < min_group:  # merge small groups upward: fewer, larger blocks
            j = min(max(j, i + min_group), s.size)
        kept = int(sorted_counts[j - 1])
        j = min(j, i + max(1, _BLOCK_ELEMENTS // (n_sched * kept)))
        who = order[i:j]
        out[:, who] = _best_response_block(
            s[who], p[who], edges_arr[:kept], r[:, :kept], config, rebate_usd
        )
        i = j
    return out if batched else out[0]


def _best_response_block(
    s: FloatArray,
    psi: FloatArray,
    edges_arr: FloatArray,
    r: FloatArray,
    config: UtilityConfig,
    rebate_usd: float | FloatArray,
) -> FloatArray:
    lmax = config.max_weekly_hours
    eps = config.elasticity

    # Hours at which income enters / leaves each bracket, (N, B).
    seg_lo = edges_arr[None, :] / (WEEKS_PER_YEAR * s[:, None])
    upper = np.append(edges_arr[1:], np.inf)
    seg_hi = np.minimum(upper[None, :] / (WEEKS_PER_YEAR * s[:, None]), lmax)
    valid = seg_lo < lmax
    valid[:, 0] = True

    # Consumption on segment b is linear in hours: c = 52 s (1-τ_b) l + k_b + rebate,
    # with k_b = τ_b m_b − T(m_b).
    net = 1.0 - r  # (S, B)
    intercept = r * edges_arr[None, :] - cumulative_tax_at_edges(edges_arr, r)  # (S, B)
    slope = WEEKS_PER_YEAR * s[None, :, None] * net[:, None, :]  # (S, N, B)

    if config.crra is None:
        interior = (s / psi)[None, :, None] ** eps * net[:, None, :] ** eps
        hours = np.clip(interior, seg_lo, seg_hi)
        value = (
            slope * hours
            + intercept[:, None, :]
            - labour_disutility(hours, psi[None, :, None], eps)
        )
    else:
        rebate = np.broadcast_to(np.asarray(rebate_usd, dtype=float), (r.shape[0],))
        base = intercept[:, None, :] + rebate[:, None, None]
        segments = CrraSegments.of(slope, base, psi[None, :, None], seg_lo, seg_hi, config)
        hours, value = segments.solve(np.zeros(1), config)
        hours, value = hours.reshape(slope.shape), value.reshape(slope.shape)

    value = np.where(valid[None, :, :], value, -np.inf)
    best = np.argmax(value, axis=-1)
    return np.take_along_axis(hours, best[..., None], axis=-1)[..., 0]


@dataclass(frozen=True)
class CrraSegments:
    """``K`` CRRA segment problems, flattened, with their rebate-free parts computed.

    Element ``k`` is a worker (``psi``) on one bracket segment of one schedule:
    consumption ``slope · h + intercept + R`` for hours ``h ∈ [lo, hi]`` and a rebate
    ``R`` given at :meth:`solve`. What does not depend on ``R`` (logs, the disutility's
    slope at the ends, the root at ``intercept + R = 0``) is computed once here, so a
    solve across several rebates (the within-year equilibrium) repeats only the rest.
    """

    slope: FloatArray
    intercept: FloatArray
    psi: FloatArray
    lo: FloatArray
    hi: FloatArray
    dis_lo: FloatArray
    dis_hi: FloatArray
    log_slope: FloatArray
    log_p: FloatArray
    left: FloatArray
    right: FloatArray
    y0: FloatArray

    @classmethod
    def of(
        cls,
        slope: FloatArray,
        intercept: FloatArray,
        psi: FloatArray,
        lo: FloatArray,
        hi: FloatArray,
        config: UtilityConfig,
    ) -> CrraSegments:
        """Problems from arrays that broadcast together (e.g. ``(S, N, B)``); the
        disutility at the ends is computed before broadcasting (once per worker)."""
        eps = config.elasticity
        eta = float(config.crra or 0.0)
        hi = np.maximum(hi, lo)
        p = WEEKS_PER_YEAR * psi
        dis_lo, dis_hi = p * lo ** (1.0 / eps), p * hi ** (1.0 / eps)
        shape = np.broadcast_shapes(slope.shape, intercept.shape, p.shape, lo.shape)

        def flat(x: FloatArray) -> FloatArray:
            return np.broadcast_to(x, shape).ravel()

        sl, pp = flat(slope), flat(p)
        lo_f, hi_f = flat(lo), flat(hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_slope, log_p = np.log(sl), np.log(pp)
            left = np.log(np.maximum(lo_f, _MIN_HOURS))
            right = np.log(np.maximum(hi_f, _MIN_HOURS))
            # The root when intercept + rebate = 0, the usual start of the search.
            y0 = ((1.0 - eta) * log_slope - log_p) / (eta + 1.0 / eps)
        y0 = np.where(np.isnan(y0), 0.5 * (left + right), np.clip(y0, left, right))
        return cls(
            sl,
            flat(intercept),
            flat(psi),
            lo_f,
            hi_f,
            flat(dis_lo),
            flat(dis_hi),
            log_slope,
            log_p,
            left,
            right,
            y0,
        )

    def take(self, at: NDArray[np.intp]) -> CrraSegments:
        """The problems at positions ``at``."""
        return CrraSegments(*(getattr(self, f.name)[at] for f in fields(self)))

    def solve(
        self, rebate_usd: FloatArray, config: UtilityConfig, start: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Each problem's maximising hours and objective value at ``rebate_usd`` (one
        per problem, or one for all).

        The segment objective ``U(slope·h + base) − ψ·52·h^(1+1/ε)/(1+1/ε)`` is strictly
        concave, so its derivative decreases: the optimum is the lower end when the
        derivative is ≤ 0 there, the upper end when it is ≥ 0 there, and otherwise the
        root of ``F(y) = log slope − η log c − log(52ψ) − y/ε`` in ``y = log h`` (the
        derivative's sign). Newton's method on ``F`` starts from the root at ``base = 0``
        (clipped to the segment), or from ``start`` hours where positive (a solution at
        a nearby rebate: fewer steps, the same root), safeguarded by bisection.
        """
        eps = config.elasticity
        eta = float(config.crra or 0.0)
        slope = self.slope
        base = self.intercept + rebate_usd

        def derivative(h: FloatArray, dis: FloatArray) -> FloatArray:
            c = np.maximum(slope * h + base, _MIN_CONSUMPTION)
            return marginal_consumption_utility(c, config.crra) * slope - dis

        d_lo = derivative(self.lo, self.dis_lo)
        d_hi = derivative(self.hi, self.dis_hi)
        x = self.lo.copy()
        # Newton only where the optimum is interior: elsewhere an end wins (most
        # segments of most workers). The solve is elementwise, so compressing changes
        # no result.
        interior = ~(d_lo <= 0) & ~(d_hi >= 0)
        if interior.any():
            x[interior] = self._interior_root(interior, slope, base, eta, eps, start)
        hours = np.where(d_lo <= 0, self.lo, np.where(d_hi >= 0, self.hi, x))
        value = consumption_utility(slope * hours + base, config.crra) - labour_disutility(
            hours, self.psi, eps
        )
        return hours, value

    def _interior_root(
        self,
        interior: NDArray[np.bool_],
        slope: FloatArray,
        base: FloatArray,
        eta: float,
        eps: float,
        start: FloatArray | None,
    ) -> FloatArray:
        sl, bs = slope[interior], base[interior]
        log_slope, log_p = self.log_slope[interior], self.log_p[interior]
        left, right = self.left[interior], self.right[interior]
        y = self.y0[interior]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if start is not None:
                warm = start[interior]
                y = np.where(warm > 0, np.clip(np.log(warm), left, right), y)
            solved = y.copy()
            # Stopped elements stay put until compressed away, so the result does not
            # depend on which other elements share the batch.
            stopped = np.zeros(y.size, dtype=bool)
            # Elements whose step moved y by at most _Y_TOL have converged (quadratic
            # convergence: the step's own error is far below rounding); drop them.
            # Rounding can keep a converged element alternating between neighbouring
            # floats, so waiting for an exact fixed point would run every step.
            at = np.arange(y.size)
            for _ in range(_NEWTON_STEPS):
                h = np.exp(y)
                c = sl * h + bs
                floor = c <= _MIN_CONSUMPTION
                c = np.maximum(c, _MIN_CONSUMPTION)
                f = log_slope - eta * np.log(c) - log_p - y / eps
                share = np.where(floor, 0.0, sl * h / c)
                df = -eta * share - 1.0 / eps
                up = f > 0
                left = np.where(up, y, left)
                right = np.where(up, right, y)
                step = y - f / df
                inside = np.isfinite(step) & (step >= left) & (step <= right)
                new = np.where(stopped | (f == 0), y, np.where(inside, step, 0.5 * (left + right)))
                solved[at] = new
                moving = np.abs(new - y) > _Y_TOL
                # A Newton step of size d leaves an error of about C·d² (C = |F''|/2|F'|,
                # F'' = −η·a(1 − a) with a = slope·h/c): done when that is below _Y_TOL.
                curvature = eta * share * np.abs(1.0 - share) / (2.0 * np.abs(df))
                small = (np.abs(new - y) <= 1e-4) & (curvature * (new - y) ** 2 <= 0.25 * _Y_TOL)
                moving &= ~(inside & small & (f != 0))
                stopped = ~moving
                if 4 * np.count_nonzero(moving) <= 3 * moving.size:  # worth compressing
                    at, y, sl, bs = at[moving], new[moving], sl[moving], bs[moving]
                    log_slope, log_p = log_slope[moving], log_p[moving]
                    left, right = left[moving], right[moving]
                    stopped = stopped[moving]
                    if at.size == 0:
                        break
                else:
                    y = new
        return np.clip(np.exp(solved), self.lo[interior], self.hi[interior])
