"""The SWF registry: one registration adds an SWF everywhere (config, CLI, metrics, tables,
prompts, Saez), and the built-in SWFs keep their exact values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from llmecon.economy import (
    CALIBRATION_SCHEDULE,
    SWF,
    Economy,
    WelfareInputs,
    get_swf,
    registered_swf,
    swf_names,
    synthetic_population,
)
from llmecon.economy.welfare import marginal_welfare_weights, output_welfare_weight

BUILT_IN = (
    "utilitarian",
    "inverse_income",
    "rawlsian",
    "equality_times_productivity",
    "inverse_realised_income",
)


def _median_utility(x: WelfareInputs) -> np.ndarray:
    return np.asarray(np.median(x.utility, axis=-1), dtype=float)


def _median_weights(x: WelfareInputs, mu: np.ndarray) -> np.ndarray:
    w = np.zeros(x.consumption.size)
    w[int(np.argsort(x.utility)[x.utility.size // 2])] = 1.0
    return w


MY_SWF = SWF(
    "my_swf",
    "the median worker's utility",
    "the utility of the median worker",
    _median_utility,
    _median_weights,
)


def test_builtins_are_registered_in_order() -> None:
    assert tuple(swf_names())[: len(BUILT_IN)] == BUILT_IN
    assert all(swf_names()[n] for n in BUILT_IN)
    with pytest.raises(ValueError, match="unknown social welfare function 'nope'"):
        get_swf("nope")
    with (
        pytest.raises(ValueError, match="already registered"),
        registered_swf(SWF("rawlsian", "x", "x", _median_utility)),
    ):
        pass
    with (
        pytest.raises(ValueError, match="invalid SWF name"),
        registered_swf(SWF("revenue_usd", "x", "x", _median_utility)),
    ):
        pass
    assert tuple(swf_names()) == BUILT_IN


def test_a_registered_swf_is_everywhere(tmp_path: Path) -> None:
    import llmecon
    from llmecon.cli import main
    from llmecon.runs import RunConfig, build_config

    with registered_swf(MY_SWF):
        help_text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
        assert "my_swf" in help_text and "the median worker's utility" in help_text
        assert "my_swf" in CliRunner().invoke(main, ["compare", "--help"]).output
        assert build_config(overrides={"swf": "my_swf", "planner": "none"}).swf == "my_swf"

        result = llmecon.run(
            RunConfig(
                planner="none", workers="rational", agents=20, years=2, out=str(tmp_path),
                swf="my_swf", personas="synthetic", reference=False, run_id="mine",
            )
        )  # fmt: skip
        years = llmecon.load_run(tmp_path / "mine").years
        at = list(years.columns).index("swf")
        assert list(years.columns[at : at + 2 + len(BUILT_IN)]) == ["swf", *BUILT_IN, "my_swf"]
        np.testing.assert_allclose(years["swf"], years["my_swf"])
        metrics = result.records[-1].metrics
        assert metrics.to_dict()["my_swf"] == metrics.welfare["my_swf"] == metrics.my_swf

        # Saez takes its marginal weights; the LLM planner is told its objective.
        economy = Economy(synthetic_population(30, np.random.default_rng(0)), swf="my_swf")
        _, m = economy.evaluate(CALIBRATION_SCHEDULE)
        assert m.swf == m.my_swf
        c = np.linspace(1.0, 3.0, 5)
        w = marginal_welfare_weights("my_swf", c, c, c, np.ones(5), None)
        assert (
            w.sum() == pytest.approx(5.0)
            and output_welfare_weight("my_swf", c, c, c, np.ones(5), None) is None
        )
        assert get_swf("my_swf").objective == "the utility of the median worker"

        replayed = CliRunner().invoke(
            main, ["replay", str(tmp_path / "mine"), "--rescore", "--swf", "utilitarian"]
        )
        assert replayed.exit_code == 0, replayed.output

    # Gone again: the registry, the choices and the validation.
    assert "my_swf" not in swf_names()
    assert "my_swf" not in CliRunner().invoke(main, ["run", "--help"]).output
    with pytest.raises(Exception, match="my_swf"):
        RunConfig(swf="my_swf")


def test_builtin_values_unchanged() -> None:
    """The registry reproduces the former hand-written formulas exactly."""
    from llmecon.economy.welfare import equality, gini

    rng = np.random.default_rng(3)
    u, c, z = rng.uniform(1, 5, (3, 40))
    g = rng.uniform(0.5, 1.5, 40)
    values = {n: float(get_swf(n).evaluate(WelfareInputs(u, c, z, g))) for n in BUILT_IN}
    assert values["utilitarian"] == float(u.mean())
    assert values["inverse_income"] == float((u * g).mean())
    assert values["rawlsian"] == float(u.min())
    assert values["equality_times_productivity"] == float(equality(c) * z.mean())
    mu = c ** (-2.0)
    raw = marginal_welfare_weights("inverse_income", c, z, u, g, 2.0)
    np.testing.assert_array_equal(raw, (g * mu) / (g * mu).mean())
    etp = output_welfare_weight("equality_times_productivity", c, z, u, g, None)
    n = c.size
    rank = np.empty(n)
    rank[np.argsort(c, kind="stable")] = np.arange(1, n + 1)
    d_gini = ((2.0 * rank - n - 1.0) / n - gini(c)) / c.sum()
    raw_mean = float((-d_gini * (n / (n - 1.0)) * float(np.mean(z))).mean())
    assert etp == float(equality(c)) / n / raw_mean
