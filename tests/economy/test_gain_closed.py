"""The headline metric: share of the none → oracle welfare gain closed."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, gain_closed, synthetic_population
from llmecon.planners import optimal_rates

THREE = (0.0, 48_475.0, 197_300.0)


def test_definition_on_plain_numbers() -> None:
    assert gain_closed(10.0, 10.0, 20.0) == 0.0
    assert gain_closed(20.0, 10.0, 20.0) == 1.0
    assert gain_closed(15.0, 10.0, 20.0) == pytest.approx(0.5)
    assert gain_closed(5.0, 10.0, 20.0) == pytest.approx(-0.5)  # worse than no tax
    # Negative SWFs: the ratio W / W_oracle would invert (none "173 %"); this does not.
    assert gain_closed(-3.0, -4.0, -2.0) == pytest.approx(0.5)
    assert gain_closed(-4.0, -4.0, -2.0) == 0.0


@pytest.mark.parametrize(
    ("none", "oracle"), [(5.0, 5.0), (1e6, 1e6 + 1e-6), (None, 3.0), (3.0, None)]
)
def test_not_available_without_a_gap(none: float | None, oracle: float | None) -> None:
    assert gain_closed(4.0, none, oracle) is None


def test_none_zero_oracle_one_with_negative_crra_welfare() -> None:
    pop = synthetic_population(60, np.random.default_rng(2))
    economy = Economy(pop, UtilityConfig(crra=2.0))
    found = optimal_rates(economy, THREE, coarse_points=11, refinements=3, polish=False)
    none = economy.evaluate(TaxSchedule(THREE, (0.0, 0.0, 0.0)))[1].swf
    oracle = economy.evaluate(TaxSchedule(THREE, tuple(found.rates)))[1].swf
    status_quo = economy.evaluate(TaxSchedule.status_quo(THREE))[1].swf
    assert none < 0 and oracle < 0
    assert gain_closed(none, none, found.swf) == 0.0
    assert gain_closed(oracle, none, found.swf) == pytest.approx(1.0, abs=1e-9)
    share = gain_closed(status_quo, none, found.swf)
    assert share is not None and 0.0 < share < 1.0


def test_not_available_when_no_tax_is_optimal() -> None:
    # Utilitarian, quasi-linear, everything rebated: taxes only distort, the oracle is
    # the free market, so there is no gain to close.
    economy = Economy(synthetic_population(80, np.random.default_rng(4)), swf="utilitarian")
    found = optimal_rates(economy, THREE)
    none = economy.evaluate(TaxSchedule(THREE, (0.0, 0.0, 0.0)))[1].swf
    assert found.swf == pytest.approx(none, rel=1e-12)
    assert gain_closed(none, none, found.swf) is None
