"""The example run committed under runs/examples/ (recorded with the embedded model)."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmecon
from llmecon.runs.replay import replay_run

EXAMPLE = Path(__file__).resolve().parents[2] / "runs" / "examples" / "smollm2-tiny"


def test_committed_example_replays_identically_without_any_model() -> None:
    report = replay_run(EXAMPLE)
    assert report.ok, report.differences
    assert report.years_checked >= 3 and report.calls_replayed > 0


def test_committed_example_loads_as_dataframes() -> None:
    data = llmecon.load_run(EXAMPLE)
    assert len(data.years) == data.manifest.config["years"]
    assert set(data.calls["role"]) == {"planner", "worker"}
    assert data.manifest.config["planner"] == "local/smollm2-135m"
    assert data.years["swf"].notna().all()
    assert (data.agents["weekly_hours"].between(0, 80)).all()


@pytest.mark.parametrize("name", ["manifest.json", "events.jsonl", "personas.jsonl", "years.csv"])
def test_committed_example_is_complete(name: str) -> None:
    assert (EXAMPLE / name).is_file()
