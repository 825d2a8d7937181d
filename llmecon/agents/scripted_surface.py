"""The response-surface planner of ``scripted/reference-surface`` (a test model).

A second scripted planner beside the compass search of :mod:`llmecon.agents.scripted`,
for the same offline science checks. Where the compass search compares pairs of years
that differ in one bracket, this one fits a model of the welfare to **every** year its
prompt shows and moves towards the model's best schedule, exploring around it with a
designed pattern:

1. **Model.** The welfare is close to additive over brackets (docs/agents.md), so it
   fits ``SWF ≈ a + Σ_k b_k u_k + q_k u_k²`` with ``u_k`` bracket ``k``'s rate in units
   of ``SCALE_POINTS`` from the shown years' mean rate. The fit is Bayesian linear
   regression: a flat prior on ``a``; Gaussian priors of standard deviation ``s`` on
   every ``b_k`` and ``QUADRATIC_PRIOR · s`` on every ``q_k``, where ``s`` is the larger of
   the shown welfare's spread and the noise σ̂ the prompt states
   (:func:`~llmecon.agents.planner_prompts.welfare_noise_sd`; the spread while it is
   unknown, and with ``planner_uncertainty`` off). The prior keeps 15 parameters
   (7 brackets) estimable from a handful of noisy years.
2. **The model's best schedule**: per bracket, the rate in the bounds with the highest
   fitted ``b_k u_k + q_k u_k²`` (the vertex of a concave fit, else the better bound;
   a tie, as in the second year when one year gives no slope, goes to the lower bound,
   so the second year lowers every rate by the trust region and the fit then moves
   them together until it sees their curvatures: measured, this early joint move gains
   more than starting from the data's centre, docs/agents.md).
3. **Exploration**: the proposal is the best schedule plus ``h`` points times the signs
   of the year's column of a Hadamard matrix (year ``t`` uses column ``t mod m``,
   ``m`` the smallest power of two above the number of brackets; the columns are
   orthogonal, so every year informs every bracket and ``m`` consecutive years separate
   the brackets' effects, a two-level screening design). ``h = EXPLORE_POINTS ·
   √(years left / years)``: wide early, narrow late. The last ``EXPLOIT_YEARS`` years
   enact the model's best (with an unknown horizon ``h`` stays at half its start).
4. The proposal is clipped to the trust region (or moved on LLM Economist's grid);
   proposals for a ballot are the best schedule and its neighbours along the next
   design columns.

It reads only the shown years, so it needs them all: run it with ``--planner-history``
at least the number of years (with the default 8 it fits too few years and does worse
than the compass search). Measured in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np
from scipy.linalg import hadamard

from llmecon.agents.calls import CandidatesAsk, PlannerAsk
from llmecon.agents.planner_prompts import (
    pct_list,
    reach_pct,
    shown_swf,
    shown_years,
    welfare_noise_sd,
)

#: Points of a rate per unit of the model's coordinate.
SCALE_POINTS = 10.0
#: Prior standard deviation of the curvatures, relative to the slopes'.
QUADRATIC_PRIOR = 0.5
#: Half-width (points) of the exploration pattern in the first year.
EXPLORE_POINTS = 10.0
#: The last years of a run enact the model's best schedule without exploring.
EXPLOIT_YEARS = 3
_BEST = "response surface: enact the model's best schedule"
_NEAR = "response surface: a neighbour of the model's best"


@cache
def _design(n_brackets: int) -> np.ndarray:
    """Sign patterns, one column per year: rows 1.. of the smallest Sylvester Hadamard
    matrix with more rows than brackets (row 0 is all ones: no contrast)."""
    m = 2
    while m <= n_brackets:
        m *= 2
    return np.asarray(hadamard(m)[1 : n_brackets + 1, :], dtype=float)


def fit_surface(
    rates_pct: np.ndarray, swf: np.ndarray, noise_sd: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mean of ``(a, b_1..b_K, q_1..q_K)`` (module docstring) and the
    centre the coordinates are measured from."""
    center = rates_pct.mean(axis=0)
    u = (rates_pct - center) / SCALE_POINTS
    features = np.hstack([np.ones((len(swf), 1)), u, u**2])
    spread = float(np.std(swf)) if swf.size > 1 else 0.0
    sigma = noise_sd if noise_sd else max(spread, 1e-6)
    prior_sd = max(spread, sigma)
    k = rates_pct.shape[1]
    precision = np.concatenate(
        [[1e-8], np.full(k, 1 / prior_sd**2), np.full(k, 1 / (QUADRATIC_PRIOR * prior_sd) ** 2)]
    )
    lhs = features.T @ features / sigma**2 + np.diag(precision)
    coef = np.linalg.solve(lhs, features.T @ swf / sigma**2)
    return coef, center


def surface_best(
    coef: np.ndarray, center: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Per bracket, the whole-point rate in ``[low, high]`` with the highest fitted
    ``b u + q u²``."""
    k = center.size
    slope, curve = coef[1 : 1 + k], coef[1 + k :]
    best = np.empty(k, dtype=int)
    for b in range(k):
        candidates = [float(low[b]), float(high[b])]
        if curve[b] < 0:
            vertex = center[b] - SCALE_POINTS * slope[b] / (2 * curve[b])
            candidates.append(float(np.clip(vertex, low[b], high[b])))
        points = np.round(np.array(candidates))
        u = (points - center[b]) / SCALE_POINTS
        best[b] = int(points[int(np.argmax(slope[b] * u + curve[b] * u**2))])
    return best


def surface_climb(ask: PlannerAsk | CandidatesAsk, count: int = 1) -> list[tuple[list[int], str]]:
    """``count`` distinct proposals (whole percents) with why, best first."""
    ctx, settings = ask.ctx, ask.settings
    years = shown_years(ask.history, settings)
    rates = np.array([pct_list(r.schedule.rates) for r in years], dtype=float)
    swf = np.array([shown_swf(r) for r in years])
    noise = welfare_noise_sd(ask.history) if settings.uncertainty else None
    coef, center = fit_surface(rates, swf, noise)
    lo_pct, hi_pct = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    n = center.size
    best = surface_best(coef, center, np.full(n, lo_pct), np.full(n, hi_pct))

    reach = reach_pct(ask.history[-1].schedule.rates, settings, lo_pct, hi_pct)
    current, moves = reach.current, settings.moves
    low, high = np.array(reach.lowest), np.array(reach.highest)

    year = ask.history[-1].year + 1  # the year being proposed
    if settings.horizon:
        left = settings.horizon - year
        width = 0.0 if left <= EXPLOIT_YEARS else EXPLORE_POINTS * np.sqrt(left / settings.horizon)
    else:
        width = EXPLORE_POINTS / 2
    design = _design(n)
    columns = design.shape[1]
    explore = f"response surface: explore ±{width:.0f} points around the model's best"

    def targets() -> Iterator[tuple[np.ndarray, str]]:
        yield best + width * design[:, year % columns], explore if width else _BEST
        # ballot proposals: the model's best, its neighbours along the next design
        # columns, then single-bracket steps of growing size
        yield best.astype(float), _BEST
        near = max(width, 2.0)
        for j in range(1, columns):
            yield best + near * design[:, (year + j) % columns], _NEAR
        for delta in range(1, hi_pct - lo_pct + 1):
            for b in range(n):
                for sign in (1, -1):
                    step = np.zeros(n)
                    step[b] = sign * delta
                    yield best + step, _NEAR

    out: list[tuple[list[int], str]] = []
    for target, why in targets():
        snapped = moves.snap(target) if moves else target
        key = [int(v) for v in np.clip(np.round(snapped), low, high)]
        ballot_dup = isinstance(ask, CandidatesAsk) and key == current
        if not ballot_dup and all(key != p[0] for p in out):
            out.append((key, why))
        if len(out) >= count:
            break
    return out
