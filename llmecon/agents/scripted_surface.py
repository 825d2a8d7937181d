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
2. **Saez's reasoning from the bracket breakdown** (when the prompt shows it, with
   ``planner_uncertainty``): from the workers per bracket, income shares, revenue per
   worker, rates and rebate share of the last ``BREAKDOWN_YEARS`` shown years,
   :func:`structural_curves` predicts each bracket's welfare at every rate, moved
   alone: those above the bracket pay its slice without working less (until staying
   above stops paying), its own workers respond with an assumed elasticity
   ``PRIOR_ELASTICITY``, welfare weights fall with income. The workers of the top
   ``SPREAD_BRACKETS`` brackets stand at several incomes spread as the quartiles the
   prompt shows for the most recent year (few workers far apart: those just above a
   slice give it up first); the others at their bracket's mean income. The curves find a far
   corner no local fit sees (a bracket few earn in, many above it). The model is then
   ``SWF ≈ a + λ·Σ_k curve_k + Σ_k b_k u_k + q_k u_k²``: ``λ`` (prior 1 ±
   ``CURVE_WEIGHT_SD``) says how far the data trust the curves, and the quadratic
   corrects them where the data are (held flat beyond the shown rates, so that a
   curvature fitted on a narrow range does not bar a corner the curves point to). The
   correction's priors are ``CORRECTION_PRIOR`` times those of step 1: the curves carry
   the shape, and a year's noise (about a tenth of the status-quo→oracle gap at 100
   workers with ±2 h) must not bend a bracket's rate by more than the data show. The
   correction also has a term ``c_k u_k u_{k+1}`` per pair of neighbouring brackets
   (prior ``INTERACTION_PRIOR`` times the slopes'): the workers above both decide
   whether the lower one's slice is worth staying above by both rates, so a high rate
   can pay only while its neighbour's is low (docs/agents.md).
3. **A joint model of the workers** (with the breakdown): the curves move one bracket
   at a time, and a high rate on one bracket pays only while the workers above it
   keep paying it, which depends on the neighbours' rates too. So the planner also
   values whole schedules (:func:`joint_welfare`): each bracket's workers stand as
   representative workers (at the incomes of step 2) whose disutility of work makes
   their income the best response to the shown rate, and who choose their best income
   under any schedule. Its prediction for the shown years, weighted by a fitted ``λ``,
   plus the same fitted correction, is the model; a schedule is valued at the worst of
   the incomes as shown and scaled by ``1 ± INCOME_DOUBT``, so that one near the edge
   where the workers above a slice drop counts as over it.
4. **The model's best schedule**: with the breakdown, each bracket in turn takes the
   rate with the highest model value given the others', until a pass changes nothing,
   from the additive best (the curves plus the correction, each bracket's best given
   its neighbours') and from the last shown schedule, keeping the better. In the last
   ``EXPLOIT_YEARS`` years it starts from the last shown schedule and stays within the
   rates the shown years tried, and each bracket's rate is at most the highest a shown
   year set alongside each neighbour's rate at least as high (the pair guard): no
   untried pair of high rates, where the workers above both may drop, is enacted. A
   shown year whose welfare fell more than ``SURPRISE_SD`` noise σ̂ below the model's
   fit does not count as having tried its rates (the workers above may have dropped
   there, which the model missed). Without the breakdown, of ``b_k u_k + q_k u_k²`` (the vertex
   of a concave fit, else the better bound;
   a tie, as in the second year when one year gives no slope, goes to the lower bound,
   so the second year lowers every rate by the trust region and the fit then moves
   them together until it sees their curvatures: measured, this early joint move gains
   more than starting from the data's centre, docs/agents.md).
5. **Exploration**: the proposal is the best schedule plus ``h`` points times the signs
   of the year's column of a Hadamard matrix (year ``t`` uses column ``t mod m``,
   ``m`` the smallest power of two above the number of brackets; the columns are
   orthogonal, so every year informs every bracket and ``m`` consecutive years separate
   the brackets' effects, a two-level screening design). ``h = EXPLORE_POINTS ·
   √(years left / years)``: wide early, narrow late. The last ``EXPLOIT_YEARS`` years
   enact the model's best (with an unknown horizon ``h`` stays at half its start).
6. The proposal is clipped to the trust region (or moved on LLM Economist's grid);
   proposals for a ballot are the best schedule and its neighbours along the next
   design columns.

It reads only the shown years: with the default 8 it does as well as with every year
shown (``--planner-history`` at least the number of years), now that the curves and the
joint model carry what few years cannot show. Measured in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

import numpy as np
from scipy.linalg import hadamard

from llmecon.agents.calls import CandidatesAsk, PlannerAsk
from llmecon.agents.planner_prompts import (
    bracket_shares,
    income_spread,
    pct_list,
    reach_pct,
    shown_swf,
    shown_years,
    welfare_decimals,
    welfare_noise_sd,
)
from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.planners import YearRecord

#: Points of a rate per unit of the model's coordinate.
SCALE_POINTS = 10.0
#: The standard deviation of rounding to the 0.1 the demonstrations show the welfare to.
SHOWN_ROUNDING_SD = 0.1 / np.sqrt(12)  # at one decimal; 10^-d / √12 at d decimals
#: Prior standard deviation of the curvatures, relative to the slopes'.
QUADRATIC_PRIOR = 0.5
#: Half-width (points) of the exploration pattern in the first year.
EXPLORE_POINTS = 10.0
#: The last years of a run enact the model's best schedule without exploring.
EXPLOIT_YEARS = 3
#: The elasticity of income with respect to the net-of-tax rate that the structural
#: prior assumes: inside the literature's intensive-margin range 0.1–0.5 (Keane 2011,
#: JEL; Chetty 2012, Econometrica) and equal to the personas' default calibration. A
#: constant of the planner, never read from the run.
PRIOR_ELASTICITY = 0.4
#: Prior standard deviation of the structural curves' weight (prior mean 1), in units of
#: the spread of what the curves predict over the shown years.
CURVE_WEIGHT_SD = 0.25
#: The fitted correction to the structural curves has priors this many times those of
#: the plain fit (module docstring, step 2). Measured over 96 seeds (docs/agents.md):
#: 0.2 and 0.3 close more of the gap than 1 on every persona set; 0.02 (curves alone)
#: closes less.
CORRECTION_PRIOR = 0.3
#: The most recent shown years whose bracket breakdowns the curves average.
BREAKDOWN_YEARS = 3
#: Prior standard deviation of the fitted correction's interactions of neighbouring
#: brackets (``u_k u_{k+1}``), relative to the slopes'. Measured (docs/agents.md): 0.3
#: lifts the share of runs that close 90 % of the gap on the default bank and on
#: sampled populations; 1 fits the noise.
INTERACTION_PRIOR = 0.3
#: The highest brackets whose workers the structural curves spread over the incomes the
#: prompt shows for them (:func:`income_points`) instead of putting them all at the
#: bracket's mean. Measured (docs/agents.md): the top two lift sampled populations,
#: whose top brackets hold a few workers far apart, from 72 % to 100 % of runs closing
#: 90 % of the gap, and leave the default bank as it was; spreading every bracket's
#: workers costs the default bank.
SPREAD_BRACKETS = 2
#: Incomes per spread bracket in the structural curves.
SPREAD_POINTS = 5
#: The standard normal (the standard library's: scipy.stats takes ~0.7 s to import, and a
#: run with this planner imports nothing else of it).
_NORMAL = NormalDist()
#: The joint model values a schedule at the worst of its representative workers'
#: incomes as shown and scaled by 1 − this and 1 + this, so that a schedule near the
#: edge where the workers above a slice drop counts as over it (docs/agents.md).
INCOME_DOUBT = 0.1
#: In the exploiting years a shown year whose welfare fell more than this many noise
#: σ̂ below the model's fit does not count as having tried its rates (the pair guard,
#: :func:`model_best`). Measured (docs/agents.md): without it one default-bank run in 96
#: enacted a pair of rates whose year had shown the workers above them drop (0.35 of the
#: gap).
SURPRISE_SD = 2.0
#: The most passes over the brackets that :func:`surface_best_with_curves` makes.
_BEST_PASSES = 6
#: The most passes over the brackets that :func:`model_best` makes.
_JOINT_PASSES = 8
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


def _noise_scale(swf: np.ndarray, noise_sd: float | None, rounding_sd: float) -> float:
    """The standard deviation of one shown year's welfare that the fit assumes: the
    stated noise σ̂, else the shown welfare's spread, and at least the rounding's (a σ̂
    of float dust, from a schedule repeated with identical welfare, would make the fit
    trust a few points infinitely and its system singular)."""
    spread = float(np.std(swf)) if swf.size > 1 else 0.0
    return max(noise_sd if noise_sd else spread, rounding_sd)


def fit_surface(
    rates_pct: np.ndarray,
    swf: np.ndarray,
    noise_sd: float | None,
    offset: np.ndarray | None = None,
    prior_scale: float = 1.0,
    rounding_sd: float = SHOWN_ROUNDING_SD,
    interactions: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mean of ``(a, b_1..b_K, q_1..q_K)`` (module docstring) and the
    centre the coordinates are measured from; ``prior_scale`` multiplies the priors'
    standard deviations of the slopes and curvatures; ``rounding_sd`` is the standard
    deviation of the rounding the shown welfare carries (its decimals').

    With ``offset`` (the structural curves' prediction for each shown year) the model is
    ``SWF ≈ a + λ·offset + Σ_k (b_k u_k + q_k u_k²)``: ``λ`` has a prior of mean 1 and
    standard deviation :data:`CURVE_WEIGHT_SD` (relative to the offset's spread) and is
    returned as the last coefficient, at least 0; without, the last coefficient is 0.

    With ``interactions`` the model adds ``Σ_k c_k u_k u_{k+1}`` for neighbouring
    brackets (priors :data:`INTERACTION_PRIOR` times the slopes'); the ``K − 1``
    coefficients ``c_k`` follow the curvatures, before the curves' weight.
    """
    center = rates_pct.mean(axis=0)
    u = (rates_pct - center) / SCALE_POINTS
    spread = float(np.std(swf)) if swf.size > 1 else 0.0
    sigma = _noise_scale(swf, noise_sd, rounding_sd)
    prior_sd = max(spread, sigma) * prior_scale
    k = rates_pct.shape[1]
    columns = [np.ones((len(swf), 1)), u, u**2]
    precision: list[np.ndarray] = [
        np.array([1e-8]),
        np.full(k, 1 / prior_sd**2),
        np.full(k, 1 / (QUADRATIC_PRIOR * prior_sd) ** 2),
    ]
    if interactions:
        columns.append(u[:, :-1] * u[:, 1:])
        precision.append(np.full(k - 1, 1 / (INTERACTION_PRIOR * prior_sd) ** 2))
    prior_mean = np.zeros(sum(c.shape[1] for c in columns))
    scale = 1.0
    if offset is not None:
        scale = max(float(np.std(offset)), 1e-6)
        columns.append(offset[:, None] / scale)
        precision.append(np.array([1 / (CURVE_WEIGHT_SD * scale) ** 2]))
        prior_mean = np.append(prior_mean, scale)
    features = np.hstack(columns)
    prec = np.concatenate(precision)
    lhs = features.T @ features / sigma**2 + np.diag(prec)
    coef = np.linalg.solve(lhs, features.T @ swf / sigma**2 + prec * prior_mean)
    if offset is None:
        return np.append(coef, 0.0), center
    return np.append(coef[:-1], max(float(coef[-1]) / scale, 0.0)), center


@dataclass(frozen=True)
class Breakdown:
    """What one demonstrated year shows about where incomes fall."""

    edges: np.ndarray
    """Bracket lower edges (USD), from the context's bracket table."""
    rates: np.ndarray
    """The year's rates as shown (fractions of whole percents)."""
    counts: np.ndarray
    """Workers per bracket as shown (survey-weighted when the prompt's are)."""
    means: np.ndarray
    """Mean income per bracket (USD): the income shares times the total income that the
    shown revenue per worker implies (tax is linear in each bracket's income), clipped
    into the bracket; 0 for an empty bracket."""


def breakdown(rec: YearRecord, n_agents: int, weight: np.ndarray | None) -> Breakdown:
    """The bracket breakdown of ``rec`` as its demonstration shows it (``weight``: the
    survey weights when the prompt counts them, :func:`bracket_shares`)."""
    edges = np.asarray(rec.schedule.edges, dtype=float)
    rates = np.array(pct_list(rec.schedule.rates), dtype=float) / 100
    written, shares_pct = bracket_shares(rec, weight)
    counts = np.array([float(c) for c in written])
    shares = np.array(shares_pct, dtype=float) / 100
    revenue = round(rec.metrics.revenue_usd / max(n_agents, 1)) * n_agents  # as shown
    k = edges.size
    below = cumulative_tax_at_edges(edges, rates)  # tax below edge j
    fixed = float(np.sum(counts * (below - rates * edges)))
    linear = float(np.sum(rates * shares))
    upper = np.append(edges[1:], 2 * edges[-1] if k > 1 else 1e6)
    midpoints = float(np.sum(counts * (edges + upper) / 2))
    total = (revenue - fixed) / linear if linear > 1e-9 else midpoints
    if not np.isfinite(total) or total <= 0:
        total = midpoints
    means = np.zeros(k)
    for j in np.flatnonzero(counts > 0):
        lo = max(edges[j], 0.25 * edges[1] if k > 1 else 1.0)
        hi = edges[j + 1] if j + 1 < k else np.inf
        means[j] = float(np.clip(shares[j] * total / counts[j], lo, max(lo, hi)))
    return Breakdown(edges, rates, counts, means)


def income_points(
    mean: float, low: float, high: float, log_sd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Incomes standing for a bracket's workers, and the share of them each stands for:
    the mean alone (``log_sd`` 0), else :data:`SPREAD_POINTS` equal shares at the
    quantiles of a log-normal of that standard deviation and the bracket's mean, kept
    within the bracket (``low``–``high``): clipped, shifted together by what the
    clipping moved their mean, and clipped again (so their mean stays the bracket's
    unless an edge cuts them twice)."""
    if log_sd <= 0:
        return np.array([mean]), np.ones(1)
    normal = np.array([_NORMAL.inv_cdf((i + 0.5) / SPREAD_POINTS) for i in range(SPREAD_POINTS)])
    inside = (low * (1 + 1e-3), high * (1 - 1e-3) if np.isfinite(high) else np.inf)
    points = np.clip(mean * np.exp(log_sd * normal - log_sd**2 / 2), *inside)
    points = np.clip(points + mean - points.mean(), *inside)
    return points, np.full(SPREAD_POINTS, 1 / SPREAD_POINTS)


def welfare_weights(view: Breakdown) -> np.ndarray:
    """Per bracket, its workers' welfare weight: inverse bracket-mean income, mean 1 over
    the workers (the first bracket, whose low incomes are mostly few hours, takes the
    second's weight; an empty bracket 0)."""
    counts, means = view.counts, view.means
    k = counts.size
    floor = np.ones(k)
    if k > 1 and counts[1] > 0:
        floor[0] = means[1]
    inverse = np.where(counts > 0, 1 / np.maximum(np.maximum(means, floor), 1.0), 0.0)
    n = max(float(counts.sum()), 1.0)
    return inverse / max(float(np.sum(counts * inverse)) / n, 1e-300)


def _top_spread(k: int, log_sd: np.ndarray | None) -> np.ndarray:
    """Per bracket, the spread of log incomes its workers stand at: ``log_sd`` for the
    top :data:`SPREAD_BRACKETS` brackets, 0 for the others (and all without one)."""
    if log_sd is None:
        return np.zeros(k)
    return np.where(np.arange(k) >= k - SPREAD_BRACKETS, log_sd, 0.0)


def structural_curves(
    views: list[Breakdown],
    rebate_share: float,
    grid_pct: np.ndarray,
    elasticity: float = PRIOR_ELASTICITY,
    log_sd: np.ndarray | None = None,
) -> np.ndarray:
    """Per bracket (rows), the welfare change (SWF units, a mean over workers) that the
    bracket breakdown predicts when that bracket's rate alone moves from the shown rate
    to each rate of ``grid_pct`` (columns): Saez's reasoning, averaged over ``views``.

    * Workers above the bracket pay its slice without changing their hours (revenue,
      worth ``rebate_share`` a dollar, against their own loss at welfare weight ``g``),
      until the extra tax exceeds what they gain over dropping to the bracket's lower
      edge; then they drop there and stop paying its slice.
    * The bracket's own workers move their income with ``elasticity`` to the net-of-tax
      rate, within the bracket (down to its lower edge: bunching at the kink); their
      loss is the slice above the edge, integrated over the rate (envelope theorem).
    * Welfare weights ``g``: inverse bracket-mean income, mean 1 over workers (the first
      bracket, whose low incomes are mostly few hours, takes the second's weight).
    * ``log_sd`` (per bracket, the spread of its workers' log incomes; none: 0): the
      workers of the top :data:`SPREAD_BRACKETS` brackets stand at several incomes
      (:func:`income_points`), so that those just above a slice give it up first.
    """
    out = np.zeros((views[0].edges.size, grid_pct.size))
    tau = grid_pct / 100
    for view in views:
        edges, rates, counts, means = view.edges, view.rates, view.counts, view.means
        k = edges.size
        n = max(float(counts.sum()), 1.0)
        g = welfare_weights(view)
        tops = np.append(edges[1:], np.inf)
        spread = _top_spread(k, log_sd)
        points = [income_points(means[j], edges[j], tops[j], spread[j]) for j in range(k)]
        for b in range(k):
            curve = np.zeros_like(tau)
            width = tops[b] - edges[b]  # the top bracket has no one above it
            extra = (tau - rates[b]) * width if np.isfinite(width) else np.zeros_like(tau)
            above = [
                (j, z, counts[j] * share)
                for j in range(b + 1, k)
                if counts[j] > 0
                for z, share in zip(*points[j], strict=True)
            ]
            for j, z, count in above:
                slices = np.clip(z - edges, 0, tops - edges)[b : j + 1]
                paid = float(np.sum(rates[b : j + 1] * slices))  # their tax above e_b
                net_gain = float(np.sum(slices)) - paid  # net(z) − net(e_b)
                effort = (1 - min(rates[j], 0.99)) * z * elasticity / (1 + elasticity)
                effort_gain = effort * (1 - (edges[b] / z) ** ((1 + elasticity) / elasticity))
                surplus = max(net_gain - effort_gain, 0.0)  # what keeps them above e_b
                drop = extra > surplus
                revenue = np.where(drop, -paid, extra)
                utility = np.where(drop, -surplus, -extra)
                curve += count * (rebate_share * revenue + g[j] * utility)
            for z0, share in zip(*points[b], strict=True) if counts[b] > 0 else ():
                t0 = min(rates[b], 0.99)
                z = z0 * (np.clip(1 - tau, 0, None) / (1 - t0)) ** elasticity
                slice_ = np.clip(z, edges[b], tops[b]) - edges[b]
                slice0 = float(np.clip(z0, edges[b], tops[b])) - edges[b]
                steps = (slice_[1:] + slice_[:-1]) / 2 * np.diff(tau)
                lost = np.concatenate([[0.0], np.cumsum(steps)])
                utility = np.interp(rates[b], tau, lost) - lost
                revenue = tau * slice_ - rates[b] * slice0
                curve += counts[b] * share * (rebate_share * revenue + g[b] * utility)
            out[b] += curve / n
    return out / len(views)


def surface_best(
    coef: np.ndarray, center: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Per bracket, the whole-point rate in ``[low, high]`` with the highest fitted
    ``b u + q u²``."""
    k = center.size
    slope, curve = coef[1 : 1 + k], coef[1 + k : 1 + 2 * k]
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


def surface_best_with_curves(
    coef: np.ndarray,
    center: np.ndarray,
    curves: np.ndarray,
    grid_pct: np.ndarray,
    seen_pct: np.ndarray,
    interactions: bool = False,
) -> np.ndarray:
    """Per bracket, the rate of ``grid_pct`` with the highest ``λ·curve + b u + q u²``
    (``curves`` already times ``λ``; ties to the lower rate). The fitted quadratic
    corrects the curves only where the data are: it is held at its value at the
    lowest/highest shown rate beyond them, so that a curvature fitted on a narrow
    range does not bar a corner the curves point to.

    With ``interactions`` (``coef`` from :func:`fit_surface` with them) the brackets'
    best rates depend on their neighbours': from the best without them, each bracket in
    turn takes its best given its neighbours' current rates (the terms ``c_k u_k
    u_{k+1}``, held in the shown range alike), until a pass changes nothing (at most
    :data:`_BEST_PASSES`)."""
    k = center.size
    slope, curvature = coef[1 : 1 + k], coef[1 + k : 1 + 2 * k]
    pairs = coef[1 + 2 * k : 3 * k] if interactions else np.zeros(k - 1)
    low, high = seen_pct.min(axis=0), seen_pct.max(axis=0)

    def u(b: int, rates: np.ndarray | float) -> np.ndarray:
        return (np.clip(rates, low[b], high[b]) - center[b]) / SCALE_POINTS

    on_grid = [u(b, grid_pct) for b in range(k)]
    own = [curves[b] + slope[b] * on_grid[b] + curvature[b] * on_grid[b] ** 2 for b in range(k)]
    best = np.array([grid_pct[int(np.argmax(own[b]))] for b in range(k)])
    for _ in range(_BEST_PASSES if pairs.any() else 0):
        before = best.copy()
        for b in range(k):
            value = own[b].copy()
            if b > 0:
                value += pairs[b - 1] * on_grid[b] * u(b - 1, best[b - 1])
            if b + 1 < k:
                value += pairs[b] * on_grid[b] * u(b + 1, best[b + 1])
            best[b] = grid_pct[int(np.argmax(value))]
        if np.array_equal(before, best):
            break
    return best.astype(int)


def shown_log_sd(ask: PlannerAsk | CandidatesAsk) -> np.ndarray | None:
    """Per bracket, the standard deviation of log income that the quartiles the prompt
    shows imply for a log-normal (their log ratio over the normal's interquartile
    range, 1.349); ``None`` when the prompt shows none."""
    spread = income_spread(ask.history, ask.settings, ask.ctx.economy.population.survey_weight)
    if spread is None:
        return None
    iqr = 2 * _NORMAL.inv_cdf(0.75)
    return np.array(
        [0.0 if q is None or q[0] <= 0 else np.log(q[1] / q[0]) / iqr for q in spread["quartiles"]]
    )


@dataclass(frozen=True)
class Workers:
    """Representative workers standing for one shown year's bracket breakdown: each
    bracket's workers at their mean income (the top :data:`SPREAD_BRACKETS` brackets' at
    :func:`income_points`), with quasi-linear iso-elastic preferences ``u = z − T(z) −
    a·z^(1+1/e)/(1+1/e)`` whose ``a`` makes that income their best response to the shown
    rate."""

    edges: np.ndarray
    """Bracket lower edges (USD)."""
    effort: np.ndarray
    """Each worker's disutility scale ``a``."""
    share: np.ndarray
    """Each worker's share of the year's workers (the shown count it stands for over
    their total)."""
    welfare_weight: np.ndarray
    """Each worker's welfare weight (the structural curves' ``g`` of its bracket)."""
    utility: np.ndarray
    """Each worker's utility under the shown schedule."""
    tax: np.ndarray
    """Each worker's tax under the shown schedule (USD)."""


def representative_workers(
    view: Breakdown,
    log_sd: np.ndarray | None = None,
    income_scale: float = 1.0,
    elasticity: float = PRIOR_ELASTICITY,
) -> Workers:
    """The workers of :class:`Workers` for ``view``, their incomes times
    ``income_scale`` (``log_sd`` as in :func:`structural_curves`)."""
    edges, rates, counts, means = view.edges, view.rates, view.counts, view.means
    k = edges.size
    n = max(float(counts.sum()), 1.0)
    g = welfare_weights(view)
    tops = np.append(edges[1:], np.inf)
    spread = _top_spread(k, log_sd)
    incomes, bracket, share = [], [], []
    for j in np.flatnonzero(counts > 0):
        points, shares = income_points(
            max(means[j], 1.0) * income_scale, edges[j], tops[j], spread[j]
        )
        incomes.append(points)
        bracket.append(np.full(points.size, j))
        share.append(counts[j] * shares / n)
    z = np.concatenate(incomes)
    at = np.concatenate(bracket)
    effort = (1 - np.minimum(rates[at], 0.99)) / z ** (1 / elasticity)
    utility, tax = best_responses(effort, rates[None, :], edges, elasticity)
    return Workers(edges, effort, np.concatenate(share), g[at], utility[0], tax[0])


def best_responses(
    effort: np.ndarray, schedules: np.ndarray, edges: np.ndarray, elasticity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Utility and tax (schedules × workers) of each worker's best income under each
    schedule (rows of marginal rates as fractions): the best of every bracket's interior
    optimum, clipped into the bracket (which takes in every kink)."""
    tops = np.append(edges[1:], np.inf)
    below = cumulative_tax_at_edges(edges, schedules)
    net = np.clip(1 - schedules, 1e-9, None)
    z = (net[:, :, None] / effort[None, None, :]) ** elasticity
    z = np.clip(z, edges[None, :, None], tops[None, :, None])
    tax = below[:, :, None] + schedules[:, :, None] * (z - edges[None, :, None])
    utility = z - tax - effort * z ** (1 + 1 / elasticity) / (1 + 1 / elasticity)
    best = np.argmax(utility, axis=1)[:, None, :]
    return (
        np.take_along_axis(utility, best, axis=1)[:, 0, :],
        np.take_along_axis(tax, best, axis=1)[:, 0, :],
    )


def joint_welfare(
    workers: list[Workers],
    rebate_share: float,
    schedules_pct: np.ndarray,
    elasticity: float = PRIOR_ELASTICITY,
) -> np.ndarray:
    """Per schedule (rows, whole percents), the welfare change (SWF units, a mean over
    workers) from the shown schedule that the representative workers predict, averaged
    over the shown years: revenue worth ``rebate_share`` a dollar plus each worker's
    utility change at its welfare weight. Unlike :func:`structural_curves` it moves every
    bracket at once, so it sees that a high rate on one bracket pays only while the
    workers above it keep paying (docs/agents.md)."""
    schedules = schedules_pct / 100
    out = np.zeros(schedules.shape[0])
    for w in workers:
        utility, tax = best_responses(w.effort, schedules, w.edges, elasticity)
        change = rebate_share * (tax - w.tax) + w.welfare_weight * (utility - w.utility)
        out += change @ w.share
    return out / len(workers)


def _fit_with_offset(
    rates: np.ndarray,
    swf: np.ndarray,
    noise: float | None,
    offset: np.ndarray,
    rounding_sd: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The weight ``λ`` the shown welfare gives a structural prediction (``offset``, one
    value per shown year), then the correction fitted to what it leaves (priors
    :data:`CORRECTION_PRIOR` times the plain fit's, with the neighbours' interactions):
    ``(λ, coefficients, centre)``."""
    weight = fit_surface(rates, swf, noise, offset, rounding_sd=rounding_sd)[0][-1]
    coef, center = fit_surface(
        rates,
        swf - weight * offset,
        noise,
        prior_scale=CORRECTION_PRIOR,
        rounding_sd=rounding_sd,
        interactions=True,
    )
    return float(weight), coef, center


def _additive_best(
    views: list[Breakdown],
    rebate_share: float,
    log_sd: np.ndarray | None,
    rates: np.ndarray,
    swf: np.ndarray,
    noise: float | None,
    rounding_sd: float,
    grid: np.ndarray,
) -> np.ndarray:
    """The best schedule of the structural curves plus their fitted correction (each
    bracket moved alone, then the neighbours' interactions)."""
    n = rates.shape[1]
    curves = structural_curves(views, rebate_share, grid, log_sd=log_sd)
    at = np.clip(np.round(rates).astype(int) - int(grid[0]), 0, grid.size - 1)
    offset = np.array([curves[np.arange(n), row].sum() for row in at])
    weight_of_curves, coef, center = _fit_with_offset(rates, swf, noise, offset, rounding_sd)
    return surface_best_with_curves(
        coef, center, weight_of_curves * curves, grid, rates, interactions=True
    )


def _pair_allowed(rates: np.ndarray, x: np.ndarray, b: int, options: np.ndarray) -> np.ndarray:
    """Which of ``options`` bracket ``b`` may take beside the current rates ``x`` of its
    neighbours: at most the highest rate a shown year (``rates``) set for ``b`` while
    setting that neighbour's at least as high (the pair guard, module docstring)."""
    allowed = np.ones(options.size, dtype=bool)
    for j in (b - 1, b + 1):
        if 0 <= j < x.size:
            tried = rates[rates[:, j] >= x[j] - 1e-9, b]
            allowed &= options <= (tried.max() if tried.size else -np.inf) + 1e-9
    return allowed


def model_best(ask: PlannerAsk | CandidatesAsk) -> np.ndarray:
    """The model's best schedule (whole percents within the rate bounds) from the years
    the prompt shows: with the bracket breakdown shown (``planner_uncertainty``), the
    joint model of the representative workers plus the fitted correction (module
    docstring, steps 2–3); without, the quadratic fit alone."""
    ctx, settings = ask.ctx, ask.settings
    years = shown_years(ask.history, settings)
    rates = np.array([pct_list(r.schedule.rates) for r in years], dtype=float)
    decimals = welfare_decimals(ask.history, settings)
    swf = np.array([shown_swf(r, decimals) for r in years])
    noise = welfare_noise_sd(ask.history, decimals) if settings.uncertainty else None
    rounding_sd = 10.0**-decimals / np.sqrt(12)
    lo_pct, hi_pct = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    n = rates.shape[1]
    if not settings.uncertainty:
        coef, center = fit_surface(rates, swf, noise, rounding_sd=rounding_sd)
        return surface_best(coef, center, np.full(n, lo_pct), np.full(n, hi_pct))
    grid = np.arange(lo_pct, hi_pct + 1, dtype=float)
    weight = ctx.economy.population.survey_weight if settings.weighted_breakdown else None
    views = [breakdown(r, ctx.economy.size, weight) for r in years[-BREAKDOWN_YEARS:]]
    rebate_share = ctx.economy.utility_config.rebate_share  # the context states it
    log_sd = shown_log_sd(ask)
    doubted = [
        [representative_workers(v, log_sd, scale) for v in views]
        for scale in (1 - INCOME_DOUBT, 1.0, 1 + INCOME_DOUBT)
    ]
    offset = joint_welfare(doubted[1], rebate_share, rates)
    weight_of_model, coef, center = _fit_with_offset(rates, swf, noise, offset, rounding_sd)
    slope, curvature, pairs = coef[1 : 1 + n], coef[1 + n : 1 + 2 * n], coef[1 + 2 * n : 3 * n]
    low, high = rates.min(axis=0), rates.max(axis=0)

    def correction(schedules: np.ndarray) -> np.ndarray:
        """The fitted correction of each schedule (rows), held flat beyond the shown
        rates."""
        u = (np.clip(schedules, low, high) - center) / SCALE_POINTS
        return (slope * u + curvature * u**2).sum(axis=1) + (pairs * u[:, :-1] * u[:, 1:]).sum(
            axis=1
        )

    def value(schedules: np.ndarray) -> np.ndarray:
        """The model's welfare of each schedule (rows): the worst over the doubted
        incomes, plus the correction."""
        joint = np.min([joint_welfare(ws, rebate_share, schedules) for ws in doubted], axis=0)
        return weight_of_model * joint + correction(schedules)

    # The last years exploit: within the rates shown, from the last shown schedule, with
    # the pair guard, so that no untried pair of neighbouring rates is enacted. A year
    # whose welfare fell far below the model's fit has not tried its rates safely (the
    # workers above a slice may have dropped there, which the model missed).
    horizon = settings.horizon or 0
    exploit = horizon > 0 and horizon - (ask.history[-1].year + 1) <= EXPLOIT_YEARS
    tried = rates
    if exploit:
        fitted = coef[0] + weight_of_model * offset + correction(rates)
        safe = swf - fitted >= -SURPRISE_SD * _noise_scale(swf, noise, rounding_sd)
        tried = rates[safe] if safe.any() else rates
        lowest, highest, starts = low, high, [tried[-1].copy()]
    else:
        lowest, highest = np.full(n, float(lo_pct)), np.full(n, float(hi_pct))
        additive = _additive_best(views, rebate_share, log_sd, rates, swf, noise, rounding_sd, grid)
        starts = [additive, rates[-1]]
    best, best_value = rates[-1], -np.inf
    for start in starts:
        x = np.clip(np.round(start).astype(float), lowest, highest)
        for _ in range(_JOINT_PASSES):
            before = x.copy()
            for b in range(n):
                options = grid[(grid >= lowest[b]) & (grid <= highest[b])]
                if exploit:
                    options = options[_pair_allowed(tried, x, b, options)]
                if options.size == 0:
                    continue
                trial = np.repeat(x[None, :], options.size, axis=0)
                trial[:, b] = options
                x[b] = options[int(np.argmax(value(trial)))]
            if np.array_equal(before, x):
                break
        reached = float(value(x[None, :])[0])
        if reached > best_value:
            best, best_value = x, reached
    return np.round(best).astype(int)


def surface_climb(ask: PlannerAsk | CandidatesAsk, count: int = 1) -> list[tuple[list[int], str]]:
    """``count`` distinct proposals (whole percents) with why, best first."""
    ctx, settings = ask.ctx, ask.settings
    lo_pct, hi_pct = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    best = model_best(ask)
    n = best.size

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
