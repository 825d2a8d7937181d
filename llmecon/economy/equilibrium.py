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

1. ``R₀`` = the status-quo rebate. Since ``f`` has slope ≤ −1 and only jumps down,
   ``R₀`` and ``R₀ + f(R₀)`` bracket the root without evaluating the second point
   (``f(0) ≥ 0`` caps it below).
2. Safeguarded Newton: ``f'(R)`` is known in closed form from the hours (an interior
   optimum obeys ``slope · u'(c) = 52ψ l^(1/ε)``, so ``dl/dR = −ηε l / (c + ηε · slope
   · l)``; workers at a kink, at 0 or at the cap do not move), so each step goes from
   the bracket end with the smaller residual along its tangent. A step that leaves the
   bracket, or that fails to shrink the residual tenfold (it crossed a jump), is
   replaced by regula falsi on the bracket, kept an eighth of the width from its ends.
   Stop when ``|f(R)| ≤ 1e-6 USD + 1e-9 · R``, at most :data:`MAX_ITERATIONS` steps.

A worker whose best response jumps between brackets makes ``f`` jump (by that worker's
change in tax × ρ / N); if the root sits inside such a jump there is no exact
equilibrium in pure strategies. When Newton stalls and exactly one worker changes
position (bracket or kink) between the bracket ends, the bracket is split at that
worker's switch, located on that worker alone (its best response depends only on the
rebate it anticipates: ~1/N of a full evaluation per pass) to a hundredth of the
tolerance; then ``f`` is evaluated just before the switch and, if the root lies beyond,
just after it. Either the root is on one smooth side (Newton finishes it) or the bracket
has closed on the jump: the point with the smaller residual is returned, flagged
``converged = False`` with its residual, which is at most the jump. With several workers
switching, regula falsi narrows the bracket until one is left. The oracle only enacts
converged schedules.

Everything is vectorised over a batch of schedules; each schedule's iterates depend only
on its own values, so a schedule gives the same equilibrium alone or inside any batch
(the oracle's claimed welfare is exactly what enacting its schedule yields).

Between iterates only the rebate moves: :class:`_Responder` prepares every segment
problem's rebate-free parts once per schedule and starts each root search from the
previous iterate's hours moved along their tangent.

Quasi-linear utility has no income effects: hours ignore the rebate, one best response
is the equilibrium (residual 0, converged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.best_response import CrraSegments, best_response_hours
from llmecon.economy.schedule import cumulative_tax_at_edges, tax_of_rates
from llmecon.economy.utility import WEEKS_PER_YEAR, UtilityConfig

FloatArray = NDArray[np.float64]

#: Most steps after the first evaluation.
MAX_ITERATIONS = 100
#: Convergence: ``|f(R)| ≤ ABS_TOL_USD + REL_TOL · |R|``.
ABS_TOL_USD = 1e-6
REL_TOL = 1e-9
#: A Newton step must shrink the residual by this factor, else the next step is not one.
_PROGRESS = 0.1
#: Rebates per pass when locating one worker's switch (:func:`_locate_switch`).
_SWITCH_GRID = 64
#: An income within this relative distance of a bracket edge sits on the kink.
_KINK_REL = 1e-9
#: Consumption floor (as in the utility): below it the marginal utility is constant.
_MIN_C = 1e-9


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
    every = np.arange(n_sched)
    start = np.full(n_sched, float(start_rebate_usd))
    if config.crra is None:  # hours ignore the rebate: already the equilibrium
        hours = best_response_hours(s, psi, e, r, config, start)
        realised = _Response.of(s, e, r, hours, start, config, weight, with_slope=False).rebate
        return RebateEquilibrium(
            hours,
            realised.copy(),
            realised,
            np.zeros(n_sched),
            np.ones(n_sched, dtype=bool),
            np.ones(n_sched, dtype=np.int64),
        )

    responder = _Responder(s, psi, e, r, config)

    def respond(idx: NDArray[np.intp], rebate: FloatArray) -> _Response:
        hours = responder.respond(idx, rebate)
        return _Response.of(s, e, r[idx], hours, rebate, config, weight)

    first = respond(every, start)
    hours = first.hours
    best_r = start.copy()
    best_f = first.rebate - start
    best_realised = first.rebate.copy()
    evaluations = np.ones(n_sched, dtype=np.int64)
    done = np.abs(best_f) <= tolerance_usd(best_r)

    # The first bracket needs no second evaluation: f has slope ≤ −1 and jumps only
    # down, so f(R₀ + f(R₀)) has the opposite sign of f(R₀) (and f(0) ≥ 0).
    up = best_f > 0
    lo = np.where(up, start, np.maximum(start + best_f, 0.0))
    hi = np.where(up, start + best_f, start)
    unknown = np.full(n_sched, np.nan)
    f_lo, f_hi = np.where(up, best_f, unknown), np.where(up, unknown, best_f)
    k_lo, k_hi = np.where(up, first.slope, unknown), np.where(up, unknown, first.slope)
    code_lo = np.where(up[:, None], first.code, -1)
    code_hi = np.where(up[:, None], -1, first.code)
    stalled = np.zeros(n_sched, dtype=bool)
    # After a split at a worker's switch, the rebate just past it (tried next when the
    # point just before it left the root to the right).
    past_switch = np.full(n_sched, np.nan)

    for _ in range(MAX_ITERATIONS):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        a, b = lo[idx], hi[idx]
        fa, fb = f_lo[idx], f_hi[idx]
        # Newton from each end with f's exact slope there; the end with the smaller
        # residual proposes when its step stays strictly inside the bracket.
        with np.errstate(invalid="ignore"):
            from_lo = a + fa / k_lo[idx]
            from_hi = b + fb / k_hi[idx]
            # An end only known to bound the root (f not evaluated there) may be tried.
            in_lo = (from_lo > a) & ((from_lo < b) | (np.isnan(fb) & (from_lo <= b)))
            in_hi = (from_hi < b) & ((from_hi > a) | (np.isnan(fa) & (from_hi >= a)))
            use_lo = in_lo & ~(in_hi & (-fb < fa))
        trial = np.where(use_lo, from_lo, np.where(in_hi, from_hi, 0.5 * (a + b)))
        # No progress last time (a step across a jump) or no tangent inside: regula
        # falsi on the bracket (it sees f's jumps, the tangents do not), kept an eighth
        # of the width from the ends so the bracket surely shrinks ...
        stuck = stalled[idx] | ~(in_lo | in_hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            secant = (a * fb - b * fa) / (fb - fa)
        width = b - a
        secant = np.where(np.isfinite(secant), secant, 0.5 * (a + b))
        secant = np.clip(secant, a + 0.125 * width, b - 0.125 * width)
        trial = np.where(stuck, secant, trial)
        pending = ~np.isnan(past_switch[idx])
        trial = np.where(pending, past_switch[idx], trial)
        # ... or, when a single worker changes position between the ends, split the
        # bracket at its switch (found on that worker alone, ~1/N of an evaluation).
        switched = np.count_nonzero(code_lo[idx] != code_hi[idx], axis=1)
        known = ~np.isnan(fa) & ~np.isnan(fb)
        split = np.flatnonzero(stuck & known & (switched == 1) & ~pending)
        for j in split:
            k = idx[j]
            w = int(np.argmax(code_lo[k] != code_hi[k]))
            trial[j], past_switch[k] = _locate_switch(
                s[w], psi[w], e, r[k], config, lo[k], hi[k], int(code_lo[k, w])
            )

        got = respond(idx, trial)
        evaluations[idx] += 1
        f = got.rebate - trial
        before = np.abs(best_f[idx])
        _keep_best(idx, trial, f, got.rebate, got.hours, best_r, best_f, best_realised, hours)
        # Too little progress (e.g. a step across a jump): no Newton step next time.
        stalled[idx] = np.abs(f) > _PROGRESS * before
        # The point past the switch is worth trying only if the root lies beyond the
        # point before it.
        past_switch[idx[pending]] = np.nan
        past_switch[idx[split[~(f[split] > 0)]]] = np.nan

        pos, neg = f > 0, f < 0
        for end, f_end, k_end, code_end, mask in (
            (lo, f_lo, k_lo, code_lo, pos),
            (hi, f_hi, k_hi, code_hi, neg),
        ):
            end[idx[mask]] = trial[mask]
            f_end[idx[mask]] = f[mask]
            k_end[idx[mask]] = got.slope[mask]
            code_end[idx[mask]] = got.code[mask]

        # A bracket that closed on a jump (no exact equilibrium) is settled.
        collapsed = (hi[idx] - lo[idx]) <= tolerance_usd(hi[idx])
        done[idx] = (np.abs(f) <= tolerance_usd(trial)) | collapsed

    return RebateEquilibrium(
        hours,
        best_r,
        best_realised,
        best_f,
        np.abs(best_f) <= tolerance_usd(best_r),
        evaluations,
    )


class _Responder:
    """Best responses of a batch of schedules across the rebate iterates of one solve.

    Only the rebate moves between iterates, so every segment problem's rebate-free
    parts (logs, the disutility at the segment's ends, the root search's start and
    bounds) are prepared once per schedule
    (:class:`~llmecon.economy.best_response.CrraSegments`), for the segments each
    worker reaches within the hour cap. Each later root search starts from the last
    solution moved along its tangent: an interior optimum obeys
    ``log slope − η log c − log(52ψ) − y/ε = 0`` in ``y = log h``, so
    ``dy/dR = −ηε / (c + ηε · slope · h)``; Newton's method then needs about a third of the
    steps of a cold start and finds the same root (to rounding).
    """

    def __init__(
        self,
        s: FloatArray,
        psi: FloatArray,
        e: FloatArray,
        r: FloatArray,
        config: UtilityConfig,
    ) -> None:
        self.config = config
        wage = WEEKS_PER_YEAR * s
        lmax = config.max_weekly_hours
        seg_lo = e[None, :] / wage[:, None]
        seg_hi = np.minimum(np.append(e[1:], np.inf)[None, :] / wage[:, None], lmax)
        valid = seg_lo < lmax  # segments a worker reaches within the cap
        valid[:, 0] = True
        self.shape = valid.shape
        self.worker, self.bracket = np.nonzero(valid)  # the E solved segments
        w, b = self.worker, self.bracket
        intercept = r * e[None, :] - cumulative_tax_at_edges(e, r)
        slope = wage[w][None, :] * (1.0 - r[:, b])  # (S, E)
        self.segments = CrraSegments.of(
            slope, intercept[:, b], psi[w][None, :], seg_lo[w, b], seg_hi[w, b], config
        )
        self.per_schedule = w.size
        self.hours = np.full(slope.shape, np.nan)  # last solution, (S, E)
        self.rebate = np.full(r.shape[0], np.nan)  # the rebate it answered

    def respond(self, idx: NDArray[np.intp], rebate: FloatArray) -> FloatArray:
        """Best responses ``(len(idx), N)`` of schedules ``idx`` to ``rebate``."""
        n_e = self.per_schedule
        if idx.size == self.rebate.size:
            segs = self.segments
        else:
            segs = self.segments.take((idx[:, None] * n_e + np.arange(n_e)).ravel())
        start = None
        prev = self.hours[idx].ravel()
        if not np.isnan(self.rebate[idx]).all():
            eta_eps = float(self.config.crra or 0.0) * self.config.elasticity
            last = np.repeat(self.rebate[idx], n_e)
            step = np.repeat(rebate, n_e) - last
            c = segs.slope * prev + segs.intercept + last
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                start = prev * np.exp(-eta_eps * step / (c + eta_eps * segs.slope * prev))
        hours, value = segs.solve(np.repeat(rebate, n_e), self.config, start)
        self.hours[idx] = hours.reshape(idx.size, n_e)
        self.rebate[idx] = rebate
        table = np.full((idx.size, *self.shape), -np.inf)
        table[:, self.worker, self.bracket] = value.reshape(idx.size, n_e)
        solved = np.zeros(table.shape)
        solved[:, self.worker, self.bracket] = hours.reshape(idx.size, n_e)
        best = np.argmax(table, axis=-1)
        return np.take_along_axis(solved, best[..., None], axis=-1)[..., 0]


@dataclass(frozen=True)
class _Response:
    """Best responses ``(S, N)`` to anticipated rebates ``(S,)`` and what follows.

    ``rebate``: the rebate they fund; ``slope``: ``−f'(R) = 1 − ρ · d mean T / dR``
    (≥ 1; only interior optima move with ``R``); ``code``: each worker's position,
    ``2b + 1`` inside bracket ``b``, ``2b`` on its lower edge (a kink).
    """

    hours: FloatArray
    rebate: FloatArray
    slope: FloatArray
    code: NDArray[np.int16]

    @classmethod
    def of(
        cls,
        s: FloatArray,
        e: FloatArray,
        rates: FloatArray,
        hours: FloatArray,
        rebate: FloatArray,
        config: UtilityConfig,
        weight: FloatArray | None,
        with_slope: bool = True,
    ) -> _Response:
        share = config.rebate_share
        wage = WEEKS_PER_YEAR * s[None, :]
        z = wage * hours
        tax = tax_of_rates(e, rates, z)
        realised = share * _mean(tax, weight)
        if not with_slope:
            return cls(hours, realised, np.ones_like(realised), np.zeros(z.shape, np.int16))
        b, code, on_kink = _bracket_and_position(e, z)
        # An interior optimum on its segment obeys slope·u'(c) = 52ψ·l^(1/ε); by
        # implicit differentiation dl/dR = −η ε l / (c + η ε · 52 s (1 − τ) · l).
        tau = np.take_along_axis(rates, b, axis=1)
        c = z - tax + rebate[:, None]
        eta_eps = float(config.crra or 0.0) * config.elasticity
        interior = ~on_kink & (hours < config.max_weekly_hours) & (c > _MIN_C)
        with np.errstate(divide="ignore", invalid="ignore"):
            dl = -eta_eps * hours / (c + eta_eps * wage * (1.0 - tau) * hours)
        dtax = np.where(interior, tau * wage * dl, 0.0)
        slope = 1.0 - share * _mean(dtax, weight)
        slope = np.where(np.isfinite(slope), np.maximum(slope, 1.0), 1.0)
        return cls(hours, realised, slope, code)


def _locate_switch(
    wage: float,
    psi: float,
    e: FloatArray,
    rates: FloatArray,
    config: UtilityConfig,
    lo: float,
    hi: float,
    code_lo: int,
) -> tuple[float, float]:
    """Rebates just before and just after one worker's first change of position in
    ``(lo, hi)`` (its bracket or kink, :func:`_position`), at most a hundredth of the
    convergence tolerance apart.

    A worker's best response depends on the rebate it anticipates, not on the others,
    so the switch is found on that worker alone: a grid of rebates per pass.
    """
    gap = 0.01 * float(tolerance_usd(np.array(hi)))
    s = np.array([wage])
    p = np.array([psi])
    grid_rates = np.repeat(rates[None, :], _SWITCH_GRID, axis=0)
    while hi - lo > gap:
        grid = np.linspace(lo, hi, _SWITCH_GRID + 2)[1:-1]
        hours = best_response_hours(s, p, e, grid_rates, config, grid)
        moved = np.flatnonzero(_position(e, WEEKS_PER_YEAR * wage * hours)[:, 0] != code_lo)
        if moved.size == 0:
            lo = float(grid[-1])
        else:
            first = int(moved[0])
            hi = float(grid[first])
            lo = float(grid[first - 1]) if first > 0 else lo
    return lo, hi


def _position(e: FloatArray, z: FloatArray) -> NDArray[np.int16]:
    """Where each income sits: ``2b + 1`` inside bracket ``b``, ``2b`` on edge ``m_b``
    (a kink; within a relative 1e-9, so rounding does not move a buncher)."""
    return _bracket_and_position(e, z)[1]


def _bracket_and_position(
    e: FloatArray, z: FloatArray
) -> tuple[NDArray[np.intp], NDArray[np.int16], NDArray[np.bool_]]:
    """Bracket index, position code (:func:`_position`) and whether on a kink."""
    b = np.searchsorted(e, z, side="right") - 1
    upper = np.append(e[1:], np.inf)[b]
    near_lo = z - e[b] <= _KINK_REL * e[b]
    near_hi = upper - z <= _KINK_REL * upper
    code = (2 * b + 1 - near_lo + near_hi).astype(np.int16)
    return b, code, near_lo | near_hi


def _mean(values: FloatArray, weight: FloatArray | None) -> FloatArray:
    """Per-schedule (row) mean over workers, survey-weighted when ``weight`` is given."""
    if weight is None:
        return values.mean(axis=1)
    return (values @ weight) / weight.sum()


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
