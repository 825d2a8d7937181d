from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import (
    CALIBRATION_SCHEDULE,
    Economy,
    Population,
    TaxSchedule,
    UtilityConfig,
    best_response_hours,
    synthetic_population,
)
from llmecon.economy.utility import WEEKS_PER_YEAR, utility


@pytest.mark.parametrize("crra", [None, 1.0, 2.0])
def test_status_quo_hours_equal_usual_hours(population: Population, crra: float | None) -> None:
    economy = Economy(population, UtilityConfig(crra=crra))
    hours = economy.rational_hours(CALIBRATION_SCHEDULE)
    np.testing.assert_allclose(hours, population.usual_weekly_hours, rtol=0, atol=1e-9)


def test_status_quo_hours_with_workers_exactly_on_an_edge() -> None:
    # Wages chosen so that 40 h lands exactly on bracket edges.
    wages = np.array(CALIBRATION_SCHEDULE.edges[1:]) / (WEEKS_PER_YEAR * 40.0)
    pop = Population(wages, np.full(wages.size, 40.0), tuple(map(str, range(wages.size))))
    hours = Economy(pop).rational_hours(CALIBRATION_SCHEDULE)
    np.testing.assert_allclose(hours, 40.0, atol=1e-9)


def _brute_force(
    economy: Economy, schedule: TaxSchedule, rebate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Utility on a fine grid of hours (plus every kink), for each worker."""
    s = economy.population.hourly_wage_usd
    grid = np.linspace(0.0, economy.utility_config.max_weekly_hours, 8001)
    kinks = np.asarray(schedule.edges)[None, :] / (WEEKS_PER_YEAR * s[:, None])
    kinks = np.clip(kinks, 0.0, economy.utility_config.max_weekly_hours)
    cands = np.concatenate([np.broadcast_to(grid, (s.size, grid.size)), kinks], axis=1)
    z = WEEKS_PER_YEAR * s[:, None] * cands
    c = z - schedule.tax(z) + rebate
    u = utility(c, cands, economy.psi[:, None], economy.utility_config)
    best = u.argmax(axis=1)
    return cands[np.arange(s.size), best], u.max(axis=1)


@pytest.mark.parametrize("monotone", [True, False])
@pytest.mark.parametrize("crra", [None, 1.0])
def test_best_response_matches_brute_force(monotone: bool, crra: float | None) -> None:
    rng = np.random.default_rng(2024 + monotone)
    pop = synthetic_population(150, rng)
    economy = Economy(pop, UtilityConfig(crra=crra))
    for trial in range(8):
        n_b = int(rng.integers(2, 8))
        edges = np.concatenate([[0.0], np.sort(rng.uniform(5_000, 400_000, n_b - 1))])
        rates = rng.uniform(0, 0.9, n_b)
        if monotone:
            rates = np.sort(rates)
        schedule = TaxSchedule(tuple(edges), tuple(rates))
        rebate = 5_000.0
        hours = economy.rational_hours(schedule, rebate_usd=rebate)
        z = WEEKS_PER_YEAR * pop.hourly_wage_usd * hours
        u_exact = utility(z - schedule.tax(z) + rebate, hours, economy.psi, economy.utility_config)
        grid_hours, u_grid = _brute_force(economy, schedule, rebate)
        # Exact never loses to the grid, and the grid (step 0.01 h) comes within a hair.
        scale = np.abs(u_grid) + 1.0
        assert np.all(u_exact >= u_grid - 1e-9 * scale), f"trial {trial}"
        assert np.all(u_exact - u_grid <= 1e-4 * scale), f"trial {trial}"
        # Where the optimum is unique the hours agree to the grid resolution.
        close = np.abs(hours - grid_hours) <= 0.02
        assert close.mean() > 0.95, f"trial {trial}: {close.mean():.3f}"


def test_non_monotone_schedule_can_make_workers_jump() -> None:
    # A very high middle bracket: some workers jump over it to the cheaper top bracket
    # or stay below it; nobody rationally sits inside it near the lower edge.
    pop = synthetic_population(400, np.random.default_rng(3))
    economy = Economy(pop)
    schedule = TaxSchedule((0.0, 40_000.0, 60_000.0), (0.1, 0.95, 0.1))
    hours = economy.rational_hours(schedule)
    z = WEEKS_PER_YEAR * pop.hourly_wage_usd * hours
    inside = (z > 40_000.5) & (z < 59_999.5)
    assert not inside.any()


def test_batched_rates_match_single() -> None:
    pop = synthetic_population(100, np.random.default_rng(1))
    economy = Economy(pop)
    rates = np.random.default_rng(2).uniform(0, 1, (5, 7))
    batch = best_response_hours(
        pop.hourly_wage_usd, economy.psi, CALIBRATION_SCHEDULE.edges, rates, economy.utility_config
    )
    for k in range(5):
        single = economy.rational_hours(CALIBRATION_SCHEDULE.with_rates(rates[k]))
        np.testing.assert_allclose(batch[k], single)


def test_hours_respond_with_elasticity_epsilon() -> None:
    pop = synthetic_population(200, np.random.default_rng(5))
    economy = Economy(pop, UtilityConfig(elasticity=0.4, max_weekly_hours=500))
    h1 = economy.rational_hours(TaxSchedule.flat(0.2))
    h2 = economy.rational_hours(TaxSchedule.flat(0.3))
    np.testing.assert_allclose(np.log(h2 / h1) / np.log(0.7 / 0.8), 0.4, rtol=1e-9)


def test_hours_capped_at_max() -> None:
    pop = synthetic_population(200, np.random.default_rng(5))
    economy = Economy(pop, UtilityConfig(max_weekly_hours=72))
    hours = economy.rational_hours(TaxSchedule.flat(0.0))
    assert hours.max() == pytest.approx(72.0)
    assert (hours == 72.0).sum() >= 1
    assert hours.min() >= 0
