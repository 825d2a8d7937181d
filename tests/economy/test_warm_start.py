"""Warm starts of the CRRA equilibrium (the oracle's neighbouring candidates) and the
segment solver's end tests: the same answers as a cold solve, in fewer steps."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, synthetic_population
from llmecon.economy.best_response import CrraSegments
from llmecon.economy.equilibrium import _Responder, tolerance_usd
from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.economy.utility import WEEKS_PER_YEAR, marginal_consumption_utility

EDGES = np.array(TaxSchedule.status_quo().edges)
ETAS = [0.5, 1.0, 2.0]


def _economy(eta: float | None, eps: float = 0.4, n: int = 150, seed: int = 4) -> Economy:
    pop = synthetic_population(n, np.random.default_rng(seed))
    return Economy(pop, UtilityConfig(elasticity=eps, crra=eta))


def _neighbours(rng: np.random.Generator, centre: np.ndarray, n: int) -> np.ndarray:
    """Rate vectors near ``centre``, one coordinate moved each (as a line search)."""
    rates = np.repeat(centre[None, :], n, axis=0)
    cols = rng.integers(0, centre.size, n)
    rates[np.arange(n), cols] = np.clip(centre[cols] + rng.uniform(-0.05, 0.05, n), 0.0, 1.0)
    return rates


@pytest.mark.parametrize("eta", ETAS)
def test_a_warm_start_reaches_the_cold_equilibrium_in_fewer_steps(eta: float) -> None:
    economy = _economy(eta)
    rng = np.random.default_rng(11)
    centre = np.array([0.3, 0.45, 0.2, 0.6, 0.35, 0.5, 0.4])  # non-monotone
    rates = np.vstack([_neighbours(rng, centre, 10), rng.uniform(0.0, 0.95, (4, 7))])
    warm = economy.equilibrium_of_rates(EDGES, centre[None, :]).warm_start(0)
    assert warm is not None
    cold = economy.score_rates(EDGES, rates)
    hot = economy.score_rates(EDGES, rates, warm=warm)
    a, b = cold.equilibrium, hot.equilibrium
    np.testing.assert_array_equal(a.converged, b.converged)
    ok = a.converged
    # Both are roots of the same strictly decreasing f, each within the tolerance.
    gap = np.abs(a.rebate_usd - b.rebate_usd)[ok]
    assert np.all(gap <= 4 * tolerance_usd(a.rebate_usd[ok]))
    np.testing.assert_allclose(b.weekly_hours[ok], a.weekly_hours[ok], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(hot.welfare[ok], cold.welfare[ok], rtol=1e-9)
    # The neighbours start next to their root: fewer best responses than from R0.
    assert b.evaluations[:10].sum() < a.evaluations[:10].sum()
    # ... and settle well inside the tolerance, so a value does not depend on where in
    # the tolerance the start happened to be (a search would chase that noise).
    tight = 1e-3 * tolerance_usd(b.rebate_usd[:10])
    assert np.all(np.abs(b.residual_usd[:10]) <= tight)


def test_quasi_linear_equilibria_offer_no_warm_start() -> None:
    economy = _economy(None)
    assert economy.equilibrium_of_rates(EDGES, np.full((1, 7), 0.3)).warm_start(0) is None


def test_a_warm_start_for_other_segments_is_refused() -> None:
    economy = _economy(1.0)
    s, psi, cfg = economy.population.hourly_wage_usd, economy.psi, economy.utility_config
    responder = _Responder(s, psi, EDGES, np.full((2, 7), 0.3), cfg)
    with pytest.raises(ValueError, match="segment hours"):
        responder.prime(np.ones(responder.per_schedule + 1), 1_000.0)


@pytest.mark.parametrize("eta", ETAS)
def test_a_primed_responder_matches_a_cold_best_response(eta: float) -> None:
    economy = _economy(eta, eps=1.0)
    s, psi, cfg = economy.population.hourly_wage_usd, economy.psi, economy.utility_config
    rng = np.random.default_rng(5)
    centre = rng.uniform(0.1, 0.9, 7)
    warm = economy.equilibrium_of_rates(EDGES, centre[None, :]).warm_start(0)
    assert warm is not None
    rates = np.vstack([_neighbours(rng, centre, 5), rng.uniform(0.0, 0.99, (3, 7))])
    responder = _Responder(s, psi, EDGES, rates, cfg)
    responder.prime(warm.segment_hours, warm.segment_rebate_usd)
    every = np.arange(rates.shape[0])
    for rebate in (warm.rebate_usd, warm.rebate_usd + 900.0, 2_000.0, 60_000.0):
        got = responder.respond(every, np.full(every.size, rebate))
        cold = economy.rational_hours(TaxSchedule(tuple(EDGES), tuple(rates[0])), rebate)
        np.testing.assert_allclose(got[0], cold, rtol=1e-9, atol=1e-9)
        for k in every[1:]:
            cold = economy.rational_hours(TaxSchedule(tuple(EDGES), tuple(rates[k])), rebate)
            np.testing.assert_allclose(got[k], cold, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("eta", "eps"), [(0.5, 0.2), (1.0, 0.4), (2.0, 1.0)])
def test_the_end_thresholds_agree_with_the_derivative_at_the_ends(eta: float, eps: float) -> None:
    # A segment's optimum is its lower end when the objective falls there, its upper
    # end when it still rises there, else inside: the solver tests this by comparing
    # the rebate with precomputed thresholds; check against the derivative itself.
    economy = _economy(eta, eps=eps, seed=8)
    s, psi, cfg = economy.population.hourly_wage_usd, economy.psi, economy.utility_config
    rates = np.random.default_rng(2).uniform(0.0, 0.99, (6, 7))
    wage = WEEKS_PER_YEAR * s
    seg_lo = np.minimum(EDGES[None, :] / wage[:, None], cfg.max_weekly_hours)
    seg_hi = np.minimum(np.append(EDGES[1:], np.inf)[None, :] / wage[:, None], 80.0)
    intercept = (rates * EDGES - cumulative_tax_at_edges(EDGES, rates))[:, None, :]
    slope = wage[None, :, None] * (1.0 - rates)[:, None, :]
    shape = seg_lo.shape
    segs = CrraSegments.of(
        slope.reshape(6, -1),
        np.broadcast_to(intercept, slope.shape).reshape(6, -1),
        np.broadcast_to(psi[:, None], shape).ravel(),
        seg_lo.ravel(),
        seg_hi.ravel(),
        cfg,
    )
    for rebate in (0.0, 8_000.0, 40_000.0):
        hours, _ = segs.solve(np.full(6, rebate), cfg)
        base = segs.intercept + rebate

        def derivative(h: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """The objective's slope at hours ``h`` and its consumption part."""
            c = segs.slope * h + base
            mu = marginal_consumption_utility(c, eta) * segs.slope
            return mu - WEEKS_PER_YEAR * segs.psi * h ** (1.0 / eps), mu

        d_lo, mu_lo = derivative(np.broadcast_to(segs.lo, base.shape), base)
        d_hi, mu_hi = derivative(np.broadcast_to(segs.hi, base.shape), base)
        clear_lo = np.abs(d_lo) > 1e-6 * mu_lo
        clear_hi = np.abs(d_hi) > 1e-6 * mu_hi
        falls = clear_lo & (d_lo < 0)
        rises = clear_hi & (d_hi > 0) & ~falls
        inside = clear_lo & clear_hi & (d_lo > 0) & (d_hi < 0)
        assert falls.any() and rises.any() and inside.any()
        lo, hi = np.broadcast_to(segs.lo, base.shape), np.broadcast_to(segs.hi, base.shape)
        np.testing.assert_array_equal(hours[falls], lo[falls])
        np.testing.assert_array_equal(hours[rises], hi[rises])
        assert np.all((hours[inside] > lo[inside]) & (hours[inside] < hi[inside]))
