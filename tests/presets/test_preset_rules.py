"""The preset rules of docs/presets.md: the fields a preset fills rank under everything the
user sets, also when a built config's preset is overridden or ``compare`` adds its own
defaults; ``config.preset`` is not assignable; the corner solution is stated as measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import llmecon
from llmecon.api import compare_config
from llmecon.presets import preset_settings
from llmecon.runs.config import ConfigError, RunConfig, build_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "presets.md"


def _recorded(tmp_path: Path, run_id: str) -> dict[str, object]:
    manifest = json.loads((tmp_path / run_id / "manifest.json").read_text())
    return dict(manifest["config"])


def test_a_preset_given_over_a_configs_preset_replaces_its_filled_fields(tmp_path: Path) -> None:
    """The fields the old preset filled take the new preset's values (or the defaults);
    the fields the user set stay. As a config file under another preset does."""
    config = RunConfig(
        preset="ai-economist-2020", planner="saez", workers="rational", agents=10, years=1
    )
    assert (config.brackets, config.crra) == ("us-federal-2018", 0.23)  # applied when built
    llmecon.run(config, preset="large-legislative-models", out=str(tmp_path), run_id="r")
    recorded = _recorded(tmp_path, "r")
    assert recorded["preset"] == "large-legislative-models"
    assert recorded["planner"] == "saez"  # set by the user: over the new preset's ucb-joint
    assert recorded["brackets"] == "us-three-2025"  # the new preset's
    assert recorded["crra"] is None and recorded["swf"] == "inverse_income"  # the defaults
    # the preset's fields are not the user's
    assert config.model_fields_set == {"preset", "planner", "workers", "agents", "years"}
    # the same switch from a config file gives the same config
    file = tmp_path / "exp.yaml"
    file.write_text(
        "preset: ai-economist-2020\nplanner: saez\nworkers: rational\nagents: 10\nyears: 1\n"
    )
    from_file = build_config(file, {"preset": "large-legislative-models"})
    assert from_file == compare_config(config, preset="large-legislative-models").model_copy(
        update={"reference": from_file.reference}
    )


def test_a_resolved_configs_derived_defaults_are_derived_again() -> None:
    """``resolved()`` fills ``years``, ``agents`` and ``workers``: as defaults, not as
    the user's, so another preset's ``years`` still applies."""
    base = build_config(overrides={"preset": "ai-economist-2020", "planner": "saez"})
    assert base.years == 20 and "years" not in base.model_fields_set
    assert compare_config(base, preset="llm-economist-2025").years == 40
    assert compare_config(base, preset="llm-economist-2025", years=3).years == 3


def test_the_preset_of_a_built_config_cannot_be_assigned() -> None:
    config = RunConfig(planner="saez", workers="rational", agents=8, years=2)
    with pytest.raises(ConfigError, match=r"cannot be assigned.*preset='ai-economist-2020'"):
        config.preset = "ai-economist-2020"
    # nothing was applied halfway
    assert config.preset is None and config.crra is None
    assert config.brackets == "us-federal-2025"
    withp = RunConfig(preset="ai-economist-2020", planner="saez")
    with pytest.raises(ConfigError, match="cannot be assigned"):
        withp.preset = None
    withp.preset = "ai-economist-2020"  # the same name: nothing changes
    withp.brackets = "flat"  # other fields are assigned (and validated) as before
    assert "brackets" in withp.model_fields_set and withp.crra == 0.23
    with pytest.raises(ValueError, match="us-three-2025"):
        withp.brackets = "three"
    # the documented way, which the error message spells out: a new config with the
    # preset, from a config without one and from one with another
    with pytest.raises(ConfigError) as said:
        withp.preset = "llm-economist-2025"
    recipe = re.search(r"RunConfig\(\*\*\{.*?\}\)", str(said.value))
    assert recipe is not None
    for source in (config, withp):
        rebuilt = eval(recipe.group(), {"RunConfig": RunConfig, "config": source})
        assert rebuilt.preset == "llm-economist-2025" and rebuilt.crra is None
        assert rebuilt.years == (2 if source is config else 40)  # set, else the preset's
    assert withp.brackets == "flat" and rebuilt.brackets == "flat"  # set fields stay


def test_compare_defaults_rank_under_the_preset(tmp_path: Path) -> None:
    """docs/presets.md: field defaults < the preset < config file < command line;
    compare's 30 years is a default."""
    assert preset_settings("llm-economist-2025")["years"] == 40
    assert compare_config(preset="llm-economist-2025", agents=5).years == 40
    assert compare_config(agents=5).years == 30
    assert compare_config(preset="llm-economist-2025", agents=5, years=2).years == 2
    file = tmp_path / "exp.yaml"
    file.write_text("preset: llm-economist-2025\nagents: 5\n")
    assert compare_config(file).years == 40
    file.write_text("preset: ai-economist-2020\nagents: 5\n")  # sets no years
    assert compare_config(file).years == 30


def test_cli_compare_records_the_presets_years(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llmecon.cli import main

    args = ["compare", "--planners", "none", "--preset", "llm-economist-2025"]
    args += ["--agents", "5", "--out", str(tmp_path), "--jobs", "1"]
    result = CliRunner().invoke(main, [*args, "--name", "c"])
    assert result.exit_code == 0, result.output
    (manifest,) = (tmp_path / "c").glob("*/manifest.json")
    config = json.loads(manifest.read_text())["config"]
    assert (config["preset"], config["years"]) == ("llm-economist-2025", 40)


def test_cli_compare_refuses_a_config_files_workers(tmp_path: Path) -> None:
    """A config file's ``workers:`` is refused as ``llmecon.compare(workers=…)`` is:
    it was replaced by rational workers, and under the bounded preset every cell then
    failed with "give --workers <model>", an option compare does not have."""
    from click.testing import CliRunner

    from llmecon.cli import main

    file = tmp_path / "cmpb.yaml"
    file.write_text(
        "preset: llm-economist-2025-bounded\nworkers: scripted/reference\nagents: 5\nyears: 1\n"
    )
    args = ["compare", "--planners", "none", "--config", str(file), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--name", "c"])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert "cmpb.yaml's workers: 'scripted/reference'" in said and "llmecon sweep" in said
    assert "give --workers" not in said
    assert not (tmp_path / "c").exists()  # refused before any cell


def test_compares_default_planners_include_the_presets_planner(tmp_path: Path) -> None:
    """``compare --preset large-legislative-models`` without ``--planners`` ran the
    default list, which lacks the preset's own planner (``ucb-joint``), without a word."""
    from click.testing import CliRunner

    from llmecon.api import DEFAULT_PLANNERS, default_planners
    from llmecon.cli import main

    llm = compare_config(preset="large-legislative-models", agents=5, years=1)
    assert default_planners(llm) == [*DEFAULT_PLANNERS, "ucb-joint"]
    assert default_planners(compare_config(preset="ai-economist-2020")) == [*DEFAULT_PLANNERS]
    args = ["compare", "--preset", "large-legislative-models", "--agents", "5", "--years", "1"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path), "--name", "c", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "the large-legislative-models preset's ucb-joint" in said
    cells = (tmp_path / "c" / "cells.csv").read_text()
    assert "ucb-joint" in cells and "us-federal" in cells


def test_docs_state_the_measured_corner() -> None:
    """The share of rational workers at LLM Economist's 100 h cap under 50 % rates, as
    docs/presets.md states it (the whole 1 000-persona bank, and the first 50)."""
    shares = {}
    for n in (50, 1000):
        result = llmecon.run(
            preset="llm-economist-2025",
            planner="fixed:50,50,50",
            workers="rational",
            agents=n,
            years=1,
            reference=False,
            write_log=False,
        )
        hours = np.asarray(result.records[-1].weekly_hours)
        shares[n] = float(np.mean(hours >= 100 - 1e-9))
    text = " ".join(DOCS.read_text(encoding="utf-8").split())
    row = next(line for line in text.split("| utility |")[1:2])
    assert f"{100 * shares[1000]:.1f} % of the 1 000-persona bank" in row
    assert f"{100 * shares[50]:.0f} % of the first 50" in row
    assert not re.search(r"\b100 % at 100 h", text)
