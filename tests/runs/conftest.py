"""Shared helpers of the run-log tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmecon.runs import build_config, build_simulation, columnar


def small_run(tmp_path: Path, run_id: str, **kw: object) -> Path:
    """A short run of the mock model (6 agents, 3 years, no reference) in ``tmp_path``;
    ``kw`` overrides any setting. Returns its folder."""
    base: dict[str, object] = dict(
        planner="mock/default", agents=6, years=3, out=str(tmp_path), run_id=run_id
    )
    base.update(reference=False, **kw)
    build_simulation(build_config(overrides=base)).run()
    return tmp_path / run_id


@pytest.fixture
def columnar_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store worker calls column-wise from one worker on (the tests' runs are small)."""
    monkeypatch.setattr(columnar, "COLUMNAR_MIN_WORKERS", 1)
