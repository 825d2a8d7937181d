from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import (
    Economy,
    Population,
    TaxSchedule,
    UtilityConfig,
    equality,
    gini,
    inverse_income_weights,
    synthetic_population,
)
from llmecon.economy.welfare import marginal_welfare_weights, social_welfare
from llmecon.planners import optimal_rates


def test_gini_known_values() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    # One person has everything: Gini = (n-1)/n.
    x = np.zeros(5)
    x[0] = 7.0
    assert gini(x) == pytest.approx(0.8)
    assert equality(x) == pytest.approx(0.0)
    assert gini(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.25)
    batch = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(gini(batch), [0.0, 2.0 / 3.0])


def test_inverse_income_weights_mean_one_and_decreasing() -> None:
    w = inverse_income_weights(np.array([10.0, 20.0, 40.0]))
    assert w.mean() == pytest.approx(1.0)
    assert w[0] == pytest.approx(2 * w[1]) == pytest.approx(4 * w[2])


def test_social_welfare_definitions() -> None:
    u = np.array([1.0, 2.0, 6.0])
    c = np.array([2.0, 2.0, 2.0])
    z = np.array([3.0, 3.0, 6.0])
    g = np.array([2.0, 0.5, 0.5])
    assert social_welfare("utilitarian", u, c, z, g) == pytest.approx(3.0)
    assert social_welfare("inverse_income", u, c, z, g) == pytest.approx((2 + 1 + 3) / 3)
    assert social_welfare("rawlsian", u, c, z, g) == pytest.approx(1.0)
    assert social_welfare("equality_times_productivity", u, c, z, g) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="unknown social welfare"):
        social_welfare("happiness", u, c, z, g)


def _flat_economy(swf: str, eps: float) -> Economy:
    # Hours far from the cap so z ∝ (1 − τ)^ε holds for every worker (DESIGN §2 check).
    rng = np.random.default_rng(11)
    base = synthetic_population(2_000, rng)
    pop = Population(base.hourly_wage_usd, np.full(base.size, 40.0), base.ids)
    return Economy(pop, UtilityConfig(elasticity=eps, max_weekly_hours=168.0), swf=swf)


@pytest.mark.parametrize("eps", [0.2, 0.4, 1.0])
def test_flat_tax_optimum_matches_analytic_formula(eps: float) -> None:
    economy = _flat_economy("inverse_income", eps)
    z = 52 * economy.population.hourly_wage_usd * economy.rational_hours(TaxSchedule.flat(0.0))
    g = economy.weights
    g_bar = (g * z).mean() / (g.mean() * z.mean())
    analytic = (1 - g_bar) / (1 - g_bar + eps)
    found = optimal_rates(economy, (0.0,))
    assert found.rates[0] == pytest.approx(analytic, abs=0.002)
    assert 0.05 < analytic < 0.95  # the check is not trivially at a bound


def test_flat_tax_utilitarian_optimum_is_zero() -> None:
    economy = _flat_economy("utilitarian", 0.4)
    found = optimal_rates(economy, (0.0,))
    assert found.rates[0] == pytest.approx(0.0, abs=1e-6)


def test_rebate_closes_the_budget(economy: Economy) -> None:
    out, m = economy.evaluate(TaxSchedule.status_quo())
    assert out.consumption_usd.sum() == pytest.approx(out.income_usd.sum())
    assert m.revenue_usd == pytest.approx(out.tax_usd.sum())
    assert m.rebate_usd == pytest.approx(m.revenue_usd / economy.size)
    assert 0 < m.effective_tax_rate < 0.37


def test_welfare_of_rates_matches_full_evaluation(economy: Economy) -> None:
    rates = np.random.default_rng(0).uniform(0, 1, (4, 7))
    fast = economy.welfare_of_rates(TaxSchedule.status_quo().edges, rates)
    for k in range(4):
        _, m = economy.evaluate(TaxSchedule.status_quo().with_rates(rates[k]))
        assert fast[k] == pytest.approx(m.swf, rel=1e-12)


def test_marginal_weights(economy: Economy) -> None:
    out, _ = economy.evaluate(TaxSchedule.status_quo())
    args = (out.consumption_usd, out.income_usd, out.utility, economy.weights, None)
    np.testing.assert_allclose(marginal_welfare_weights("utilitarian", *args), 1.0)
    np.testing.assert_allclose(marginal_welfare_weights("inverse_income", *args), economy.weights)
    raw = marginal_welfare_weights("rawlsian", *args)
    assert raw.max() == pytest.approx(economy.size) and (raw > 0).sum() == 1
    etp = marginal_welfare_weights("equality_times_productivity", *args)
    order = np.argsort(out.consumption_usd)
    assert etp[order[0]] > etp[order[-1]]  # a dollar to the poorest raises equality most
