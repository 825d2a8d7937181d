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

A :class:`WarmStart` (the oracle's incumbent schedule) starts a batch of nearby
schedules at its rebate and its segment hours instead: fewer and cheaper steps to the
same root. A warm solve that converged closes with one tangent step to the root
(:func:`_polish`), so its value does not depend on where in the tolerance the start
left it. Cold solves are untouched: :meth:`Economy.evaluate` settles a schedule exactly
as before.

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
        weekly_hours: ``(S, N)`` best responses to ``rebate_usd`` (after a warm start,
            moved along their tangents by the last Newton step: exact to its square,
            see :func:`_polish`).
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
    segment_hours: FloatArray | None = None
    """``(S, E)`` the last solution of every reachable segment problem (CRRA only)."""
    segment_rebate_usd: FloatArray | None = None
    """``(S,)`` the rebate ``segment_hours`` answer."""

    def warm_start(self, k: int) -> WarmStart | None:
        """Schedule ``k``'s solution as a start for nearby schedules (``None`` without
        income effects, where there is nothing to iterate)."""
        if self.segment_hours is None or self.segment_rebate_usd is None:
            return None
        return WarmStart(
            float(self.rebate_usd[k]),
            self.segment_hours[k].copy(),
            float(self.segment_rebate_usd[k]),
        )


@dataclass(frozen=True)
class WarmStart:
    """A solved schedule's equilibrium, to start the solve of nearby schedules from (same
    workers, edges and preferences).

    A start only changes how many steps a solve takes, not where it stops: the root of
    ``f`` is unique, so a converged equilibrium is the same (to the tolerance, and
    after the closing tangent step of :func:`_polish` to far below it) from any start.
    Only the point returned inside a jump of ``f`` (no exact equilibrium) may depend
    on it.

    Attributes:
        rebate_usd: the first rebate to try (the solved schedule's equilibrium rebate).
        segment_hours: ``(E,)`` hours on every reachable segment problem, the root
            searches' starts (moved along their tangent to the first rebate).
        segment_rebate_usd: the rebate ``segment_hours`` answer.
    """

    rebate_usd: float
    segment_hours: FloatArray
    segment_rebate_usd: float


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
    warm: WarmStart | None = None,
) -> RebateEquilibrium:
    """Within-year equilibrium of each rate vector in ``rates`` ``(S, B)``.

    ``start_rebate_usd`` is the first guess (the economy passes its status-quo rebate);
    ``weight`` the workers' survey weights (``None``: each counts once); ``warm``, the
    solution of a nearby schedule, replaces the first guess and starts every segment's
    root search (the oracle's neighbouring candidates: fewer and cheaper steps).
    """
    s = np.asarray(hourly_wage, dtype=float)
    e = np.asarray(edges, dtype=float)
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    n_sched = r.shape[0]
    every = np.arange(n_sched)
    start = np.full(n_sched, float(start_rebate_usd if warm is None else warm.rebate_usd))
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
    if warm is not None:
        responder.prime(warm.segment_hours, warm.segment_rebate_usd)

    def respond(idx: NDArray[np.intp], rebate: FloatArray) -> _Response:
        hours = responder.respond(idx, rebate)
        return _Response.of(s, e, r[idx], hours, rebate, config, weight)

    first = respond(every, start)
    hours = first.hours
    best_r = start.copy()
    best_f = first.rebate - start
    best_realised = first.rebate.copy()
    best = _Best(best_r, best_f, best_realised, hours, first.slope.copy(), first.dl.copy())
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
        best.keep(idx, trial, f, got)
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

    converged = np.abs(best_f) <= tolerance_usd(best_r)
    if warm is not None:
        _polish(s, e, r, config, weight, best, converged)
    return RebateEquilibrium(
        best.hours,
        best.rebate,
        best.realised,
        best.residual,
        converged,
        evaluations,
        responder.hours,
        responder.rebate,
    )


@dataclass(frozen=True)
class _Best:
    """Per schedule, the point with the smallest ``|f|`` seen so far (updated in place):
    the rebate, ``f`` there, the realised rebate, the hours, ``−f'`` and each worker's
    ``dl/dR``."""

    rebate: FloatArray
    residual: FloatArray
    realised: FloatArray
    hours: FloatArray
    slope: FloatArray
    dl: FloatArray

    def keep(
        self, idx: NDArray[np.intp], rebate: FloatArray, f: FloatArray, got: _Response
    ) -> None:
        """Take the points of schedules ``idx`` that improve on the best."""
        better = np.abs(f) < np.abs(self.residual[idx])
        where = idx[better]
        self.rebate[where] = rebate[better]
        self.residual[where] = f[better]
        self.realised[where] = got.rebate[better]
        self.hours[where] = got.hours[better]
        self.slope[where] = got.slope[better]
        self.dl[where] = got.dl[better]


def _polish(
    s: FloatArray,
    e: FloatArray,
    r: FloatArray,
    config: UtilityConfig,
    weight: FloatArray | None,
    best: _Best,
    converged: NDArray[np.bool_],
) -> None:
    """Move each converged warm-started equilibrium one Newton step on, along the
    tangent, without another best response.

    A warm start begins next to the root, where the first residual often already meets
    the tolerance: each value would sit wherever in the tolerance its start happened to
    be, noise that a search comparing close candidates chases (the oracle: 40 sweeps
    instead of 5 in one cell). The step ``δ = f / (−f')`` to the root and every
    interior worker's ``dl/dR · δ`` leave an error of order ``δ²`` (``|δ|`` is within
    the tolerance, microdollars), so the value no longer depends on the start. Cold
    solves (:meth:`Economy.evaluate`, the oracle's final claim) are not polished.
    """
    k = np.flatnonzero(converged & (best.residual != 0))
    if k.size == 0:
        return
    step = best.residual[k] / best.slope[k]
    hours = np.clip(best.hours[k] + best.dl[k] * step[:, None], 0.0, config.max_weekly_hours)
    realised = config.rebate_share * _mean(
        tax_of_rates(e, r[k], WEEKS_PER_YEAR * s[None, :] * hours), weight
    )
    best.hours[k] = hours
    best.rebate[k] += step
    best.realised[k] = realised
    best.residual[k] = realised - best.rebate[k]


class _Responder:
    """Best responses of a batch of schedules across the rebate iterates of one solve.

    Only the rebate moves between iterates, so every segment problem's rebate-free
    parts (logs, the disutility at the segment's ends) are prepared once per solve
    (:class:`~llmecon.economy.best_response.CrraSegments`), for the segments each
    worker reaches within the hour cap. Each later root search starts from the last
    solution moved along its tangent: an interior optimum obeys
    ``log slope − η log c − log(52ψ) − y/ε = 0`` in ``y = log h``, so
    ``dy/dR = −ηε / (c + ηε · slope · h)``; Newton's method then needs about a third of the
    steps of a cold start and finds the same root (to rounding).

    Segments are laid out bracket by bracket, each bracket's workers in one order (those
    reaching the most brackets first): a worker reaches a prefix of the brackets, so
    bracket ``b``'s segments are the first ``n_b`` workers of that order, and the best
    segment of every worker is a running maximum over contiguous slices.
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
        # Brackets a worker reaches within the hour cap (a prefix; the first always).
        reach = np.maximum(np.count_nonzero(e[None, :] / wage[:, None] < lmax, axis=1), 1)
        self.order = np.argsort(-reach, kind="stable")
        self.inverse = np.argsort(self.order)
        counts = np.count_nonzero(reach[None, :] > np.arange(e.size)[:, None], axis=1)
        self.bounds = np.concatenate([[0], np.cumsum(counts)])  # bracket b's slice
        worker = np.concatenate([self.order[:n] for n in counts])
        bracket = np.repeat(np.arange(e.size), counts)
        seg_lo = e[bracket] / wage[worker]
        upper = np.append(e[1:], np.inf)[bracket]
        seg_hi = np.minimum(upper / wage[worker], lmax)
        intercept = r * e[None, :] - cumulative_tax_at_edges(e, r)
        slope = wage[worker][None, :] * (1.0 - r[:, bracket])  # (S, E)
        self.segments = CrraSegments.of(
            slope, intercept[:, bracket], psi[worker], seg_lo, seg_hi, config
        )
        self.per_schedule = worker.size
        self.hours = np.full(slope.shape, np.nan)  # last solution, (S, E)
        self.rebate = np.full(r.shape[0], np.nan)  # the rebate it answered

    def prime(self, segment_hours: FloatArray, rebate_usd: float) -> None:
        """Start every schedule's root searches from ``segment_hours`` ``(E,)``, solved
        at ``rebate_usd`` (for another schedule on the same segments)."""
        if segment_hours.shape != (self.per_schedule,):
            raise ValueError(
                f"warm start has {segment_hours.shape} segment hours, need {self.per_schedule}"
            )
        self.hours[:] = segment_hours
        self.rebate[:] = rebate_usd

    def respond(self, idx: NDArray[np.intp], rebate: FloatArray) -> FloatArray:
        """Best responses ``(len(idx), N)`` of schedules ``idx`` to ``rebate``."""
        full = idx.size == self.rebate.size
        segs = self.segments if full else self.segments.rows(idx)
        last = self.rebate[idx]
        warm = not np.isnan(last).any()
        hours, value = segs.solve(
            rebate,
            self.config,
            self.hours[idx] if warm else None,
            last if warm else None,
        )
        self.hours[idx] = hours
        self.rebate[idx] = rebate
        # The best segment of each worker (ties to the lowest bracket), bracket by bracket.
        n = self.bounds[1]
        best_value = value[:, :n].copy()
        best_hours = hours[:, :n].copy()
        for b in range(1, self.bounds.size - 1):
            lo, hi = self.bounds[b], self.bounds[b + 1]
            m = hi - lo
            better = value[:, lo:hi] > best_value[:, :m]
            np.copyto(best_value[:, :m], value[:, lo:hi], where=better)
            np.copyto(best_hours[:, :m], hours[:, lo:hi], where=better)
        return best_hours[:, self.inverse]


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
    dl: FloatArray
    """``(S, N)`` ``dl/dR`` of each worker (0 off an interior optimum)."""

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
        if not with_slope:
            realised = share * _mean(tax_of_rates(e, rates, z), weight)
            zero = np.zeros(z.shape)
            return cls(hours, realised, np.ones_like(realised), zero.astype(np.int16), zero)
        b, code, on_kink = _bracket_and_position(e, z)
        # T(z) as tax_of_rates computes it, from the brackets already found.
        tau = np.take_along_axis(rates, b, axis=1)
        cum = cumulative_tax_at_edges(e, rates)
        tax = np.take_along_axis(cum, b, axis=1) + tau * (z - e[b])
        realised = share * _mean(tax, weight)
        # An interior optimum on its segment obeys slope·u'(c) = 52ψ·l^(1/ε); by
        # implicit differentiation dl/dR = −η ε l / (c + η ε · 52 s (1 − τ) · l).
        c = z - tax + rebate[:, None]
        eta_eps = float(config.crra or 0.0) * config.elasticity
        interior = ~on_kink & (hours < config.max_weekly_hours) & (c > _MIN_C)
        with np.errstate(divide="ignore", invalid="ignore"):
            dl = -eta_eps * hours / (c + eta_eps * wage * (1.0 - tau) * hours)
        dl = np.where(interior, dl, 0.0)
        slope = 1.0 - share * _mean(tau * wage * dl, weight)
        slope = np.where(np.isfinite(slope), np.maximum(slope, 1.0), 1.0)
        return cls(hours, realised, slope, code, dl)


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
    so the switch is found on that worker alone: a grid of rebates per pass, its
    segment problems prepared once (the arithmetic of :func:`best_response_hours`, the
    same hours).
    """
    gap = 0.01 * float(tolerance_usd(np.array(hi)))
    w = WEEKS_PER_YEAR * wage
    lmax = config.max_weekly_hours
    reach = max(int(np.count_nonzero(e / w < lmax)), 1)
    seg_lo = e[:reach] / w
    seg_hi = np.minimum(np.append(e[1:], np.inf)[:reach] / w, lmax)
    intercept = (rates * e - cumulative_tax_at_edges(e, rates))[:reach]
    shape = (_SWITCH_GRID, reach)
    segments = CrraSegments.of(
        np.broadcast_to(w * (1.0 - rates[:reach]), shape),
        np.broadcast_to(intercept, shape),
        np.full(reach, psi),
        seg_lo,
        np.maximum(seg_hi, seg_lo),
        config,
    )
    while hi - lo > gap:
        grid = np.linspace(lo, hi, _SWITCH_GRID + 2)[1:-1]
        seg_hours, value = segments.solve(grid, config)
        best = np.argmax(value, axis=1)  # ties to the lowest bracket
        hours = seg_hours[np.arange(_SWITCH_GRID), best]
        moved = np.flatnonzero(_position(e, w * hours[:, None])[:, 0] != code_lo)
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
