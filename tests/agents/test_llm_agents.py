"""LLM workers and planner with the mock model: full runs, bounds, fallbacks, logging."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmecon.agents.planner_prompts import effect_hints
from llmecon.models import ChatMessage, register_provider
from llmecon.models._mock import MockProvider
from llmecon.prompts import PromptLibrary
from llmecon.runs import RunConfig, build_config, build_simulation, read_events, read_manifest
from llmecon.runs.events import Blob, Fallback, LLMCall, ScheduleSet, WorkerStep

Responder = Callable[[list[ChatMessage], dict[str, Any] | None], str]


def use_responder(name: str, fn: Responder) -> str:
    """Register a mock provider ``name`` answering with ``fn``; returns a model string."""
    register_provider(
        name, lambda model, api_base, **kw: MockProvider(model, api_base, responder=fn)
    )
    return f"{name}/x"


def is_planner(schema: dict[str, Any] | None) -> bool:
    return schema is not None and "rates" in schema.get("properties", {})


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(agents=8, years=3, out=str(tmp_path), run_id="r", reference=False)
    base.update(kw)
    return build_config(overrides=base)


def test_mock_run_end_to_end_logs_every_call(tmp_path: Path) -> None:
    result = build_simulation(_config(tmp_path, planner="mock/default", agents=10)).run()
    assert result.status == "completed" and result.config.workers == "mock/default"
    events = read_events(tmp_path / "r")
    calls = [e for e in events if isinstance(e, LLMCall)]
    assert sum(c.role == "planner" for c in calls) == 2  # year 0 enacts the status quo
    assert sum(c.role == "worker" for c in calls) == 10 * 3
    seen: dict[str, str] = {}
    for e in events:
        if isinstance(e, Blob):
            seen[e.sha256] = e.text
        if isinstance(e, LLMCall):
            assert all(m.sha256 in seen for m in e.messages)  # blob written before use
            assert e.parsed is not None and e.raw_outputs and e.templates
    blobs = [e for e in events if isinstance(e, Blob)]
    assert len({b.sha256 for b in blobs}) == len(blobs)  # each text stored once
    system_refs = {c.messages[0].sha256 for c in calls if c.role == "worker"}
    assert len(system_refs) == 1  # the static worker system prompt is shared
    library = PromptLibrary()
    manifest = read_manifest(tmp_path / "r")
    assert manifest.prompts == library.hashes()
    worker_call = next(c for c in calls if c.role == "worker")
    assert worker_call.templates["worker_decision.j2"] == library.sha256("worker_decision.j2")
    for step in (e for e in events if isinstance(e, WorkerStep)):
        assert all(float(h).is_integer() and 0 <= h <= 80 for h in step.weekly_hours)
    assert (tmp_path / "r" / "personas.jsonl").is_file()


def test_planner_obeys_bounds_and_trust_region(tmp_path: Path) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        return json.dumps({"rates": [60] * 7}) if is_planner(schema) else '{"hours": 40}'

    model = use_responder("greedy", respond)
    cfg = _config(tmp_path, planner=model, years=7, min_rate=0.05, max_rate=0.6, trust_region=0.1)
    build_simulation(cfg).run()
    sets = [e for e in read_events(tmp_path / "r") if isinstance(e, ScheduleSet)]
    rates = np.array([s.rates for s in sets])
    assert rates.min() >= 0.05 - 1e-12 and rates.max() <= 0.6 + 1e-12
    assert np.all(np.abs(np.diff(rates, axis=0)) <= 0.1 + 1e-9)
    assert sets[1].detail["clipped"] is True
    assert sets[1].detail["proposed_rates"] == [0.6] * 7
    np.testing.assert_allclose(rates[-1], 0.6)  # reached the target within the trust region


def test_out_of_bounds_rates_are_reasked_then_fall_back(tmp_path: Path) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        return json.dumps({"rates": [150] * 7}) if is_planner(schema) else '{"hours": 40}'

    # Every planner call fails on purpose: the breaker's share rule is turned off (with
    # it, the run would end failed: tests/runs/test_honest_runs.py).
    wild = use_responder("wild", respond)
    build_simulation(_config(tmp_path, planner=wild, years=3, max_failure_share=1.0)).run()
    events = read_events(tmp_path / "r")
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    assert [s.source for s in sets] == ["planner", "fallback", "fallback"]
    assert sets[2].rates == sets[0].rates
    planner_calls = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert all(c.error_type == "StructuredOutputError" and c.fallback for c in planner_calls)
    assert all(len(c.raw_outputs) == 3 for c in planner_calls)  # 1 try + 2 re-asks


def test_malformed_outputs_are_recorded_fallbacks_and_the_run_completes(tmp_path: Path) -> None:
    garbage = ["", "forty", '{"hours": "lots"}', '{"hours": -3}', "<html>", '{"hours": 40', "null"]

    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        text = messages[-1].content
        if is_planner(schema):
            return "I refuse to set taxes."
        if "invalid" in text:  # a re-ask: stay broken
            return garbage[len(text) % len(garbage)]
        year = int(re.search(r"Tax year (\d+)", text).group(1))  # type: ignore[union-attr]
        age = int(re.search(r"You are a (\d+)-year-old", text).group(1))  # type: ignore[union-attr]
        return garbage[age % len(garbage)] if (age + year) % 2 else '{"hours": 33}'

    # Half the calls fail on purpose: the circuit breaker's share rule is turned off.
    config = _config(tmp_path, planner=use_responder("broken", respond), max_failure_share=1.0)
    result = build_simulation(config).run()
    assert result.status == "completed"
    events = read_events(tmp_path / "r")
    fallbacks = [e for e in events if isinstance(e, Fallback)]
    worker_fb = [f for f in fallbacks if f.role == "worker"]
    assert worker_fb and all(f.action == "kept the previous hours" for f in worker_fb)
    assert sum(f.role == "planner" for f in fallbacks) == 2
    steps = [e for e in events if isinstance(e, WorkerStep)]
    assert sum(s.fallbacks for s in steps) == len(worker_fb) == result.fallbacks - 2
    # A worker who fell back in year 0 kept its usual hours; the others chose 33.
    failed0 = {f.agent for f in worker_fb if f.year == 0}
    assert 0 < len(failed0) < 8
    lines = (tmp_path / "r" / "personas.jsonl").read_text().splitlines()
    personas = [json.loads(line) for line in lines]
    for persona, hours in zip(personas, steps[0].weekly_hours, strict=True):
        expected = persona["usual_weekly_hours"] if persona["id"] in failed0 else 33.0
        assert hours == expected
    bad_calls = [e for e in events if isinstance(e, LLMCall) and e.fallback]
    assert len(bad_calls) == len(fallbacks)
    assert all(c.error_type for c in bad_calls)


def test_a_changed_template_changes_its_recorded_hash(tmp_path: Path) -> None:
    override = tmp_path / "my_prompts"
    override.mkdir()
    shipped = PromptLibrary().source("worker_decision.j2")
    (override / "worker_decision.j2").write_text(shipped + "\nThink about your family.\n")
    build_simulation(
        _config(tmp_path, planner="mock/default", prompts=str(override), years=1)
    ).run()
    manifest = read_manifest(tmp_path / "r")
    assert manifest.prompts["worker_decision.j2"] != PromptLibrary().sha256("worker_decision.j2")
    assert manifest.prompts["worker_decision.j2"] == PromptLibrary(override).sha256(
        "worker_decision.j2"
    )
    assert manifest.prompts["worker_system.j2"] == PromptLibrary().sha256("worker_system.j2")
    call = next(e for e in read_events(tmp_path / "r") if isinstance(e, LLMCall))
    assert call.templates["worker_decision.j2"] == manifest.prompts["worker_decision.j2"]


def test_llm_workers_need_personas(tmp_path: Path) -> None:
    from llmecon.runs import ConfigError

    with pytest.raises(ConfigError, match="need personas"):
        build_simulation(_config(tmp_path, planner="mock/default", personas="synthetic"))


def test_effect_hints_recover_the_sign_of_each_bracket() -> None:
    from llmecon.economy import TaxSchedule, YearMetrics
    from llmecon.planners import YearRecord

    rng = np.random.default_rng(0)
    true = np.array([3.0, -2.0, 0.5])
    history = []
    for year in range(12):
        rates = rng.uniform(0.1, 0.5, 3)
        swf = float(100 * rates @ true)
        metrics = YearMetrics(swf, *([0.0] * 10))
        sched = TaxSchedule((0.0, 1e4, 1e5), tuple(rates))
        history.append(YearRecord(year, sched, metrics, np.zeros(1), np.zeros(1)))
    slopes = np.array([h["slope"] for h in effect_hints(history)])
    np.testing.assert_allclose(slopes, true, rtol=0.05)
    assert effect_hints(history[:2]) == []


def test_effect_hints_say_no_estimate_for_a_bracket_that_never_moved() -> None:
    """A bracket whose rate never changed has a slope of 0 by construction: the hint
    says there is no estimate instead of "+0.00" (no effect)."""
    from llmecon.economy import TaxSchedule, YearMetrics
    from llmecon.planners import YearRecord
    from llmecon.prompts import PromptLibrary

    rng = np.random.default_rng(1)
    history = []
    for year in range(5):
        rates = (*rng.uniform(0.1, 0.5, 2), 0.28)  # bracket 3 stays at 28 %: its
        # deviations from the mean rate are float noise (1e-15), not 0
        metrics = YearMetrics(float(100 * rates[0] - 50 * rates[1]), *([0.0] * 10))
        sched = TaxSchedule((0.0, 1e4, 1e5), tuple(rates))
        history.append(YearRecord(year, sched, metrics, np.zeros(1), np.zeros(1)))
    hints = effect_hints(history)
    assert [h["varied"] for h in hints] == [True, True, False]
    text = PromptLibrary().render("planner_hints.j2", hints=hints).text
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("- ")}
    assert "no estimate" in lines["- bracket 3"] and "+0.00" not in lines["- bracket 3"]
    assert "no estimate" not in lines["- bracket 1"] and "+" in lines["- bracket 1"]


def test_tax_year_1_workers_are_told_the_status_quo_rebate(tmp_path: Path) -> None:
    """With income effects the rebate moves hours: telling tax year 1's workers of no
    rebate made the status quo score otherwise in year 1 than in later years."""
    import llmecon

    result = llmecon.run(
        planner="us-federal", workers="scripted/reference", crra=1.0, agents=40, years=3,
        out=str(tmp_path), run_id="sq",
    )  # fmt: skip
    swf = [r.metrics.swf for r in result.records]
    assert swf[0] == pytest.approx(swf[1], rel=1e-9) == pytest.approx(swf[2], rel=1e-9)
    run = llmecon.load_run(tmp_path / "sq")
    first = run.calls[(run.calls.role == "worker") & (run.calls.year == 1)].iloc[0]
    text = run.messages(int(first["seq"]))[-1][1]
    rebate = result.records[0].metrics.rebate_usd
    assert f"Last year's rebate per person: ${rebate:,.0f}" in text
    # `none` (the old behaviour) tells of no rebate, and year 1 then differs
    old = llmecon.run(
        planner="us-federal", workers="scripted/reference", crra=1.0, agents=40, years=2,
        first_year_rebate="none", out=str(tmp_path), run_id="none",
    )  # fmt: skip
    assert old.records[0].metrics.swf != pytest.approx(old.records[1].metrics.swf, rel=1e-6)


def test_worker_reasons_are_asked_for_in_the_prompt(tmp_path: Path) -> None:
    import llmecon

    for reasons in (False, True):
        run_id = f"r{int(reasons)}"
        llmecon.run(planner="us-federal", workers="mock/default", worker_reasons=reasons,
                    agents=3, years=1, out=str(tmp_path), run_id=run_id)  # fmt: skip
        run = llmecon.load_run(tmp_path / run_id)
        system = run.messages(int(run.calls.iloc[0]["seq"]))[0][1]
        assert ('"reason", a short sentence' in system) == reasons
        assert ("an object with one key" in system) != reasons


def test_a_long_rationale_is_cut_not_the_proposal_lost(tmp_path: Path) -> None:
    # A rationale beyond the schema's 300 characters beside valid rates was a re-ask,
    # then a planner fallback: the rates are kept and the rationale cut, saying so.
    long = "Because " + "the top bracket should move carefully. " * 12  # 476 chars

    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        if is_planner(schema):
            return json.dumps({"rates": [20] * 7, "rationale": long})
        return '{"hours": 40}'

    wordy = use_responder("wordy", respond)
    build_simulation(_config(tmp_path, planner=wordy, years=2)).run()
    events = read_events(tmp_path / "r")
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    assert [s.source for s in sets] == ["planner", "planner"]  # year 0: the status quo
    rationale = sets[1].detail["rationale"]
    assert len(rationale) == 300 and rationale == long[:299] + "…"
    (call,) = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert call.error_type is None and len(call.raw_outputs) == 1  # no re-ask
    assert not [e for e in events if isinstance(e, Fallback)]


def test_the_grid_planners_rationale_is_cut_too() -> None:
    from llmecon.agents.llm_planner import delta_schema
    from llmecon.agents.planner_prompts import parse_planner_moves

    moves = parse_planner_moves("grid:10,20")
    assert moves is not None
    schema = delta_schema(3, moves)
    reply = json.dumps({"deltas": [0, 10, -10], "rationale": "y" * 500})
    parsed = schema.model_validate_json(reply, strict=True)
    assert parsed.rationale == "y" * 299 + "…"
    # the schema a server gets still states the limit
    rationale = schema.model_json_schema()["properties"]["rationale"]
    assert {"maxLength": 300, "type": "string"} in rationale["anyOf"]
