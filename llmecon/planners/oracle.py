"""The oracle: the numerical optimum of the SWF over bracket rates (docs/design.md §3).

It optimises against rational best responses of the true economy, so it is the
"physical limit" a planner can reach. The SWF is piecewise smooth in the rates (workers
jump between brackets and bunch at kinks), so a gradient method alone stalls; we use
batched coordinate search (a coarse grid per rate, then successively finer local grids,
every grid evaluated as one vectorised batch) until no coordinate improves, then a
batched pattern search along axes and two-rate diagonals (:func:`_pattern_search`, which
climbs the ridges coordinate search stops on), for a population of few workers full
grids over every pair of rates (:func:`_pair_grids`, a lumpy welfare's far regions), a
bounded Powell polish and a last local coordinate sweep, and keep the best point seen.

Every schedule is scored at its within-year equilibrium, exactly as enacting it would
settle (:meth:`Economy.welfare_of_rates`), so the oracle's claimed SWF is the SWF its
schedule realises. Under CRRA a schedule whose rebate fixed point has no exact solution
(a worker's jump between brackets straddles it, see :mod:`llmecon.economy.equilibrium`)
is scored but never kept as the optimum: its value rests on a rebate the workers did
not anticipate.

With survey weights (``Population.weight``) the objective is the weighted SWF at the
weighted rebate equilibrium: :meth:`Economy.welfare_of_rates` applies them, so the
search itself needs nothing else.

Under CRRA each batch of candidates (neighbours of the best schedule so far) starts its
equilibrium from the best schedule's (:class:`~llmecon.economy.equilibrium.WarmStart`):
fewer and cheaper steps to the same equilibria. Those values are equal to a cold
solve's only to the solver's tolerance, so the best schedule is settled once more from
the status-quo start at the end and its claim is exactly what
:meth:`Economy.evaluate` gives. No rate vector is scored twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from llmecon._aio import check_interrupt
from llmecon.economy import Economy, TaxSchedule
from llmecon.economy.equilibrium import WarmStart
from llmecon.planners.base import PlannerContext, YearRecord, register_planner

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class OracleResult:
    """The optimum found and how much work it took."""

    rates: FloatArray
    swf: float
    evaluations: int
    sweeps: int
    converged: bool = True
    """Whether the schedule's within-year equilibrium converged (false only when no
    evaluated schedule had a converged equilibrium; then the best of them is kept)."""


@dataclass
class _Objective:
    economy: Economy
    edges: FloatArray
    swf: str | None
    evaluations: int = 0
    best_rates: FloatArray = field(default_factory=lambda: np.zeros(0))
    best_value: float = -np.inf
    best_converged: bool = False
    warm: WarmStart | None = None
    """The best schedule's equilibrium: candidates near it start their solve there."""
    seen: dict[bytes, tuple[float, bool]] = field(default_factory=dict)
    """Every scored rate vector's value and whether its equilibrium converged: the
    search's grids revisit points (a local grid's centre, grids clipped at a bound, a
    sweep that changed nothing), and a revisited point is not scored again. A second
    climb (:func:`optimal_rates`' start from Saez's schedule) shares the first one's."""

    def __call__(self, rates: FloatArray) -> FloatArray:
        check_interrupt()  # a notebook's interrupt: the search never awaits
        every = np.atleast_2d(rates)
        keys = [row.tobytes() for row in every]
        fresh = {key: i for i, key in enumerate(keys) if key not in self.seen}
        if fresh:
            self._score(every[list(fresh.values())])
        for i, key in enumerate(keys):  # a point another climb scored may be this one's best
            value, converged = self.seen[key]
            if key not in fresh and self._beats(value, converged):
                self.best_value, self.best_converged = value, converged
                self.best_rates, self.warm = every[i].copy(), None
        return np.array([self.seen[key][0] for key in keys])

    def _beats(self, value: float, converged: bool) -> bool:
        """Whether a schedule of ``value`` beats the best so far (a converged one always
        beats an unconverged one)."""
        if converged != self.best_converged:
            return converged or not self.best_rates.size
        return value > self.best_value

    def _score(self, batch: FloatArray) -> None:
        scored = self.economy.score_rates(self.edges, batch, self.swf, self.warm)
        values, converged = scored.welfare, scored.equilibrium.converged
        self.evaluations += batch.shape[0]
        for row, value, ok in zip(batch, values, converged, strict=True):
            self.seen[row.tobytes()] = (float(value), bool(ok))
        # the batch's best, a converged schedule before any unconverged one (_beats)
        ranked = np.where(converged, values, -np.inf) if converged.any() else values
        i = int(np.argmax(ranked))
        if self._beats(float(values[i]), bool(converged[i])):
            self.best_value = float(values[i])
            self.best_rates = batch[i].copy()
            self.best_converged = bool(converged[i])
            self.warm = scored.equilibrium.warm_start(i)

    def settle(self) -> tuple[float, bool]:
        """The best schedule's SWF and convergence as enacting it settles them.

        Scores seen during the search start from a neighbour's equilibrium, which finds
        the same equilibrium to the solver's tolerance (not bit for bit); the claim is
        the cold solve's, exactly what :meth:`Economy.evaluate` gives the schedule.
        """
        values, converged = self.economy.welfare_and_convergence_of_rates(
            self.edges, self.best_rates[None, :], self.swf
        )
        self.evaluations += 1
        return float(values[0]), bool(converged[0])


def optimal_rates(
    economy: Economy,
    edges: Sequence[float],
    *,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    swf: str | None = None,
    coarse_points: int = 41,
    refinements: int = 6,
    max_sweeps: int = 40,
    polish: bool = True,
) -> OracleResult:
    """Maximise the SWF over the bracket rates within ``[min_rate, max_rate]``."""
    e = np.asarray(edges, dtype=float)
    n = e.size
    f = _Objective(economy, e, swf)
    lo, hi = min_rate, max_rate

    starts = [np.full(n, r) for r in np.linspace(lo, hi, 21)]
    starts.append(np.clip(TaxSchedule.status_quo(tuple(e)).rates_array, lo, hi))
    f(np.stack(starts))

    coarse = np.linspace(lo, hi, coarse_points)
    step0 = (hi - lo) / max(coarse_points - 1, 1)
    sweeps = _coordinate_search(f, n, coarse, lo, hi, step0, refinements, max_sweeps)

    if polish and hi > lo:
        # Coordinate search stops on ridges (two rates that must move together); a
        # pattern search along two-rate diagonals, in steps of a fifth and then a
        # twentieth of the coarse grid's, climbs them in a few batches. Powell's bounded
        # line searches then span the whole interval along its directions, which can
        # reach a far better region no local step sees. (Measured in
        # benchmarks/bench_crra_oracle.py: Powell alone stopped 6 % of the none → oracle
        # gain short on a ridge; the pattern search alone stopped 5 % short of Powell's
        # far region in another economy.)
        _pattern_search(f, lo, hi, step0 / 5, min_step=step0 / 25)
        # With few workers a bracket's best rate depends on its neighbours' (a worker
        # moves between them), and the welfare has several basins: the same climb from
        # Saez's schedule, the first-order optimum, reaches another one, and the better
        # of the two goes on (20 stratified personas: the climb from the flat starts
        # stopped 0.08 % of the gain short, 4.4 SWF points, with brackets 4 and 5 at
        # 70 % and 12 % where 45 % and 69 % are better).
        if (saez := _saez_rates(economy, e, lo, hi, swf)) is not None:
            g = _Objective(economy, e, swf, seen=f.seen)
            g(saez[None, :])
            grid = np.linspace(lo, hi, _SECOND_GRID)
            _coordinate_search(g, n, grid, lo, hi, step0, _SECOND_REFINEMENTS, _SECOND_SWEEPS)
            if g.best_value > f.best_value:  # another basin, higher: climbed on from there
                _pattern_search(g, lo, hi, step0 / 5, min_step=step0 / 25)
                f(g.best_rates[None, :])
            f.evaluations += g.evaluations
        if (
            economy.size <= _PAIR_GRID_WORKERS
            and (economy.utility_config.crra is None or _PAIR_GRIDS_UNDER_CRRA)
            and (points := _pair_grid_points(n)) is not None
        ):
            # Few workers make the welfare lumpy: a better region can lie where two
            # rates must jump together, past what any local step or Powell sees.
            # (Under CRRA, where each schedule scored solves its equilibrium, they cost
            # 3.4–7.2 times the search's CPU and found at most 0.84 % of the gain more.)
            for _ in range(_PAIR_ROUNDS):
                if not _pair_grids(f, lo, hi, points):
                    break
                _coordinate_search(f, n, coarse, lo, hi, step0, refinements, max_sweeps)
                _pattern_search(f, lo, hi, step0 / 5, min_step=step0 / 25)
        from scipy.optimize import minimize  # ~0.6 s to import: only when polishing

        minimize(
            lambda r: -float(f(np.clip(r, lo, hi))[0]),
            f.best_rates,
            method="Powell",
            bounds=[(lo, hi)] * n,
            options={"xtol": 1e-6, "ftol": 1e-12, "maxfev": 4000},
        )  # the objective keeps the best point it saw
        x = f.best_rates.copy()
        for b in range(n):  # one more local sweep after the polish
            x = _line_search(f, x, b, None, lo, hi, step0 / 5, refinements)

    swf_value, converged = f.settle()
    return OracleResult(f.best_rates.copy(), swf_value, f.evaluations, sweeps, converged)


#: The climb from Saez's schedule tells its basin with less work than the first climb
#: (the pattern search and the polish go on from the better one): at most 3 coordinate
#: sweeps (most climbs settle in 2–3), each rate's coarse grid of 11 points (10-point
#: steps) and 3 finer grids, so that under CRRA, where every schedule scored solves its
#: equilibrium, it costs a fraction of the first climb.
_SECOND_SWEEPS, _SECOND_GRID, _SECOND_REFINEMENTS = 3, 11, 3


#: Populations of at most this many workers with quasi-linear utility and at most 11
#: brackets get the pair grids (:func:`_pair_grids`): random draws of 4–32 personas of
#: the shipped bank had optima up to 26 % of the none → oracle gain above what the
#: climbs found; draws of 64, at most 0.1 %; of 100, none (benchmarks/
#: bench_oracle_small.py, docs/economy.md).
_PAIR_GRID_WORKERS = 64
#: Whether CRRA economies get the pair grids too (off: benchmarks/bench_oracle_small.py
#: measures them there, turning it on).
_PAIR_GRIDS_UNDER_CRRA = False
#: Schedules one round of pair grids scores at most (21 points a rate and two finer
#: grids of 11 with 7 brackets); rounds of grids and climbs until a round finds nothing
#: better.
_PAIR_GRID_BUDGET, _PAIR_ROUNDS = 15_000, 3
#: Points a rate of each finer pair grid (:func:`_pair_grids`) and how many finer grids.
_PAIR_FINE_POINTS, _PAIR_FINE_LEVELS = 11, 2


def _pair_grid_points(n: int) -> int | None:
    """Points per rate of each pair's full grid (at most 21), so that a round over all
    ``n·(n−1)/2`` pairs, finer grids included, stays within :data:`_PAIR_GRID_BUDGET`;
    ``None`` when even 5 (0, 25, 50, 75, 100 %) would not (more than 11 rates) or there
    is no pair (one rate): no pair grids then."""
    pairs = n * (n - 1) // 2
    fine = _PAIR_FINE_LEVELS * _PAIR_FINE_POINTS**2
    if pairs < 1 or pairs * (5**2 + fine) > _PAIR_GRID_BUDGET:
        return None
    return min(21, int((_PAIR_GRID_BUDGET / pairs - fine) ** 0.5))


def _pair_grids(f: _Objective, lo: float, hi: float, points: int) -> bool:
    """For every pair of rates in turn, score the full grid of both over ``[lo, hi]``
    (``points`` each), then two finer grids around the best pair (the coarse grid's
    step either side, then a fifth of it), with the other rates at the best point so
    far, each grid as one batch; whether any pair found a better schedule. With a
    handful of workers the welfare jumps where one of them changes bracket, so the best
    schedule may need two rates to move far at once (on four personas: a bracket to
    100 %, where it taxes the top earner's income inside it as a lump sum, and the top
    rate down to 16 %), which the local climbs, moving one rate or stepping a pair by a
    small step, never reach."""
    n = f.best_rates.size
    start = f.best_value
    full = np.linspace(lo, hi, points)
    offsets = np.linspace(-1.0, 1.0, _PAIR_FINE_POINTS)
    for i, j in zip(*np.triu_indices(n, 1), strict=True):
        first, second, span = full, full, (hi - lo) / max(points - 1, 1)
        for _ in range(1 + _PAIR_FINE_LEVELS):
            a, b = (m.ravel() for m in np.meshgrid(first, second, indexing="ij"))
            batch = np.repeat(f.best_rates[None, :], a.size, axis=0)
            batch[:, i], batch[:, j] = a, b
            f(batch)
            x = f.best_rates
            first = np.clip(x[i] + span * offsets, lo, hi)
            second = np.clip(x[j] + span * offsets, lo, hi)
            span /= 5.0
    return f.best_value - start > _tolerance(start)


def _coordinate_search(
    f: _Objective,
    n: int,
    coarse: FloatArray,
    lo: float,
    hi: float,
    step0: float,
    refinements: int,
    max_sweeps: int,
) -> int:
    """Sweep the ``n`` rates one at a time from ``f``'s best point (a coarse grid, then
    finer ones, :func:`_line_search`) until a sweep no longer improves; the sweeps."""
    x = f.best_rates.copy()
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - returned
        before = f.best_value
        for b in range(n):
            x = _line_search(f, x, b, coarse, lo, hi, step0, refinements)
        if f.best_value - before <= _tolerance(before):
            break
    return sweeps


def _saez_rates(
    economy: Economy, edges: FloatArray, lo: float, hi: float, swf: str | None
) -> FloatArray | None:
    """Saez's schedule for the economy's SWF within the bounds (the oracle's second
    start), or ``None`` when the search is for another SWF or it has no marginal
    welfare weights (Saez's formula needs them)."""
    if swf is not None and swf != economy.swf:
        return None
    import warnings

    from llmecon.planners.saez import solve_saez

    try:
        with warnings.catch_warnings():  # a cycle's mean is a start as good as any
            warnings.simplefilter("ignore")
            found = solve_saez(economy, tuple(edges), min_rate=lo, max_rate=hi)
    except ValueError:  # an SWF without marginal weights
        return None
    return np.clip(np.asarray(found.rates, dtype=float), lo, hi)


def _tolerance(value: float) -> float:
    """The least rise of the best value above ``value`` that the search counts as an
    improvement (relative, 1e-12, and absolute below 1)."""
    return 1e-12 * max(1.0, abs(value))


def _line_search(
    f: _Objective,
    x: FloatArray,
    b: int,
    coarse: FloatArray | None,
    lo: float,
    hi: float,
    step: float,
    refinements: int,
) -> FloatArray:
    """Best value of coordinate ``b``: a coarse grid, then finer grids around the best."""
    current = f.best_rates.copy() if f.best_rates.size else x.copy()
    if coarse is not None:
        f(_with_coordinate(current, b, coarse))
        current = f.best_rates.copy()
    for _ in range(refinements):
        local = np.clip(current[b] + step * np.linspace(-1.0, 1.0, 11), lo, hi)
        f(_with_coordinate(current, b, local))
        current = f.best_rates.copy()
        step /= 5.0
    return current


def _pattern_search(
    f: _Objective, lo: float, hi: float, step: float, min_step: float, max_polls: int = 1000
) -> None:
    """Move the best point by a batched pattern search along axes and diagonals.

    Coordinate search stops where no single rate can improve, which on a ridge (two
    brackets that must move together: a worker between them, or a rebate they both
    fund) is not the optimum. Each poll scores the best point ± ``step`` along every
    axis as one batch, and only if none improves, along every diagonal of two rates
    (``(±e_i ± e_j)/√2``, another batch): a ridge in any pair of rates is climbed. A
    poll that improves is followed along its direction at 2, 4, 8 and 16 times its
    length while that improves; a poll that does not quarters the step, down to
    ``min_step``. Every move raises the best value by more than the search's
    tolerance, and ``max_polls`` bounds the batches.
    """
    n = f.best_rates.size
    eye = np.eye(n)
    axes = np.concatenate([eye, -eye])
    i, j = np.triu_indices(n, 1)
    sides = [a * eye[i] + b * eye[j] for a in (1.0, -1.0) for b in (1.0, -1.0)]
    diagonals = np.concatenate(sides) / np.sqrt(2.0)
    patterns = [axes] + ([diagonals] if diagonals.size else [])
    further = np.array([2.0, 4.0, 8.0, 16.0])[:, None]
    polls = 0

    def improves(batch: FloatArray, before: float) -> bool:
        nonlocal polls
        polls += 1
        f(np.clip(batch, lo, hi))
        return f.best_value - before > _tolerance(before)

    while step >= min_step and polls < max_polls:
        x, before = f.best_rates.copy(), f.best_value
        if any(improves(x + step * p, before) for p in patterns):
            while polls < max_polls:  # follow the improving direction
                move = f.best_rates - x
                x, before = f.best_rates.copy(), f.best_value
                if not improves(x + further * move, before):
                    break
        else:
            step /= 4.0


def _with_coordinate(x: FloatArray, b: int, values: FloatArray) -> FloatArray:
    batch = np.repeat(x[None, :], values.size, axis=0)
    batch[:, b] = values
    return batch


#: Optima found in this process, by problem (:func:`_problem_key`): the runs of a
#: comparison (or a sweep) on one economy search it once, for the oracle planner and
#: every run's reference welfare. The search is deterministic, so a remembered optimum
#: is the one a new search would find.
_OPTIMA: dict[tuple[object, ...], OracleResult] = {}
_OPTIMA_SIZE = 8


def _problem_key(ctx: PlannerContext) -> tuple[object, ...]:
    """What the optimum of ``ctx``'s problem depends on: the economy (its workers'
    wages, hours and survey weights, its preferences and SWF), the edges and the rate
    bounds; two economies built alike (each run builds its own) give the same key."""
    economy, population = ctx.economy, ctx.economy.population
    digest = hashlib.sha256()
    for array in (population.hourly_wage_usd, population.usual_weekly_hours, economy.survey_weight):
        digest.update(b"-" if array is None else np.ascontiguousarray(array, float).tobytes())
        digest.update(b"\0")
    return (
        type(economy),
        digest.hexdigest(),
        economy.utility_config,
        economy.swf,
        tuple(float(e) for e in ctx.edges),
        (float(ctx.min_rate), float(ctx.max_rate)),
    )


def optimum(ctx: PlannerContext) -> OracleResult:
    """:func:`optimal_rates` of ``ctx``'s problem, searched once per process (the rates
    of the result are read-only: it is shared)."""
    key = _problem_key(ctx)
    found = _OPTIMA.get(key)
    if found is None:
        found = optimal_rates(ctx.economy, ctx.edges, min_rate=ctx.min_rate, max_rate=ctx.max_rate)
        found.rates.setflags(write=False)
        if len(_OPTIMA) >= _OPTIMA_SIZE:
            _OPTIMA.pop(next(iter(_OPTIMA)))
        _OPTIMA[key] = found
    return found


class OraclePlanner:
    """Proposes the numerically optimal schedule (computed once, it never changes)."""

    name = "oracle"

    def __init__(self, ctx: PlannerContext) -> None:
        self._ctx = ctx
        self._schedule: TaxSchedule | None = None
        self.result: OracleResult | None = None

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        if self._schedule is None:
            self.result = optimum(self._ctx)
            self._schedule = self._ctx.schedule(self.result.rates)
        return self._schedule

    def result_for(self, ctx: PlannerContext) -> OracleResult | None:
        """The optimum this planner found, when it solves ``ctx``'s problem (the same
        economy, edges and rate bounds), so a run's reference need not search again;
        ``None`` before it proposed or for another problem."""
        mine = self._ctx
        same = (
            mine.economy is ctx.economy
            and tuple(mine.edges) == tuple(ctx.edges)
            and (mine.min_rate, mine.max_rate) == (ctx.min_rate, ctx.max_rate)
        )
        return self.result if same else None


@register_planner("oracle", "numerical optimum of the SWF against rational best responses")
def _oracle(ctx: PlannerContext, arg: str | None) -> OraclePlanner:
    return OraclePlanner(ctx)
