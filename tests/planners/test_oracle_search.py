"""The oracle's search: each rate vector scored once, candidates warm-started from the
incumbent's equilibrium, and a claim that is the cold settlement of its schedule."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, RatesScore, UtilityConfig, synthetic_population
from llmecon.planners import optimal_rates

THREE = (0.0, 48_475.0, 197_300.0)


def _economy(eta: float | None) -> Economy:
    pop = synthetic_population(60, np.random.default_rng(2))
    return Economy(pop, UtilityConfig(crra=eta))


@pytest.mark.parametrize("eta", [None, 1.0])
def test_the_oracle_scores_each_rate_vector_once(
    eta: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    economy = _economy(eta)
    real = economy.score_rates
    scored: list[np.ndarray] = []
    warm_starts: list[object] = []

    def spy(
        edges: object, rates: np.ndarray, swf: str | None = None, warm: object = None
    ) -> RatesScore:
        scored.append(np.atleast_2d(rates).copy())
        warm_starts.append(warm)
        return real(edges, rates, swf, warm)  # type: ignore[arg-type]

    monkeypatch.setattr(economy, "score_rates", spy)
    found = optimal_rates(economy, THREE, coarse_points=11, refinements=3)
    rows = np.vstack(scored)
    assert found.evaluations == rows.shape[0]
    # The search never re-scores a point; only the final settlement repeats the best.
    search = rows[:-1]
    assert np.unique(search, axis=0).shape[0] == search.shape[0]
    np.testing.assert_array_equal(rows[-1], found.rates)
    # The settlement starts cold (as Economy.evaluate does); under CRRA the search's
    # later batches start from the incumbent's equilibrium.
    assert warm_starts[-1] is None
    if eta is None:
        assert all(w is None for w in warm_starts)
    else:
        assert sum(w is not None for w in warm_starts) > len(warm_starts) // 2


def test_the_claim_is_the_cold_settlement_of_the_schedule() -> None:
    economy = _economy(2.0)
    found = optimal_rates(economy, THREE, coarse_points=11, refinements=3, polish=False)
    values, converged = economy.welfare_and_convergence_of_rates(THREE, found.rates[None, :])
    assert found.swf == float(values[0])
    assert found.converged == bool(converged[0])
