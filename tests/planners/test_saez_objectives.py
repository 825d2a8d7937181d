"""Saez with the run's objective: the rebate share, every SWF's weights, convergence."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest

from llmecon.economy import Economy, Population, TaxSchedule, UtilityConfig, gain_closed
from llmecon.personas import default_bank_path, load_bank, population_from_personas
from llmecon.planners import (
    PlannerContext,
    SaezConvergenceWarning,
    SaezResult,
    SaezWeights,
    make_planner,
    optimal_rates,
    saez_bracket_rates,
    solve_saez,
)
from llmecon.planners import saez as saez_module

EDGES = TaxSchedule.status_quo().edges


@cache
def _bank(n: int) -> Population:
    return population_from_personas(load_bank(default_bank_path())[:n])


def _gain(economy: Economy, rates: np.ndarray) -> float | None:
    oracle = optimal_rates(economy, EDGES)
    none = economy.evaluate(TaxSchedule(EDGES, (0.0,) * len(EDGES)))[1].swf
    swf = economy.evaluate(TaxSchedule(EDGES, tuple(rates)))[1].swf
    return gain_closed(swf, none, oracle.swf)


def test_saez_with_half_the_revenue_rebated_closes_the_gain() -> None:
    # The issue: at ρ = 0.5 Saez enacted the ρ = 1 rates and lost to `none`.
    economy = Economy(_bank(1000), UtilityConfig(rebate_share=0.5))
    result = solve_saez(economy, EDGES)
    gain = _gain(economy, result.rates)
    assert gain is not None and gain >= 0.99
    # ... the ρ = 1 rates would not have.
    full = solve_saez(Economy(_bank(1000)), EDGES)
    wrong = _gain(economy, full.rates)
    assert wrong is not None and wrong < 0.9


@pytest.mark.parametrize(
    "swf", ["inverse_income", "utilitarian", "rawlsian", "equality_times_productivity"]
)
def test_saez_captures_the_gain_under_every_swf(swf: str) -> None:
    economy = Economy(_bank(500), swf=swf)
    rates = solve_saez(economy, EDGES).rates
    gain = _gain(economy, rates)
    if swf == "utilitarian":  # no tax is optimal: nothing to close, Saez taxes nothing
        assert gain is None
        np.testing.assert_allclose(rates, 0.0, atol=1e-4)
    else:
        assert gain is not None and gain > 0.9, gain


def test_equality_times_productivity_uses_its_own_weights() -> None:
    # With inverse-income weights (the old stand-in) Saez lost most of the gain.
    economy = Economy(_bank(500), swf="equality_times_productivity")
    own = solve_saez(economy, EDGES).rates
    stand_in = solve_saez(Economy(_bank(500), swf="inverse_income"), EDGES).rates
    own_gain, stand_in_gain = _gain(economy, own), _gain(economy, stand_in)
    assert own_gain is not None and stand_in_gain is not None
    assert own_gain > stand_in_gain + 0.05


def test_the_formula_follows_the_value_of_revenue() -> None:
    z = np.linspace(5_000, 400_000, 400)
    g = 1.0 / z
    full = saez_bracket_rates(z, SaezWeights(g, 1.0), EDGES, 0.4)
    half = saez_bracket_rates(z, SaezWeights(g, 0.5), EDGES, 0.4)
    none = saez_bracket_rates(z, SaezWeights(g, 0.0), EDGES, 0.4)
    np.testing.assert_array_equal(saez_bracket_rates(z, g, EDGES, 0.4), full)
    assert np.all(half <= full) and np.any(half < full - 0.05)
    np.testing.assert_array_equal(none, 0.0)  # revenue worth nothing: tax nothing
    # Welfarist sample form: τ/(1−τ) = Σ a_i(κ − g_i) / (κ ε Σ_responders z_i).
    b = 2
    gn = g / g.mean()
    taxed = np.clip(z - EDGES[b], 0, EDGES[b + 1] - EDGES[b])
    inside = (z > EDGES[b]) & (z < EDGES[b + 1])
    ratio = (taxed @ (0.5 - gn)) / (0.5 * 0.4 * z[inside].sum())
    assert half[b] == pytest.approx(ratio / (1 + ratio), rel=1e-12)


def test_saez_reports_its_fixed_point() -> None:
    economy = Economy(_bank(200))
    short = solve_saez(economy, EDGES, max_iter=2)
    assert not short.converged and short.iterations == 2 and short.last_change > 1e-5
    done = solve_saez(Economy(_bank(200), swf="equality_times_productivity"), EDGES)
    assert done.converged and done.last_change < 1e-5
    planner = make_planner("saez", PlannerContext(economy, EDGES, np.random.default_rng(0)))
    planner.propose([])
    detail = planner.last_detail  # type: ignore[attr-defined]
    assert set(detail) == {
        *("saez_converged", "saez_iterations", "saez_last_change", "saez_cycle_width")
    }


def test_saez_warns_when_it_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = SaezResult(np.full(len(EDGES), 0.3), 200, False, 0.02, 0.04)
    monkeypatch.setattr(saez_module, "solve_saez", lambda *a, **k: stuck)
    ctx = PlannerContext(Economy(_bank(50)), EDGES, np.random.default_rng(0))
    planner = make_planner("saez", ctx)
    with pytest.warns(SaezConvergenceWarning, match="did not converge"):
        schedule = planner.propose([])
    assert schedule.rates == (0.3,) * len(EDGES)
    assert planner.last_detail["saez_converged"] is False  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        planner.propose([])  # computed once: no second warning


def test_a_cycle_narrower_than_a_point_is_not_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1 000 workers Saez's iterates cycle within 0.4 points (a few workers switch
    brackets): `llmecon run --planner saez --agents 1000`, the --help's own example,
    warned on every run that the schedule was "not Saez's rates"."""
    narrow = SaezResult(np.full(len(EDGES), 0.3), 200, False, 0.004, 0.004)
    monkeypatch.setattr(saez_module, "solve_saez", lambda *a, **k: narrow)
    ctx = PlannerContext(Economy(_bank(50)), EDGES, np.random.default_rng(0))
    planner = make_planner("saez", ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        planner.propose([])
    assert planner.run_warning is None  # type: ignore[attr-defined]
    detail = planner.last_detail  # type: ignore[attr-defined]
    assert detail["saez_converged"] is False and detail["saez_cycle_width"] == 0.004
