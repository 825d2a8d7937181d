"""The CRRA segment solver's shortcuts (prepared rebate-free parts, warm starts, early
stop) give the same best responses as a cold solve, rebate after rebate."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, UtilityConfig, best_response_hours, synthetic_population
from llmecon.economy.best_response import CrraSegments
from llmecon.economy.equilibrium import _Responder
from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.economy.utility import WEEKS_PER_YEAR, utility

EDGES = np.array([0.0, 11_925.0, 48_475.0, 103_350.0, 197_300.0, 250_525.0, 626_350.0])


def _economy(eta: float, eps: float, seed: int = 3) -> Economy:
    pop = synthetic_population(200, np.random.default_rng(seed))
    return Economy(pop, UtilityConfig(elasticity=eps, crra=eta))


def _schedules(rng: np.random.Generator, n: int) -> np.ndarray:
    """Progressive, non-monotone and near-confiscatory rate vectors."""
    rates = rng.uniform(0.0, 0.95, (n, EDGES.size))
    rates[0] = np.sort(rates[0])
    rates[1] = 0.99
    return rates


@pytest.mark.parametrize(("eta", "eps"), [(0.5, 0.2), (1.0, 0.4), (2.0, 1.0)])
def test_responder_matches_a_cold_best_response_rebate_after_rebate(eta: float, eps: float) -> None:
    economy = _economy(eta, eps)
    s, psi, cfg = economy.population.hourly_wage_usd, economy.psi, economy.utility_config
    rng = np.random.default_rng(7)
    rates = _schedules(rng, 6)
    responder = _Responder(s, psi, EDGES, rates, cfg)
    every = np.arange(rates.shape[0])
    rebate = np.full(rates.shape[0], 9_000.0)
    # Big jumps, both ways, then ever smaller moves (as the root finder makes them),
    # sometimes for only part of the batch.
    for move in (25_000.0, -30_000.0, 4_000.0, -700.0, 3.0, -0.01, 1e-5):
        idx = every if move != 3.0 else every[::2]
        rebate[idx] = np.maximum(rebate[idx] + move * rng.uniform(0.5, 1.5, idx.size), 0.0)
        got = responder.respond(idx, rebate[idx])
        cold = best_response_hours(s, psi, EDGES, rates[idx], cfg, rebate[idx])
        np.testing.assert_allclose(got, cold, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("eta", [0.5, 1.0, 2.0])
def test_warm_started_segments_reach_the_cold_root(eta: float) -> None:
    economy = _economy(eta, 0.4, seed=11)
    s, psi, cfg = economy.population.hourly_wage_usd, economy.psi, economy.utility_config
    rates = _schedules(np.random.default_rng(1), 4)
    wage = WEEKS_PER_YEAR * s
    seg_lo = np.minimum(EDGES[None, :] / wage[:, None], cfg.max_weekly_hours)
    seg_hi = np.minimum(np.append(EDGES[1:], np.inf)[None, :] / wage[:, None], 80.0)
    intercept = (rates * EDGES - cumulative_tax_at_edges(EDGES, rates))[:, None, :]
    slope = wage[None, :, None] * (1.0 - rates)[:, None, :]
    n_sched, shape = rates.shape[0], seg_lo.shape
    segs = CrraSegments.of(
        slope.reshape(n_sched, -1),
        np.broadcast_to(intercept, slope.shape).reshape(n_sched, -1),
        np.broadcast_to(psi[:, None], shape).ravel(),
        seg_lo.ravel(),
        seg_hi.ravel(),
        cfg,
    )
    cold_h, cold_v = segs.solve(np.array(20_000.0), cfg)
    # Any positive start, near or far, converges to the same maximiser.
    for start in (cold_h * 1.3, np.full(cold_h.shape, 80.0), cold_h):
        h, v = segs.solve(np.array(20_000.0), cfg, start)
        np.testing.assert_allclose(h, cold_h, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(v, cold_v, rtol=1e-12)
    # The solved hours are each segment's maximiser: no nearby hours do better.
    base = segs.intercept + 20_000.0
    shifted = np.clip(cold_h[None] + np.array([-1e-3, 1e-3])[:, None, None], segs.lo, segs.hi)
    value = utility(segs.slope * shifted + base, shifted, segs.psi, cfg)
    assert np.all(value <= cold_v + 1e-12 * np.abs(cold_v))
