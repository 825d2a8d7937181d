"""LLM Economist's planner: year 0 enacts ``planner_start`` (50 %), then the model
answers a change per bracket from {−20, −10, 0, 10, 20} (``planner_moves: grid:10,20``)
and the rates stay on the 10-point grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmecon.models import ChatMessage
from llmecon.runs import ConfigError, build_config, build_simulation, read_events, read_manifest
from llmecon.runs.events import LLMCall, ScheduleSet
from tests.agents.test_llm_agents import use_responder


def _le(tmp_path: Path, **kw: Any) -> Any:
    base: dict[str, Any] = dict(
        preset="llm-economist-2025",
        workers="rational",
        agents=40,
        years=8,
        worker_steps=1,
        out=str(tmp_path),
        run_id="r",
        reference=False,
    )
    base.update(kw)
    return build_config(overrides=base)


def _sets(tmp_path: Path) -> list[ScheduleSet]:
    return [e for e in read_events(tmp_path / "r") if isinstance(e, ScheduleSet)]


def _is_delta(schema: dict[str, Any] | None) -> bool:
    return schema is not None and "deltas" in schema.get("properties", {})


@pytest.mark.parametrize("planner", ["scripted/reference", "scripted/reference-surface"])
def test_le_preset_starts_at_50_and_moves_on_the_grid(tmp_path: Path, planner: str) -> None:
    """Both reference planners answer grid moves."""
    cfg = _le(tmp_path, planner=planner)
    assert cfg.planner_start == "50" and cfg.planner_moves == "grid:10,20"
    build_simulation(cfg).run()
    sets = _sets(tmp_path)
    rates = np.array([s.rates for s in sets])
    np.testing.assert_allclose(rates[0], 0.5)
    assert sets[0].source == "planner"
    pct = 100 * rates
    np.testing.assert_allclose(pct, np.round(pct / 10) * 10, atol=1e-9)  # the 10-point grid
    assert np.abs(np.diff(pct, axis=0)).max() <= 20 + 1e-9
    assert np.abs(np.diff(pct, axis=0)).max() > 0  # it did move
    deltas = [s.detail["deltas"] for s in sets[1:] if s.source == "planner"]
    assert deltas and all(d in (-20, -10, 0, 10, 20) for row in deltas for d in row)
    manifest = read_manifest(tmp_path / "r")  # recorded: replay needs no preset
    assert manifest.config["planner_start"] == "50"
    assert manifest.config["planner_moves"] == "grid:10,20"


def test_the_reply_schema_is_an_enum_of_moves_and_deltas_are_clipped(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        if _is_delta(schema):
            assert schema is not None
            seen.append(schema)
            return json.dumps({"deltas": [20, -20, 10]})
        return '{"hours": 40}'

    cfg = _le(tmp_path, planner=use_responder("le-up", respond), agents=4)
    build_simulation(cfg).run()
    text = json.dumps(seen[0])
    assert "[-20, -10, 0, 10, 20]" in text  # the allowed moves, enforced by the schema
    pct = [[round(100 * r) for r in s.rates] for s in _sets(tmp_path)]
    assert pct[:4] == [[50, 50, 50], [70, 30, 60], [90, 10, 70], [100, 0, 80]]
    assert pct[-1] == [100, 0, 100]  # clipped to the rate bounds, never past them


def test_an_out_of_set_delta_is_reasked_then_falls_back(tmp_path: Path) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        return json.dumps({"deltas": [15, 0, 0]}) if _is_delta(schema) else '{"hours": 40}'

    # Every planner call fails on purpose: the breaker's share rule is turned off.
    odd = use_responder("le-odd", respond)
    cfg = _le(tmp_path, planner=odd, years=3, agents=4, max_failure_share=1.0)
    build_simulation(cfg).run()
    events = read_events(tmp_path / "r")
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    assert [s.source for s in sets] == ["planner", "fallback", "fallback"]
    assert all(s.rates == [0.5, 0.5, 0.5] for s in sets)
    calls = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert calls and all(c.fallback and len(c.raw_outputs) == 3 for c in calls)


def test_free_moves_keep_the_status_quo_start(tmp_path: Path) -> None:
    cfg = _le(tmp_path, planner="scripted/reference", planner_start=None, planner_moves="free")
    # a preset only fills what is unset: None falls back to the preset, so override plainly
    cfg = cfg.model_copy(update={"planner_start": None, "planner_moves": "free"})
    build_simulation(cfg).run()
    sets = _sets(tmp_path)
    assert sets[0].rates != [0.5, 0.5, 0.5]
    assert "deltas" not in sets[1].detail


@pytest.mark.parametrize("moves", ["grid", "grid:10", "grid:0,20", "grid:15,20", "steps"])
def test_bad_planner_moves_are_refused(moves: str) -> None:
    with pytest.raises(ConfigError, match="planner_moves"):
        build_config(overrides={"planner": "mock/default", "planner_moves": moves})


def test_planner_start_needs_one_rate_or_one_per_bracket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="planner_start"):
        build_config(overrides={"planner": "mock/default", "planner_start": "50,x"})
    cfg = _le(tmp_path, planner="mock/default", planner_start="50,40")
    with pytest.raises(ConfigError, match="2 rates for 3 brackets"):
        build_simulation(cfg)
    cfg = _le(tmp_path, planner="mock/default", planner_start="30,40,60", years=1)
    build_simulation(cfg).run()
    assert _sets(tmp_path)[0].rates == [0.3, 0.4, 0.6]
