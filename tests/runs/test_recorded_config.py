"""A config read from a run's log is taken as recorded (``recorded_config``): its preset is
a label (not applied again, not looked up), and the SWF's name stops only what computes
with it (replay, resume, fork), with a message saying to register it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import llmecon
from llmecon.economy import SWF, WelfareInputs, registered_swf
from llmecon.runs import RunLogError
from llmecon.runs.config import RunConfig
from llmecon.runs.log import read_manifest
from llmecon.runs.replay import replay_run
from llmecon.runs.restore import restore_run
from llmecon.runs.resume import fork_run


def _rational_run(tmp_path: Path, run_id: str, **settings: Any) -> Path:
    llmecon.run(
        planner="us-federal",
        workers="rational",
        agents=6,
        years=3,
        personas="synthetic",
        reference=False,
        out=str(tmp_path),
        run_id=run_id,
        **settings,
    )
    return tmp_path / run_id


def _relabel(run_dir: Path, **config: object) -> None:
    """Edit the manifest's recorded config, as an older release might have written it."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"].update(config)
    path.write_text(json.dumps(manifest))


def test_a_field_recorded_null_stays_null(tmp_path: Path) -> None:
    """A run made when the preset did not set ``crra`` (recorded ``null``) replays,
    forks and reads as it ran, not with today's preset's ``crra: 0.23``."""
    run_dir = _rational_run(
        tmp_path, "old", brackets="us-federal-2018", swf="equality_times_productivity"
    )
    _relabel(run_dir, preset="ai-economist-2020")
    assert restore_run(run_dir).config().crra is None
    assert read_manifest(run_dir).config["crra"] is None
    report = replay_run(run_dir)
    assert report.differences == [], report.differences
    fork = fork_run(run_dir, 1, {"planner": "none", "out": str(tmp_path), "run_id": "f"})
    assert fork.config.crra is None and fork.config.preset == "ai-economist-2020"
    fork.run()
    forked = json.loads((tmp_path / "f" / "manifest.json").read_text())["config"]
    assert forked["crra"] is None
    # built afresh, the same settings do apply the preset
    assert RunConfig(**{**read_manifest(run_dir).config, "crra": None}).crra == 0.23


def test_a_renamed_preset_does_not_stop_a_run_folder(tmp_path: Path) -> None:
    run_dir = _rational_run(tmp_path, "renamed", preset="ai-economist-2020")
    _relabel(run_dir, preset="ai-economist-2019")  # no such preset (any more)
    loaded = llmecon.load_run(run_dir)
    assert loaded.completed_years == [1, 2, 3]
    assert replay_run(run_dir).differences == []
    config = restore_run(run_dir).config()
    assert (config.preset, config.crra, config.brackets) == (
        "ai-economist-2019",
        0.23,
        "us-federal-2018",
    )
    fork_run(run_dir, 2, {"out": str(tmp_path), "run_id": "f"}).run()
    # another preset on a fork would only relabel the recorded settings
    with pytest.raises(RunLogError, match="taken as recorded"):
        fork_run(run_dir, 2, {"preset": "large-legislative-models", "run_id": "g"})
    assert llmecon.load_run(tmp_path / "f").completed_years == [1, 2, 3]
    # a config the user builds still names the known presets
    from llmecon.runs.config import recorded_config

    with pytest.raises(ValueError, match="ai-economist-2020"):
        RunConfig(preset="ai-economist-2019")
    assert recorded_config({"preset": "ai-economist-2019"}).preset == "ai-economist-2019"


def _median_utility(x: WelfareInputs) -> np.ndarray:
    return np.asarray(np.median(x.utility, axis=-1), dtype=float)


PLUGIN_SWF = SWF("median_plugin", "median utility", "the median worker's utility", _median_utility)


def test_a_plugin_swf_run_loads_and_reports_without_the_plugin(tmp_path: Path) -> None:
    """Made with an SWF registered in another process: load_run and report read it;
    replay, resume and fork need it and say how to register it."""
    with registered_swf(PLUGIN_SWF):
        run_dir = _rational_run(tmp_path, "plug", swf="median_plugin")
    loaded = llmecon.load_run(run_dir)
    assert loaded.completed_years == [1, 2, 3]
    assert loaded.manifest.config["swf"] == "median_plugin"
    assert "'median_plugin' is not registered" in loaded.population_note  # no per-agent data
    from llmecon.cli import main

    reported = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "r")])
    assert reported.exit_code == 0, reported.output
    message = r"SWF 'median_plugin' is not registered.*register it before replaying.*register_swf"
    with pytest.raises(RunLogError, match=message) as caught:
        replay_run(run_dir)
    assert "`llmecon.swfs` entry point" in str(caught.value)
    with pytest.raises(RunLogError, match=message):
        fork_run(run_dir, 1, {"out": str(tmp_path), "run_id": "f"})
    with registered_swf(PLUGIN_SWF):  # registered again: it computes
        assert replay_run(run_dir).differences == []


def test_only_the_names_a_recorded_run_computes_with_are_checked() -> None:
    from llmecon.runs.config import recorded_config, unregistered_names

    config = recorded_config({"swf": "gone", "vote_rule": "gone_too", "preset": "gone_3"})
    assert unregistered_names(config) == {"swf": "gone"}  # no voting: its rule is unused
    voting = config.model_copy(update={"vote_every": 2})
    assert unregistered_names(voting) == {"swf": "gone", "vote_rule": "gone_too"}
    with pytest.raises(ValueError, match="gone"):  # a config the user builds is checked
        RunConfig(swf="gone")


#: Every command that reads a run folder, and whether it computes the run's own SWF.
COMMANDS: list[tuple[tuple[str, ...], bool]] = [
    (("replay",), True),
    (("replay", "--rescore", "--swf", "rawlsian"), False),  # scores with another SWF
    (("report",), False),
    (("export",), False),
    (("run", "--from-year", "1", "--fork"), True),
]


@pytest.mark.parametrize(("command", "computes"), COMMANDS, ids=["-".join(c) for c, _ in COMMANDS])
def test_every_command_reads_a_run_with_an_unregistered_swf(
    tmp_path: Path, command: tuple[str, ...], computes: bool
) -> None:
    from llmecon.cli import main

    run_dir = _rational_run(tmp_path, "happy")
    _relabel(run_dir, swf="happiness")  # registered in the process that made the run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    extra = ("--out", str(tmp_path / "out")) if command[0] in ("report", "export") else ()
    result = CliRunner().invoke(main, [*command, str(run_dir), *extra])
    if computes:
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
        assert "SWF 'happiness' is not registered" in result.output, result.output
        assert "register it before replaying" in result.output
    else:
        assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_forks_own_settings_are_checked_as_new_ones(tmp_path: Path) -> None:
    # With voting off the run never computes with vote_rule, so the recorded-config
    # reading skipped it; a fork's override is the user's choice and must be checked.
    run_dir = _rational_run(tmp_path, "src")
    with pytest.raises(RunLogError, match="vote_rule: unknown 'bogus'"):
        fork_run(run_dir, 1, {"vote_rule": "bogus", "out": str(tmp_path), "run_id": "f"})
    # The run's own recorded names are not re-checked as overrides.
    fork = fork_run(run_dir, 1, {"swf": "inverse_income", "out": str(tmp_path), "run_id": "g"})
    assert fork.config.swf == "inverse_income"


def test_the_planner_breakdown_is_a_setting_only_for_llm_planners() -> None:
    from llmecon.runs.config import setting_applies

    assert not setting_applies("planner_breakdown", {"planner": "saez"})
    assert setting_applies("planner_breakdown", {"planner": "gpt-4o"})
    assert setting_applies("planner_breakdown", {"planner": "scripted/reference"})


def test_an_old_log_of_a_baseline_planner_is_the_same_setting_as_a_new_one(
    tmp_path: Path,
) -> None:
    # A log written before planner_breakdown existed reads as `sample`, a new run
    # records `weighted`; for a baseline planner the setting does nothing, so the two
    # are seeds of one setting, not two settings.
    old = _rational_run(tmp_path, "old", seed=1)
    new = _rational_run(tmp_path, "new", seed=2)
    path = old / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["planner_breakdown"]
    path.write_text(json.dumps(manifest))
    runs = llmecon.load_runs([old, new])
    assert runs["old"].settings_key == runs["new"].settings_key
    assert "planner_breakdown" not in runs["old"].settings
