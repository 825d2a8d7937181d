"""Elections of a leader (``candidate_source: leaders``): the elected persona is named in
the LLM planner's context until the next election, the planner's proposals are enacted,
and replay, resume and rational voters reproduce the leader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmecon.models import ChatMessage, register_provider
from llmecon.models._mock import MockProvider
from llmecon.runs import RunConfig, build_config, build_simulation, read_events
from llmecon.runs.config import ConfigError
from llmecon.runs.events import Blob, LLMCall, ScheduleSet, VoteRound
from llmecon.runs.replay import replay_run
from llmecon.runs.resume import resume_run
from llmecon.voting import vote_leaders


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        agents=8,
        years=5,
        out=str(tmp_path),
        run_id="r",
        reference=False,
        vote_every=2,
        candidate_source="leaders",
        candidates=3,
    )
    base.update(kw)
    return build_config(overrides=base)


def _respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
    keys = set((schema or {}).get("properties", {}))
    if "hours" in keys:
        return '{"hours": 40}'
    if "rates" in keys and "You are the tax planner" in messages[0].content:
        return json.dumps({"rates": [25] * 7})
    if "rates" in keys:  # a candidate's platform
        return json.dumps({"rates": [30] * 7})
    return '{"vote": "B"}'


def test_an_elected_leader_is_named_to_the_planner_until_the_next_election(
    tmp_path: Path,
) -> None:
    register_provider(
        "leaders-mock",
        lambda model, api_base, **kw: MockProvider(model, api_base, responder=_respond),
    )
    cfg = _config(tmp_path, planner="leaders-mock/x", workers="leaders-mock/x")
    assert cfg.voters == "llm"
    sim = build_simulation(cfg)
    result = sim.run()
    assert result.status == "completed"
    events = read_events(tmp_path / "r")
    rounds = [e for e in events if isinstance(e, VoteRound)]
    assert [r.year for r in rounds] == [2, 4]
    ids = list(sim.population.ids)
    first, second = rounds
    assert first.source == "leaders" and first.winner == "B"
    assert len(first.candidates) == 3  # K drawn personas, no incumbent leader yet
    assert all(c.origin in ids for c in first.candidates)
    leader = next(c.origin for c in first.candidates if c.label == first.winner)
    assert second.candidates[0].origin == leader  # the incumbent leader stands as A
    assert len({c.origin for c in second.candidates}) == 4
    assert vote_leaders(events) == {
        r.year: next(c.origin for c in r.candidates if c.label == r.winner) for r in rounds
    }
    # the vote enacts nothing: every year's schedule comes from the planner
    sets = {e.year: e for e in events if isinstance(e, ScheduleSet)}
    assert [sets[y].source for y in range(5)] == ["planner"] * 5
    assert [sets[y].detail.get("leader") for y in range(5)] == [
        None,
        None,
        leader,
        leader,
        vote_leaders(events)[4],
    ]
    assert [result.records[y].notes.get("leader") for y in range(5)] == [
        sets[y].detail.get("leader") for y in range(5)
    ]
    # the planner's context names the leader from the election year on, not before
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    texts = sim.voting.persona_texts
    calls = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert {c.year for c in calls} == {1, 2, 3, 4}
    for call in calls:
        system = blobs[call.messages[0].sha256]
        named = sets[call.year].detail.get("leader")
        if named is None:
            assert "elected you" not in system
        else:
            assert "elected you in tax year" in system
            assert texts[ids.index(named)].strip() in system
    # ballots show the candidates' one-line summaries
    ballot = next(e for e in events if isinstance(e, LLMCall) and e.role == "voter")
    assert "everyone elects a leader" in blobs[ballot.messages[0].sha256]
    assert "-year-old" in blobs[ballot.messages[0].sha256].split("proposed by a", 1)[1]
    assert result.records[2].notes["vote_summary"].startswith("a plurality election")
    report = replay_run(tmp_path / "r")
    assert report.ok, report.differences


def _planner_messages(run_dir: Path) -> dict[int, list[str]]:
    events = read_events(run_dir)
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    return {
        e.year: [blobs[m.sha256] for m in e.messages]
        for e in events
        if isinstance(e, LLMCall) and e.role == "planner"
    }


def test_rational_voters_elect_and_a_resumed_run_keeps_the_leader(tmp_path: Path) -> None:
    def run(run_id: str) -> Path:
        cfg = _config(tmp_path, planner="mock/default", workers="rational", years=6, run_id=run_id)
        assert cfg.voters == "rational"
        build_simulation(cfg).run()
        return tmp_path / run_id

    full, cut = run("full"), run("cut")
    events = read_events(full)
    rounds = [e for e in events if isinstance(e, VoteRound)]
    assert [(r.year, r.voters, r.source) for r in rounds] == [
        (2, "rational", "leaders"),
        (4, "rational", "leaders"),
    ]
    assert replay_run(full).ok
    # stop the run inside year 3 (a year under the leader elected in year 2)
    lines = (cut / "events.jsonl").read_text().splitlines()
    year3 = next(i for i, ln in enumerate(lines) if '"year_started"' in ln and '"year":3' in ln)
    (cut / "events.jsonl").write_text("\n".join(lines[: year3 + 2]) + "\n")
    sim = resume_run(cut)
    assert sim.records[2].notes["leader"] == vote_leaders(events)[2]
    assert "leader" not in sim.records[1].notes
    sim.run()
    # the resumed planner prompts still name the leader: they match the uninterrupted run
    assert _planner_messages(cut) == _planner_messages(full)
    assert "elected you in tax year 3" in _planner_messages(cut)[3][0]
    assert [e.type for e in read_events(cut)] == [e.type for e in events]
    assert replay_run(cut).ok


def test_leaders_need_an_llm_planner(tmp_path: Path) -> None:
    cfg = _config(tmp_path, planner="saez", workers="rational")
    with pytest.raises(ConfigError, match="LLM --planner"):
        build_simulation(cfg)


def test_the_democratic_preset_elects_a_leader_every_year(tmp_path: Path) -> None:
    cfg = build_config(
        overrides=dict(
            preset="llm-economist-2025-democratic",
            planner="mock/default",
            workers="mock/default",
            agents=6,
            years=3,
            worker_steps=1,
            out=str(tmp_path),
            run_id="d",
            reference=False,
        )
    )
    assert cfg.candidate_source == "leaders" and cfg.voters == "llm"
    result = build_simulation(cfg).run()
    events = read_events(tmp_path / "d")
    assert [e.year for e in events if isinstance(e, VoteRound)] == [1, 2]
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    assert [s.source for s in sets] == ["planner"] * 3
    assert "leader" not in sets[0].detail and sets[1].detail["leader"].startswith("persona-")
    assert [r.notes.get("leader") for r in result.records] == [s.detail.get("leader") for s in sets]
