"""Exact rational best response to any piecewise-linear schedule (docs/design.md §2).

On each bracket segment the worker's objective is concave in hours, so the segment's
maximiser is the interior first-order solution clipped to the hours that keep income in
that segment. Evaluating every segment's candidate and keeping the best is exact for
any schedule, including non-monotone (non-convex) ones. Everything is vectorised over
agents × brackets, and over a leading batch of schedules for the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.economy.utility import (
    WEEKS_PER_YEAR,
    UtilityConfig,
    consumption_utility,
    labour_disutility,
)

FloatArray = NDArray[np.float64]

#: Most safeguarded Newton steps of the CRRA segment solver. From a good start hours
#: are exact to rounding in one to three steps (quadratic convergence); a poor start (a
#: warm start from an end of the segment, moved far along a tangent) can take a few
#: bisections first. Bisection alone would halve the bracket in log hours (width < 40)
#: below :data:`_Y_TOL` in 60 steps, so none is ever cut short; converged elements are
#: dropped from the loop, so the rare stragglers cost little.
_NEWTON_STEPS = 64
#: Consumption floor of the CRRA marginal utility (as in ``marginal_consumption_utility``
#: of :mod:`llmecon.economy.utility`).
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
        shape = slope.shape
        segments = CrraSegments.of(
            slope.reshape(shape[0], -1),
            np.broadcast_to(intercept[:, None, :], shape).reshape(shape[0], -1),
            np.broadcast_to(psi[:, None], shape[1:]).ravel(),
            seg_lo.ravel(),
            np.maximum(seg_hi, seg_lo).ravel(),
            config,
        )
        hours, value = segments.solve(rebate, config)
        hours, value = hours.reshape(shape), value.reshape(shape)

    value = np.where(valid[None, :, :], value, -np.inf)
    best = np.argmax(value, axis=-1)
    return np.take_along_axis(hours, best[..., None], axis=-1)[..., 0]


@dataclass(frozen=True)
class CrraSegments:
    """``S × E`` CRRA segment problems: ``E`` segments (a worker on one bracket) under
    each of ``S`` schedules, with their rebate-free parts computed.

    Problem ``(j, k)``: consumption ``slope · h + intercept + R`` for hours
    ``h ∈ [lo, hi]`` and a rebate ``R`` given at :meth:`solve`. What depends only on
    the segment (its ends, their logs, the disutility there) is stored once per
    segment ``(E,)``; what depends on the schedule too, ``(S, E)``. Nothing here
    depends on ``R``, so a solve across several rebates (the within-year equilibrium)
    repeats only the rest.
    """

    slope: FloatArray
    """``(S, E)`` consumption per weekly hour, ``52 s (1 − τ_b)``."""
    intercept: FloatArray
    """``(S, E)`` consumption at zero hours before the rebate, ``τ_b m_b − T(m_b)``."""
    log_slope: FloatArray
    psi: FloatArray
    """``(E,)`` the segment's worker's disutility weight."""
    lo: FloatArray
    hi: FloatArray
    left: FloatArray
    """``(E,)`` log of ``lo`` (floored at :data:`_MIN_HOURS`)."""
    right: FloatArray
    log_p: FloatArray
    """``(E,)`` ``log(52ψ)``."""
    v_lo: FloatArray
    """``(E,)`` the disutility at ``lo``."""
    v_hi: FloatArray
    rises_below: FloatArray
    """``(S, E)`` the objective rises at ``lo`` exactly when the rebate is below this."""
    falls_above: FloatArray
    """``(S, E)`` the objective falls at ``hi`` exactly when the rebate is above this."""

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
        """Problems from ``slope`` and ``intercept`` ``(S, E)`` and the segments' ``psi``,
        ``lo`` and ``hi`` ``(E,)``."""
        eps = config.elasticity
        eta = float(config.crra or 0.0)
        hi = np.maximum(hi, lo)
        p = WEEKS_PER_YEAR * psi
        with np.errstate(divide="ignore", invalid="ignore"):
            log_slope, log_p = np.log(slope), np.log(p)
            left = np.log(np.maximum(lo, _MIN_HOURS))
            right = np.log(np.maximum(hi, _MIN_HOURS))
        # The disutility side of the FOC at each end, log(52ψ) + log(end)/ε (−∞ at zero
        # hours, where the marginal disutility vanishes).
        g_lo = np.where(lo > 0, log_p + left / eps, -np.inf)
        g_hi = np.where(hi > 0, log_p + right / eps, -np.inf)
        k = 1.0 + 1.0 / eps
        v_lo, v_hi = p * lo**k / k, p * hi**k / k
        # The derivative's sign at an end, F = log slope − η log c − g > 0, is c < c* =
        # exp((log slope − g)/η), i.e. a rebate below c* − slope·end − intercept (never,
        # when c* is under the consumption floor; NaN, for a zero slope at zero hours,
        # counts as never too: the derivative 0 − 0 is not positive). So a solve tests
        # each end with one comparison of the rebate instead of a logarithm per rebate.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            c_lo = np.exp((log_slope - g_lo) / eta)
            c_hi = np.exp((log_slope - g_hi) / eta)
            rises_below = np.where(c_lo > _MIN_CONSUMPTION, c_lo - slope * lo - intercept, -np.inf)
            falls_above = np.where(c_hi > _MIN_CONSUMPTION, c_hi - slope * hi - intercept, -np.inf)
        return cls(
            slope,
            intercept,
            log_slope,
            psi,
            lo,
            hi,
            left,
            right,
            log_p,
            v_lo,
            v_hi,
            rises_below,
            falls_above,
        )

    def rows(self, idx: NDArray[np.intp]) -> CrraSegments:
        """The problems of schedules ``idx`` (the segment parts are shared)."""
        return replace(
            self,
            slope=self.slope[idx],
            intercept=self.intercept[idx],
            log_slope=self.log_slope[idx],
            rises_below=self.rises_below[idx],
            falls_above=self.falls_above[idx],
        )

    def solve(
        self,
        rebate_usd: FloatArray,
        config: UtilityConfig,
        start: FloatArray | None = None,
        start_rebate_usd: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Each problem's maximising hours and objective value ``(S, E)`` at
        ``rebate_usd`` (one per schedule, ``(S,)``, or one for all).

        The segment objective ``U(slope·h + base) − ψ·52·h^(1+1/ε)/(1+1/ε)`` is strictly
        concave, so its derivative decreases: the optimum is the lower end when the
        derivative is ≤ 0 there, the upper end when it is ≥ 0 there, and otherwise the
        root of ``F(y) = log slope − η log c − log(52ψ) − y/ε`` in ``y = log h`` (the
        derivative's sign; at the ends it is read off the rebate thresholds prepared by
        :meth:`of`). Newton's method on
        ``F`` starts from the root at ``base = 0`` (clipped to the segment), or from
        ``start`` hours where positive: a solution at a nearby rebate (fewer steps, the
        same root), moved along its tangent when ``start_rebate_usd`` ``(S,)`` says
        which rebate it answered; safeguarded by bisection.
        """
        eps = config.elasticity
        eta = float(config.crra or 0.0)
        rebate = np.broadcast_to(np.asarray(rebate_usd, dtype=float), self.slope.shape[:1])
        r = rebate[:, None]
        base = self.intercept + r
        at_lo = r >= self.rises_below  # neither threshold is NaN (see `of`)
        interior = ~at_lo & (r > self.falls_above)
        hours = np.where(at_lo, self.lo, self.hi)
        dis = np.where(at_lo, self.v_lo, self.v_hi)
        # Newton only where the optimum is interior: elsewhere an end wins (most
        # segments of most workers). The solve is elementwise, so compressing changes
        # no result. (Flat indices: much cheaper in numpy than 2-D ones or masks.)
        at = np.flatnonzero(interior)
        if at.size:
            h, v = self._interior_root(
                at, np.take(base, at), rebate, eta, eps, start, start_rebate_usd
            )
            np.put(hours, at, h)
            np.put(dis, at, v)
        value = consumption_utility(self.slope * hours + base, config.crra) - dis
        return hours, value

    def _interior_root(
        self,
        at: NDArray[np.intp],
        bs: FloatArray,
        rebate: FloatArray,
        eta: float,
        eps: float,
        start: FloatArray | None,
        start_rebate_usd: FloatArray | None,
    ) -> tuple[FloatArray, FloatArray]:
        """Roots (hours) and disutility there of the interior problems at flat
        positions ``at`` of the ``(S, E)`` problems."""
        n_seg = self.lo.size
        row = at // n_seg
        col = at - row * n_seg
        sl, log_slope = np.take(self.slope, at), np.take(self.log_slope, at)
        log_p, left, right = (
            np.take(self.log_p, col),
            np.take(self.left, col),
            np.take(self.right, col),
        )
        inv_eps = 1.0 / eps
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            target = log_slope - log_p  # F(y) = target − η log c − y/ε
            y = None
            if start is not None:
                warm = np.take(start, at)
                if start_rebate_usd is not None:
                    # Along the tangent: an interior root moves with the rebate by
                    # dy/dR = −ηε / (c + ηε · slope · h).
                    eta_eps = eta * eps
                    moved = np.take(rebate - start_rebate_usd, row)
                    c = sl * warm + bs - moved
                    warm = warm * np.exp(-eta_eps * moved / (c + eta_eps * sl * warm))
                positive = warm > 0
                if positive.all():
                    y = np.clip(np.log(warm), left, right)
            if y is None:
                # The root when slope·h + base = 0 dominates: a cold start.
                cold = (target - eta * log_slope) / (eta + inv_eps)
                cold = np.where(np.isnan(cold), 0.5 * (left + right), np.clip(cold, left, right))
                y = cold if start is None else np.where(positive, np.log(warm), cold)
                y = np.clip(y, left, right)
            solved = y.copy()
            # Stopped elements stay put until compressed away, so the result does not
            # depend on which other elements share the batch.
            stopped = np.zeros(y.size, dtype=bool)
            # Elements whose step moved y by at most _Y_TOL have converged (quadratic
            # convergence: the step's own error is far below rounding); drop them.
            # Rounding can keep a converged element alternating between neighbouring
            # floats, so waiting for an exact fixed point would run every step.
            live = np.arange(y.size)
            for _ in range(_NEWTON_STEPS):
                h = np.exp(y)
                sh = sl * h
                c = sh + bs
                floor = c <= _MIN_CONSUMPTION
                c = np.maximum(c, _MIN_CONSUMPTION)
                f = target - eta * np.log(c) - y * inv_eps
                share = np.where(floor, 0.0, sh / c)
                slope_f = eta * share + inv_eps  # −F'(y) > 0
                up = f > 0
                left = np.where(up, y, left)
                right = np.where(up, right, y)
                new = y + f / slope_f
                inside = (new >= left) & (new <= right)  # false for NaN and ±inf
                new = np.where(inside, new, 0.5 * (left + right))
                if stopped.any():
                    new = np.where(stopped, y, new)
                solved[live] = new
                d = np.abs(new - y)
                moving = d > _Y_TOL
                # A Newton step of size d leaves an error of about C·d² (C = |F''|/2|F'|,
                # F'' = −η·a(1 − a) with a = slope·h/c): done when that is below _Y_TOL.
                small = eta * share * np.abs(1.0 - share) * d * d <= (0.5 * _Y_TOL) * slope_f
                moving &= ~(inside & small & (d <= 1e-4))
                stopped = ~moving
                if 4 * np.count_nonzero(moving) <= 3 * moving.size:  # worth compressing
                    live, y, sl, bs = live[moving], new[moving], sl[moving], bs[moving]
                    target, left, right = target[moving], left[moving], right[moving]
                    stopped = stopped[moving]
                    if live.size == 0:
                        break
                else:
                    y = new
            hours = np.clip(np.exp(solved), np.take(self.lo, col), np.take(self.hi, col))
        return hours, labour_disutility(hours, np.take(self.psi, col), eps)
