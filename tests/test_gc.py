"""The garbage-collector tuning of a run (``llmecon._gc``) is in force during the run
and undone after it, also when runs nest or fail."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from llmecon._gc import RUN_THRESHOLDS, run_gc
from llmecon.runs import build_config, build_simulation


def test_a_run_tunes_the_collector_and_restores_it(tmp_path: Path) -> None:
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[tuple[int, int, int], int]] = []
    cfg = build_config(
        overrides=dict(
            planner="us-federal",
            workers="rational",
            agents=6,
            years=2,
            out=str(tmp_path),
            run_id="r",
            reference=False,
        )
    )
    sim = build_simulation(cfg)
    settle = sim.settle_year

    def spy(*args: object, **kw: object) -> object:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return settle(*args, **kw)  # type: ignore[arg-type]

    sim.settle_year = spy  # type: ignore[method-assign,assignment]
    sim.run()
    assert len(seen) == 2
    assert frozen_before == 0
    assert all(t == RUN_THRESHOLDS and frozen > 0 for t, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen_before


def test_nested_and_failing_runs_restore_the_settings() -> None:
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError), run_gc():
        with run_gc():
            assert gc.get_threshold() == RUN_THRESHOLDS
        assert gc.get_threshold() == RUN_THRESHOLDS  # the outer run is still going
        raise RuntimeError("a run failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen_before


def test_objects_the_host_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        host = gc.get_freeze_count()
        with run_gc():
            assert gc.get_threshold() == RUN_THRESHOLDS
        assert gc.get_freeze_count() == host  # not thawed by the run
    finally:
        gc.unfreeze()
