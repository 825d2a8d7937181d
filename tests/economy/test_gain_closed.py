"""The headline metric: share of the none → oracle welfare gain closed."""

from __future__ import annotations

from pathlib import Path

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


def test_a_ratio_to_a_welfare_that_is_not_positive_is_not_given(tmp_path: Path) -> None:
    """``W / W_oracle`` inverts for negative welfare: under CRRA with η = 2 a final year
    worse than the oracle scored "104.07 % of oracle". The summary, the terminal, the
    run's tables and a sweep's cell give no such ratio; a positive oracle keeps it."""
    from click.testing import CliRunner

    import llmecon
    from llmecon.cli import main
    from llmecon.runs.reference import headline
    from llmecon.sweeps.cell import folder_result

    assert headline(-2.15, {"oracle_swf": -2.066, "status_quo_swf": -2.62}).keys() == {
        "gain_closed"
    }
    assert headline(90.0, {"oracle_swf": 100.0, "status_quo_swf": 0.0}) == {
        "gain_closed": None,
        "final_pct_of_oracle": 90.0,
    }
    args = ["run", "--planner", "us-federal", "--workers", "rational", "--agents", "20",
            "--years", "1", "--personas", "synthetic", "--out", str(tmp_path)]  # fmt: skip
    negative = CliRunner().invoke(main, [*args, "--crra", "2", "--run-id", "neg"])
    assert negative.exit_code == 0, negative.output
    row = next(line for line in negative.output.splitlines() if "% of oracle" in line)
    assert "n/a (the oracle's SWF is not positive)" in row
    data = llmecon.load_run(tmp_path / "neg")
    assert data.summary["oracle_swf"] < 0 and "final_pct_of_oracle" not in data.summary
    assert data.pct_of_oracle is None and folder_result(tmp_path / "neg")["pct_of_oracle"] is None
    positive = CliRunner().invoke(main, [*args, "--run-id", "pos"])
    assert positive.exit_code == 0, positive.output
    shown = llmecon.load_run(tmp_path / "pos").pct_of_oracle
    assert shown is not None and 50 < shown < 100
    assert folder_result(tmp_path / "pos")["pct_of_oracle"] == pytest.approx(shown)
    assert "n/a" not in next(line for line in positive.output.splitlines() if "% of oracle" in line)
