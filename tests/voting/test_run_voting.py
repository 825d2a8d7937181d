"""Voting rounds inside runs: mock-model ballots logged, abstentions, LLM candidates,
platforms, replay, CLI and config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import llmecon
from llmecon.cli import main
from llmecon.models import ChatMessage, register_provider
from llmecon.models._mock import MockProvider
from llmecon.prompts import RENDERING
from llmecon.runs import RunConfig, build_config, build_simulation, read_events
from llmecon.runs.config import ConfigError
from llmecon.runs.events import Blob, Fallback, LLMCall, ScheduleSet, VoteRound
from llmecon.runs.replay import ReplayMismatchError, replay_run
from llmecon.voting import vote_summaries

Responder = Callable[[list[ChatMessage], dict[str, Any] | None], str]


def use_responder(name: str, fn: Responder) -> str:
    register_provider(
        name, lambda model, api_base, **kw: MockProvider(model, api_base, responder=fn)
    )
    return f"{name}/x"


def props(schema: dict[str, Any] | None) -> set[str]:
    return set((schema or {}).get("properties", {}))


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(agents=8, years=5, out=str(tmp_path), run_id="r", reference=False)
    base.update(kw)
    return build_config(overrides=base)


def test_an_approval_vote_in_new_runs_and_a_approval_vote_in_logged_ones(tmp_path: Path) -> None:
    # The planner's demonstrations said "set by a approval vote". New runs say "an";
    # a run logged before (prompt_rendering 2) still replays with the text it was sent.
    cfg = _config(tmp_path, planner="mock/default", vote_every=2, vote_rule="approval")
    result = build_simulation(cfg).run()
    assert result.records[2].notes["vote_summary"].startswith("set by an approval vote")
    events = read_events(tmp_path / "r")
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    ask = next(e for e in events if isinstance(e, LLMCall) and e.role == "proposer" and e.year == 4)
    assert "set by an approval vote" in blobs[ask.messages[1].sha256]
    assert replay_run(tmp_path / "r").ok
    old = build_simulation(_config(tmp_path, planner="mock/default", vote_every=2,
                                   vote_rule="approval", run_id="old"), rendering=2)  # fmt: skip
    assert old.run().records[2].notes["vote_summary"].startswith("set by a approval vote")
    assert json.loads((tmp_path / "old" / "manifest.json").read_text())["prompt_rendering"] == 2
    assert replay_run(tmp_path / "old").ok
    path = tmp_path / "old" / "manifest.json"  # told it was written the new way, it differs
    path.write_text(path.read_text().replace('"prompt_rendering": 2', '"prompt_rendering": 3'))
    with pytest.raises(ReplayMismatchError, match="tax year 5 sends another"):
        replay_run(tmp_path / "old")


def test_a_voters_hours_agree_with_the_income_beside_them(tmp_path: Path) -> None:
    # Rational workers' hours are not whole: the vote prompt showed "34 hours" beside
    # the income of 33.87. It now shows the hours to a tenth where they are not whole.
    import re

    cfg = _config(tmp_path, planner="none", workers="rational", vote_every=1,
                  voters="llm", voter_model="mock/default", years=2)  # fmt: skip
    build_simulation(cfg).run()
    events = read_events(tmp_path / "r")
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    prompts = [
        "\n".join(blobs[m.sha256] for m in e.messages)
        for e in events
        if isinstance(e, LLMCall) and e.role == "voter"
    ]
    assert prompts
    fractional = 0
    for text in prompts:
        wage = float(re.search(r"You earn \$([\d,.]+) an hour", text)[1].replace(",", ""))
        said = re.search(r"At your current ([\d.]+) hours a week \(income \$([\d,]+) a year", text)
        hours, income = float(said[1]), float(said[2].replace(",", ""))
        fractional += not hours.is_integer()
        # hours to a tenth, wages to a cent, income to a dollar
        assert abs(income - 52 * wage * hours) <= 52 * (0.05 * wage + 0.005 * hours) + 0.5, text
    assert fractional > len(prompts) / 2


def test_mock_run_with_voting_logs_every_ballot_and_replays(tmp_path: Path) -> None:
    cfg = _config(tmp_path, planner="mock/default", vote_every=2, vote_rule="borda", candidates=3)
    assert cfg.voters == "llm"
    sim = build_simulation(cfg)
    result = sim.run()
    assert result.status == "completed"
    events = read_events(tmp_path / "r")
    rounds = [e for e in events if isinstance(e, VoteRound)]
    assert [r.year for r in rounds] == [2, 4]
    sets = {e.year: e for e in events if isinstance(e, ScheduleSet)}
    assert [sets[y].source for y in range(5)] == [
        "planner",
        "planner",
        "vote",
        "vote (incumbent)",
        "vote",
    ]
    ids = sim.population.ids
    calls = [e for e in events if isinstance(e, LLMCall)]
    for r in rounds:
        assert [b.agent for b in r.ballots] == list(ids)  # every voter, in order
        voter_calls = {c.agent: c for c in calls if c.role == "voter" and c.year == r.year}
        assert set(voter_calls) == set(ids)
        for b in r.ballots:
            assert not b.abstained and b.ballot is not None
            assert b.ballot == voter_calls[b.agent].parsed
            assert sorted(b.ballot["ranking"]) == [c.label for c in r.candidates]
        assert r.candidates[0].origin == "incumbent"
        assert r.candidates[0].rates == sets[r.year - 1].rates
        assert 2 <= len(r.candidates) <= 4 and r.turnout == 1.0
        assert sum(r.shares.values()) == pytest.approx(1.0)
        winner = next(c for c in r.candidates if c.label == r.winner)
        assert sets[r.year].rates == winner.rates
        assert r.best_candidate_swf >= r.winner_swf
        assert sum(c.role == "proposer" and c.year == r.year for c in calls) == 1
    assert sets[3].rates == sets[2].rates  # the winner stays in force
    # the planner is not consulted in vote years or while a winner is in force
    assert {c.year for c in calls if c.role == "planner"} == {1}
    assert result.records[2].notes["vote_summary"].startswith("set by a borda vote")
    assert vote_summaries(events, RENDERING) == {
        y: result.records[y].notes["vote_summary"] for y in (2, 4)
    }
    # the summary reaches the planner's demonstrations (year 4's candidate request)
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    ask = next(c for c in calls if c.role == "proposer" and c.year == 4)
    assert "set by a borda vote" in blobs[ask.messages[1].sha256]
    table = llmecon.load_run(tmp_path / "r").votes  # one row per candidate per round
    assert len(table) == sum(len(r.candidates) for r in rounds)
    assert table.groupby("year")["is_winner"].sum().tolist() == [1, 1]
    report = replay_run(tmp_path / "r")
    assert report.ok, report.differences


def test_invalid_and_malformed_ballots_are_reasked_then_abstentions(tmp_path: Path) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        if "hours" in props(schema):
            return '{"hours": 40}'
        text = messages[0].content
        if "-year-old man" in text and "You are single" in text:
            return '{"vote": "Z"}'  # unknown candidate: re-asked, then an abstention
        if "-year-old woman" in text and "married" in text:
            return "I would rather not say"  # malformed
        return '{"vote": "B"}'

    model = use_responder("voters-mixed", respond)
    cfg = _config(tmp_path, planner="us-federal", workers=model, agents=12, years=2, vote_every=1)
    sim = build_simulation(cfg)
    sim.run()
    events = read_events(tmp_path / "r")
    (vote,) = [e for e in events if isinstance(e, VoteRound)]
    assert len(vote.candidates) == 3  # incumbent + K=2 (proposal = incumbent, filled)
    assert sim.voting is not None and sim.voting.persona_texts is not None
    texts = sim.voting.persona_texts
    expected_abstain = [
        ("-year-old man" in t and "You are single" in t)
        or ("-year-old woman" in t and "married" in t)
        for t in texts
    ]
    assert 0 < sum(expected_abstain) < len(texts)
    assert [b.abstained for b in vote.ballots] == expected_abstain
    for ballot in vote.ballots:
        if ballot.abstained:
            assert ballot.ballot is None and ballot.reason and "StructuredOutput" in ballot.reason
    voter_calls = {c.agent: c for c in events if isinstance(c, LLMCall) and c.role == "voter"}
    for agent, abstained in zip(sim.population.ids, expected_abstain, strict=True):
        call = voter_calls[agent]
        assert call.repairs == (2 if abstained else 0)  # re-asked (bounded), then given up
        assert len(call.raw_outputs) == (3 if abstained else 1)
    falls = [e for e in events if isinstance(e, Fallback) and e.role == "voter"]
    assert len(falls) == sum(expected_abstain)
    assert all(f.action == "counted as an abstention" for f in falls)
    valid = len(texts) - sum(expected_abstain)
    assert vote.valid_ballots == valid and vote.counts["B"] == valid
    # Turnout weighs each persona by its survey weight (the bank's personas carry them).
    weight = sim.population.weight
    assert weight is not None
    voted = ~np.array(expected_abstain)
    assert vote.turnout == pytest.approx(float(weight[voted].sum() / weight.sum()))
    assert vote.winner == "B" and vote.shares["B"] == 1.0


def test_all_abstain_keeps_the_incumbent(tmp_path: Path) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        return '{"hours": 30}' if "hours" in props(schema) else "{}"

    model = use_responder("voters-silent", respond)
    # Every ballot fails on purpose: the breaker's share rule is turned off.
    cfg = _config(
        tmp_path, planner="flat:0.2", workers=model, years=2, vote_every=1, max_failure_share=1.0
    )
    result = build_simulation(cfg).run()
    (vote,) = [e for e in read_events(tmp_path / "r") if isinstance(e, VoteRound)]
    assert vote.turnout == 0.0 and vote.winner == "A" and all(b.abstained for b in vote.ballots)
    assert result.records[1].schedule.rates == result.records[0].schedule.rates
    assert result.fallbacks == 8


def test_llm_planner_candidates_and_their_failure(tmp_path: Path) -> None:
    state = {"fail": False}

    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        keys = props(schema)
        if "hours" in keys:
            return '{"hours": 40}'
        if "candidates" in keys:
            if state["fail"]:
                return '{"candidates": []}'
            return json.dumps({"candidates": [[15] * 7, [60] * 7]})
        if "rates" in keys:
            return json.dumps({"rates": [20] * 7})
        return '{"vote": "B"}'

    model = use_responder("cand-planner", respond)
    cfg = _config(tmp_path, planner=model, years=3, vote_every=2, candidates=2)
    build_simulation(cfg).run()
    events = read_events(tmp_path / "r")
    (vote,) = [e for e in events if isinstance(e, VoteRound)]
    assert [c.origin for c in vote.candidates] == ["incumbent", "planner", "planner alternative"]
    incumbent = np.array(vote.candidates[0].rates)
    proposal = np.array(vote.candidates[1].rates)
    assert np.allclose(proposal, np.clip(0.15, incumbent - 0.1, incumbent + 0.1))
    assert np.allclose(vote.candidates[2].rates, np.clip(0.6, incumbent - 0.1, incumbent + 0.1))
    assert vote.planner_proposal_label == "B" and vote.winner == "B"

    state["fail"] = True
    # The proposer's one call fails on purpose: the breaker's share rule is turned off.
    cfg = _config(tmp_path, planner=model, years=3, vote_every=2, run_id="f", max_failure_share=1.0)
    result = build_simulation(cfg).run()
    events = read_events(tmp_path / "f")
    (vote,) = [e for e in events if isinstance(e, VoteRound)]
    assert [c.origin for c in vote.candidates] == ["incumbent", "perturbation", "perturbation"]
    assert vote.planner_proposal is None and vote.planner_proposal_label is None
    falls = [e for e in events if isinstance(e, Fallback) and e.role == "planner"]
    assert len(falls) == 1 and "perturbations" in falls[0].action
    assert result.fallbacks == 1


def test_rational_platforms_with_a_baseline_planner(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        planner="saez",
        personas="synthetic",
        agents=60,
        years=4,
        vote_every=3,
        vote_rule="approval",
        candidates=3,
        candidate_source="platforms",
    )
    assert cfg.voters == "rational"
    sim = build_simulation(cfg)
    sim.run()
    (vote,) = [e for e in read_events(tmp_path / "r") if isinstance(e, VoteRound)]
    assert vote.source == "platforms" and vote.voters == "rational"
    origins = " ".join(c.origin for c in vote.candidates)
    assert origins.count("platform of") == 3 and vote.candidates[0].origin.startswith("incumbent")
    assert vote.planner_proposal is not None  # saez was asked, for comparison only
    assert len(vote.ballots) == 60 and vote.turnout == 1.0
    # the same seed draws the same proposers and the same ballots
    again = build_simulation(cfg.model_copy(update={"run_id": "r2"})).run()
    (vote2,) = [e for e in read_events(tmp_path / "r2") if isinstance(e, VoteRound)]
    assert vote2.candidates == vote.candidates and vote2.ballots == vote.ballots
    assert again.records[-1].schedule.rates == sim.records[-1].schedule.rates


def test_config_defaults_and_errors(tmp_path: Path) -> None:
    assert _config(tmp_path, planner="saez").voters is None
    assert _config(tmp_path, planner="saez", vote_every=2).voters == "rational"
    assert _config(tmp_path, planner="mock/default", vote_every=2).voters == "llm"
    with pytest.raises(ConfigError, match="vote_rule"):
        _config(tmp_path, planner="saez", vote_every=2, vote_rule="condorcet")
    with pytest.raises(ConfigError, match="LLM voters need a model; give --voter-model <model>"):
        build_simulation(_config(tmp_path, planner="saez", vote_every=2, voters="llm"))


def test_cli_options(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(main, ["run", "--help"]).output
    for option in ("--vote-every", "--vote-rule", "--candidates", "--candidate-source"):
        assert option in help_text
    args = ["run", "--planner", "us-federal", "--personas", "synthetic", "--agents", "30"]
    args += ["--years", "3", "--vote-every", "1", "--vote-rule", "borda", "--candidates", "2"]
    args += ["--voters", "rational", "--out", str(tmp_path), "--run-id", "c", "--no-reference"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    rounds = [e for e in read_events(tmp_path / "c") if isinstance(e, VoteRound)]
    assert [r.year for r in rounds] == [1, 2] and {r.rule for r in rounds} == {"borda"}
    assert all(len(r.candidates) == 3 for r in rounds)


def test_an_uncontested_round_asks_no_model_voter(tmp_path: Path) -> None:
    # With every alternative merged into the incumbent (rates bound to 0 %), each round
    # asked all 8 model voters to choose among one candidate: 16 calls for nothing.
    kw = dict(planner="none", workers="rational", vote_every=1, voters="llm",
              voter_model="mock/default", max_rate=0.0, years=3)  # fmt: skip
    result = build_simulation(_config(tmp_path, **kw)).run()
    events = read_events(tmp_path / "r")
    rounds = [e for e in events if isinstance(e, VoteRound)]
    assert [len(r.candidates) for r in rounds] == [1, 1]
    assert not any(isinstance(e, LLMCall) and e.role == "voter" for e in events)
    assert all(r.ballots == [] and r.winner == "A" for r in rounds)
    said = result.records[2].notes["vote_summary"]
    assert said.startswith("set by a plurality vote: uncontested, A (incumbent) the only candidate")
    assert replay_run(tmp_path / "r").ok
    # a run logged before (rendering 6) asked every voter, and replays so
    old = build_simulation(_config(tmp_path, **kw, run_id="old"), rendering=6)
    old.run()
    asked = [e for e in read_events(tmp_path / "old") if isinstance(e, LLMCall)]
    assert len(asked) == 2 * 8 and {e.role for e in asked} == {"voter"}
    assert replay_run(tmp_path / "old").ok
