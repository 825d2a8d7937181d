"""Reference welfare of a run (llmecon/runs/reference.py): no tax, status quo, oracle."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, synthetic_population
from llmecon.planners import PlannerContext
from llmecon.runs.reference import gain_closed_of, reference_welfare

EDGES = (0.0, 48_475.0, 197_300.0)


@pytest.mark.parametrize("crra", [None, 2.0])
def test_reference_holds_none_status_quo_and_oracle(crra: float | None) -> None:
    economy = Economy(synthetic_population(60, np.random.default_rng(1)), UtilityConfig(crra=crra))
    ctx = PlannerContext(economy, EDGES, np.random.default_rng(0), min_rate=0.05)
    ref = reference_welfare(ctx)
    # "none" is the lowest allowed rate everywhere, exactly as the none planner sets it.
    assert ref["none_swf"] == economy.evaluate(TaxSchedule(EDGES, (0.05,) * 3))[1].swf
    assert ref["oracle_converged"] is True
    assert gain_closed_of(ref["none_swf"], ref) == 0.0
    assert gain_closed_of(ref["oracle_swf"], ref) == 1.0
    assert len(ref["oracle_rates"]) == 3
    status_quo = gain_closed_of(ref["status_quo_swf"], ref)
    assert status_quo is not None and status_quo < 1.0


def test_no_gain_without_an_oracle() -> None:
    assert gain_closed_of(1.0, {"none_swf": 0.5, "oracle_swf": None}) is None


def test_a_run_of_the_oracle_planner_searches_for_the_optimum_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The oracle planner's optimum is the reference's: the run's end must not search
    # again (under CRRA a search takes seconds), and the reference it reports must be
    # the schedule the planner enacted.
    import llmecon
    from llmecon.planners import oracle

    searches: list[object] = []
    real = oracle.optimal_rates

    def counted(*args: object, **kwargs: object) -> oracle.OracleResult:
        searches.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(oracle, "optimal_rates", counted)
    result = llmecon.run(
        planner="oracle", workers="rational", agents=30, years=2, crra=1.0, write_log=False
    )
    assert len(searches) == 1
    summary = result.summary
    assert summary["final_swf"] == summary["oracle_swf"]
    assert summary["gain_closed"] == 1.0
