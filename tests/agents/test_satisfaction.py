"""LLM Economist's bounded scenario (``worker_satisfaction``): workers say after each step
whether they are satisfied with the tax policy; the year's metrics (the planner's
objective) use the reported utility ``r · u``, ``r = 0.5`` for the dissatisfied."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmecon.models import ChatMessage, register_provider
from llmecon.models._mock import MockProvider
from llmecon.presets import preset_settings
from llmecon.runs import build_config, build_simulation, read_events
from llmecon.runs.config import ConfigError
from llmecon.runs.dataframes import load_run
from llmecon.runs.events import Fallback, LLMCall, WorkerStep, YearCompleted
from llmecon.runs.log import RunLogWarning
from llmecon.runs.replay import replay_run, rescore_run
from llmecon.runs.resume import resume_run


def _respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
    keys = set((schema or {}).get("properties", {}))
    if "satisfied" in keys:
        text = messages[0].content
        if "-year-old woman" in text and "married" in text:
            return "no idea"  # malformed: re-asked, then a fallback counted as satisfied
        return '{"satisfied": false}' if "-year-old man" in text else '{"satisfied": true}'
    if "hours" in keys:
        return '{"hours": 40}'
    return '{"rates": [20, 20, 20, 20, 20, 20, 20]}'


def _config(tmp_path: Path, run_id: str = "b", **kw: Any) -> Any:
    register_provider(
        "bounded-mock",
        lambda model, api_base, **k: MockProvider(model, api_base, responder=_respond),
    )
    base: dict[str, Any] = dict(
        planner="bounded-mock/x",
        workers="bounded-mock/x",
        worker_satisfaction=True,
        worker_steps=2,
        agents=10,
        years=3,
        out=str(tmp_path),
        run_id=run_id,
        reference=False,
    )
    base.update(kw)
    return build_config(overrides=base)


def test_dissatisfied_workers_halve_the_utility_the_planner_counts(tmp_path: Path) -> None:
    sim = build_simulation(_config(tmp_path))
    result = sim.run()
    assert result.status == "completed"
    events = read_events(tmp_path / "b")
    steps = [e for e in events if isinstance(e, WorkerStep)]
    assert len(steps) == 6 and all(s.satisfied is not None for s in steps)
    texts = sim.workers.persona_texts
    expected = ["-year-old man" not in t for t in texts]
    assert 0 < sum(expected) < len(expected)
    assert all(s.satisfied == expected for s in steps)
    asked = [e for e in events if isinstance(e, LLMCall) and e.templates.get("satisfaction.j2")]
    assert len(asked) == 3 * 2 * 10  # one per worker and step
    failed = [e for e in events if isinstance(e, Fallback) and e.action == "counted as satisfied"]
    assert len(failed) == 6 * sum("-year-old woman" in t and "married" in t for t in texts)
    # the year's metrics use r·u; the actual utility gives another objective
    economy = sim.economy
    r = np.where(expected, 1.0, 0.5)
    for record in result.records:
        outcome = economy.outcome(record.schedule, record.weekly_hours)
        reported = dataclasses.replace(outcome, utility=outcome.utility * r)
        assert record.metrics.swf == pytest.approx(economy.metrics(reported).swf)
        assert record.metrics.swf != pytest.approx(economy.metrics(outcome).swf)
    logged = [e.metrics["swf"] for e in events if isinstance(e, YearCompleted)]
    assert logged == pytest.approx([rec.metrics.swf for rec in result.records])
    assert replay_run(tmp_path / "b").ok


def test_a_resumed_bounded_run_re_settles_to_the_reported_utility(tmp_path: Path) -> None:
    build_simulation(_config(tmp_path, run_id="full")).run()
    build_simulation(_config(tmp_path, run_id="cut")).run()
    cut = tmp_path / "cut"
    lines = (cut / "events.jsonl").read_text().splitlines()
    year2 = next(i for i, ln in enumerate(lines) if '"year_started"' in ln and '"year":2' in ln)
    (cut / "events.jsonl").write_text("\n".join(lines[: year2 + 2]) + "\n")
    sim = resume_run(cut)  # raises when a restored year does not re-settle to its metrics
    sim.run()

    def metrics(path: Path) -> list[dict[str, float]]:
        return [e.metrics for e in read_events(path) if isinstance(e, YearCompleted)]

    assert metrics(cut) == metrics(tmp_path / "full")


def test_load_run_settles_a_bounded_run_on_the_reported_utility(tmp_path: Path) -> None:
    """``load_run`` settles each year again with its logged answers, as the run did: the
    rebuilt population reproduces the logged welfare, so the per-agent outcomes are kept,
    and ``utility`` is the reported ``r · u`` the year's welfare counts."""
    sim = build_simulation(_config(tmp_path))
    result = sim.run()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunLogWarning)
        data = load_run(tmp_path / "b")
    assert data.economy is not None and "reproduces the logged metrics" in data.population_note
    agents = data.agents
    assert agents[["income_usd", "tax_usd", "utility"]].notna().all().all()
    years = data.years.set_index("year")
    for year, frame in agents.groupby("year"):
        mean = np.average(frame["utility"], weights=frame["weight"])
        assert mean == pytest.approx(years.loc[year, "utilitarian"], rel=1e-12)
    last = result.records[-1]
    actual = sim.economy.outcome(last.schedule, last.weekly_hours).utility
    satisfied = [e for e in read_events(tmp_path / "b") if isinstance(e, WorkerStep)][-1].satisfied
    assert satisfied is not None and not all(satisfied)
    r = np.where(satisfied, 1.0, 0.5)
    reported = agents[agents["year"] == 3].sort_values("agent_index")["utility"]
    assert reported.to_numpy() == pytest.approx(actual * r, rel=1e-12)
    split = data.welfare_decomposition()
    assert split.loc[split["objective"], "value"].item() == pytest.approx(years["swf"].iloc[-1])
    assert not data.incidence().empty


def test_a_rescore_of_a_bounded_run_under_its_own_swf_gives_the_logged_welfare(
    tmp_path: Path,
) -> None:
    build_simulation(_config(tmp_path)).run()
    report = rescore_run(tmp_path / "b", "inverse_income")  # the run's SWF
    assert [row["logged_swf_name"] for row in report.rows] == ["inverse_income"] * 3
    rescored = [row["rescored_swf"] for row in report.rows]
    assert rescored == pytest.approx([row["logged_swf"] for row in report.rows], rel=1e-12)


def test_the_bounded_preset_and_rational_workers(tmp_path: Path) -> None:
    settings = preset_settings("llm-economist-2025-bounded")
    assert settings["worker_satisfaction"] is True and settings["worker_style"] == "persona"
    cfg = _config(tmp_path, workers="rational", planner="saez")
    with pytest.raises(ConfigError, match="worker_satisfaction"):
        build_simulation(cfg)


def test_the_scripted_reference_answers_satisfaction(tmp_path: Path) -> None:
    cfg = _config(tmp_path, planner="flat:0.3", workers="scripted/reference", run_id="s")
    sim = build_simulation(cfg)
    sim.run()
    steps = [e for e in read_events(tmp_path / "s") if isinstance(e, WorkerStep)]
    assert all(s.satisfied is not None for s in steps)
