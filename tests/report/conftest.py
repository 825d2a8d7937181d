"""Runs the report tests share (built once per session, in temporary folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmecon.runs import RunConfig, build_simulation
from tests.report.crafted import craft_run


def build_run(out: Path, **config: object) -> Path:
    """Run a small simulation (no model calls unless the config asks for scripted ones)."""
    result = build_simulation(RunConfig(out=str(out), **config)).run()
    assert result.run_dir is not None
    return result.run_dir


@pytest.fixture(scope="session")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden run with hostile model output, a fallback and votes."""
    return craft_run(tmp_path_factory.mktemp("runs") / "crafted", run_id="crafted <$x$>")


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Saez on 40 synthetic rational workers: no LLM, no persona attributes."""
    out = tmp_path_factory.mktemp("baseline")
    return build_run(out, planner="saez", personas="synthetic", agents=40, years=3, run_id="saez")


@pytest.fixture(scope="session")
def vote_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Personas from the shipped bank, scripted reference workers and voters, a vote
    every 2 years (two rounds): persona attributes, prompts, votes."""
    out = tmp_path_factory.mktemp("runs") / "runs"
    return build_run(
        out,
        planner="us-federal",
        workers="scripted/reference",
        agents=16,
        years=5,
        vote_every=2,
        run_id="vote",
    )


@pytest.fixture(scope="session")
def seed_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three seeds of one setting (rational workers): drawn as a mean with a band."""
    out = tmp_path_factory.mktemp("seeds")
    return [
        build_run(out, planner="saez", agents=20, years=3, seed=seed, run_id=f"saez-s{seed}")
        for seed in (1, 2, 3)
    ]
