"""What a researcher reproducing the papers through the presets found: a degenerate
oracle, a bandit with more arms than years, a preset that cannot be seen after the
fact, the papers' own settings (docs/presets.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

import llmecon
from llmecon.cli import main


def _said(output: str) -> str:
    return " ".join(output.split())


def test_oracle_warning_rules() -> None:
    """Either rule alone flags the oracle; neither, no word."""
    from llmecon.runs.reference import ORACLE_IDLE_SHARE, oracle_warning

    reference = {"status_quo_swf": 15.0, "none_swf": 10.0, "oracle_swf": 20.0,
                 "oracle_rates": [1.0, 0.5]}  # fmt: skip
    working = np.full(20, 40.0)
    idle = working.copy()
    idle[: int(20 * ORACLE_IDLE_SHARE)] = 0.0  # a quarter stop working
    assert oracle_warning(reference, working, working) is None
    said = oracle_warning(reference, idle, working)
    assert said is not None and "(100, 50 %) leaves 25 % of the workers at 0 hours" in said
    assert "dwarfs" not in said
    # who does not work with no tax either is not driven there by the oracle
    assert oracle_warning(reference, idle, idle) is None
    # survey weights count
    weights = np.where(idle == 0.0, 0.1, 1.0)
    assert oracle_warning(reference, idle, working, weights) is None
    dwarfed = {**reference, "oracle_swf": 1e6}
    said = oracle_warning(dwarfed, working, working)
    assert said is not None and "dwarfs the status quo's" in said and "0 hours" not in said


def test_a_degenerate_oracle_is_said_by_run_compare_and_report(tmp_path: Path) -> None:
    """Under llm-economist-2025's Σ u/max(z, 1) the oracle sets ~[100, 96, 91] %, most
    workers stop, and every other planner's gain closed was 0.0 % without a word."""
    args = ["run", "--preset", "llm-economist-2025", "--planner", "none", "--workers"]
    args += ["rational", "--agents", "20", "--years", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--run-id", "le"])
    assert result.exit_code == 0, result.output
    said = _said(result.output)
    assert "warning: the oracle's schedule (100, 96, 91 %) leaves 65 % of the workers" in said
    assert "dwarfs the status quo's" in said
    summary = llmecon.load_run(tmp_path / "le").summary
    assert "65 % of the workers at 0 hours" in summary["oracle_warning"]
    report = CliRunner().invoke(main, ["report", str(tmp_path / "le")])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "le" / "report.html").read_text(encoding="utf-8")
    assert "Degenerate oracle: the oracle&#x27;s schedule (100, 96, 91 %)" in html
    # the API's comparison carries it; compare's table prints it
    comparison = llmecon.compare(["none", "us-federal"], preset="llm-economist-2025",
                                 agents=20, years=1)  # fmt: skip
    assert comparison.oracle_warning == summary["oracle_warning"]
    args = ["compare", "--preset", "llm-economist-2025", "--planners", "none,us-federal"]
    args += ["--agents", "20", "--years", "1", "--out", str(tmp_path), "--jobs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "warning: the oracle's schedule (100, 96, 91 %)" in _said(result.output)
    # an ordinary oracle: no word
    plain = llmecon.run(preset="ai-economist-2020", planner="none", workers="rational",
                        agents=20, years=1, write_log=False)  # fmt: skip
    assert "oracle_warning" not in plain.summary


def test_a_bandit_with_fewer_years_than_arms_is_warned(tmp_path: Path) -> None:
    """large-legislative-models' ucb-joint tries its 1 331 arms one a year in arm order:
    a 5-year run's final schedule is the 5th arm, not learning; nothing said so."""
    from llmecon.planners import planner_warning
    from llmecon.runs import build_config, build_simulation

    config = build_config(overrides={"preset": "large-legislative-models", "agents": 5,
                                     "workers": "rational", "years": 3})  # fmt: skip
    sim = build_simulation(config, write_log=False)
    said = planner_warning(sim.planner, 3)
    assert said is not None and "3 tax years cannot try each of its 1 331 arms once" in said
    assert planner_warning(sim.planner, 1331) is None
    args = ["run", "--preset", "large-legislative-models", "--workers", "rational"]
    args += ["--agents", "10", "--years", "3", "--out", str(tmp_path), "--run-id", "l"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    said = _said(result.output)
    assert "planner ucb-joint" in said and "preset large-legislative-models" in said
    assert "warning: ucb-joint: 3 tax years cannot try each of its 1 331 arms once" in said
    summary = llmecon.load_run(tmp_path / "l").summary
    assert "1 331 arms" in summary["planner_warning"]
    report = CliRunner().invoke(main, ["report", str(tmp_path / "l")])
    assert report.exit_code == 0, report.output
    assert "Planner: ucb-joint: 3 tax years" in (tmp_path / "l" / "report.html").read_text()
    # the factored bandit: 11 arms per bracket, one per bracket a year
    comparison = llmecon.compare(["none", "ucb"], agents=10, years=3)
    assert set(comparison.planner_warnings) == {"ucb"}
    assert "11 arms per bracket" in comparison.planner_warnings["ucb"]
    assert llmecon.compare(["ucb"], agents=10, years=11).planner_warnings == {}


def test_a_saez_fixed_point_that_did_not_converge_is_in_the_summary() -> None:
    """Under llm-economist-2025 at 20 agents Saez's iterates cycle; the run enacted their
    mean with a warning while running, and its summary and compare's table said nothing."""
    import warnings

    import pytest

    from llmecon.planners import SaezConvergenceWarning

    with pytest.warns(SaezConvergenceWarning):
        result = llmecon.run(preset="llm-economist-2025", planner="saez", workers="rational",
                             agents=20, years=1, write_log=False)  # fmt: skip
    assert result.summary["planner_warning"].startswith("saez: the fixed point did not converge")
    with warnings.catch_warnings():  # a sweep's cell records its warnings
        warnings.simplefilter("ignore", SaezConvergenceWarning)
        comparison = llmecon.compare(["saez"], preset="llm-economist-2025", agents=20, years=1)
    assert comparison.planner_warnings["saez"] == result.summary["planner_warning"]
    plain = llmecon.run(planner="saez", workers="rational", agents=20, years=1, write_log=False)
    assert "planner_warning" not in plain.summary


def test_llm_economist_presets_give_the_planner_its_exploration_cue() -> None:
    """LLM Economist's ``--disable-exploration`` is off by default, so its planner's
    prompt has the cue; the presets left ``planner_explore`` off."""
    from llmecon.presets import preset_settings
    from llmecon.runs import build_config

    for name in (
        "llm-economist-2025",
        "llm-economist-2025-bounded",
        "llm-economist-2025-democratic",
    ):
        assert preset_settings(name)["planner_explore"] is True
        assert build_config(overrides={"preset": name}).planner_explore
    assert not build_config(overrides={"preset": "ai-economist-2020"}).planner_explore


def test_the_reports_settings_name_the_preset(tmp_path: Path) -> None:
    """The report's settings line named the brackets and SWF a preset chose, but not
    the preset, whose other values (utility, caps, steps) it does not list."""
    import html
    import re

    from llmecon.report import render_report

    for preset, run_id in (("ai-economist-2020", "p"), (None, "n")):
        llmecon.run(preset=preset, planner="us-federal", workers="rational", agents=6,
                    years=1, out=str(tmp_path), run_id=run_id, reference=False)  # fmt: skip
    said = {
        run_id: re.findall(
            r"Settings: [^<]*", html.unescape(render_report([llmecon.load_run(tmp_path / run_id)]))
        )
        for run_id in ("p", "n")
    }
    assert said["p"] and said["p"][0].startswith("Settings: preset = ai-economist-2020, ")
    assert said["n"] and "preset" not in said["n"][0]
