"""The vote-rule registry: a rule registered in one place is listed, counted, voted
rationally, asked of LLM voters and held in a run's round, and can be removed again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, synthetic_population
from llmecon.planners import PlannerContext, YearRecord
from llmecon.prompts import PromptLibrary
from llmecon.runs.config import RunConfig
from llmecon.runs.events import VoteRound
from llmecon.voting import (
    Ballot,
    VoteRule,
    VoteRuleError,
    VotingRounds,
    ballot_from_json,
    ballot_problem,
    ballot_schema,
    ballot_to_json,
    get_vote_rule,
    rational_ballots,
    register_vote_rule,
    registered_vote_rule,
    tally,
    vote_rule_names,
)
from llmecon.voting.rules import label_reply_model
from llmecon.voting.voters import BallotCandidate, vote_prompt


@dataclass(frozen=True)
class VetoBallot(Ballot):
    """A vote against one candidate."""

    against: str


class AntiPlurality(VoteRule):
    name = "anti-plurality"
    help = "one veto per voter; the fewest vetoes wins"
    ballot_type = VetoBallot

    def problem(self, ballot: VetoBallot, labels: Sequence[str]) -> str | None:
        return None if ballot.against in labels else f"unknown candidate {ballot.against!r}"

    def points(self, ballot: VetoBallot, labels: Sequence[str]) -> list[tuple[str, float]]:
        return [(label, 1.0) for label in labels if label != ballot.against]

    def sincere(self, utilities: Any, labels: tuple[str, ...]) -> list[Ballot]:
        worst = np.argmin(utilities, axis=0)
        return [VetoBallot(labels[int(c)]) for c in worst]

    def reply_model(self, labels: Sequence[str]) -> type[BaseModel]:
        return label_reply_model("VetoBallot", "against", labels)

    def to_json(self, ballot: VetoBallot) -> dict[str, Any]:
        return {"against": ballot.against}

    def from_json(self, data: dict[str, Any]) -> Ballot:
        return VetoBallot(str(data["against"]))


ABC = ("A", "B", "C")


VETO_TEXT = (
    "Vote against the one schedule you like least.\n"
    'Answer with JSON only: an object with one key, "against", whose value is the label of '
    "that schedule."
)


def test_a_registered_rule_is_listed_counted_and_voted_then_removed(tmp_path: Path) -> None:
    builtin = dict(vote_rule_names())
    assert list(builtin) == ["plurality", "borda", "approval"]
    with registered_vote_rule(AntiPlurality()) as rule:
        assert vote_rule_names()["anti-plurality"] == rule.help
        assert get_vote_rule("anti-plurality") is rule
        with pytest.raises(VoteRuleError, match="already registered"):
            register_vote_rule(AntiPlurality())
        # counting: each ballot gives a point to every candidate it does not veto
        ballots: list[Ballot | None] = [VetoBallot("A"), VetoBallot("A"), VetoBallot("C"), None]
        count = tally("anti-plurality", ballots, ABC, np.random.default_rng(0))
        assert count.scores == {"A": 1.0, "B": 3.0, "C": 2.0} and count.winner == "B"
        assert count.valid == 3 and count.shares["B"] == pytest.approx(1.0)
        bad = tally("anti-plurality", [VetoBallot("Z")], ABC, np.random.default_rng(0))
        assert bad.valid == 0 and "unknown candidate" in bad.invalid[0]
        wrong = ballot_problem(VetoBallot("A"), "plurality", ABC)
        assert wrong == "a VetoBallot is not a plurality ballot"
        # rational voters veto their worst candidate, and their ballots are valid
        u = np.array([[3.0, 1.0, 5.0], [2.0, 4.0, 0.0], [1.0, 2.0, 6.0]])
        sincere = rational_ballots(u, ABC, "anti-plurality")
        assert sincere == [VetoBallot("C"), VetoBallot("A"), VetoBallot("B")]
        assert all(ballot_problem(b, "anti-plurality", ABC) is None for b in sincere)
        # JSON both ways, and the LLM reply schema keeps to the labels
        for b in sincere:
            data = ballot_to_json(b, "anti-plurality")
            assert ballot_from_json("anti-plurality", data) == b
            assert ballot_to_json(b) == data  # found by the ballot's type
        schema = ballot_schema("anti-plurality", ABC)
        assert schema.model_validate_json('{"against": "B"}').model_dump() == {"against": "B"}
        with pytest.raises(ValidationError):
            schema.model_validate_json('{"against": "Z"}')
        # LLM voters read the rule's own template at the end of prompts/vote.j2
        (tmp_path / "vote_rule_anti-plurality.j2").write_text(VETO_TEXT + "\n")
        incumbent = TaxSchedule.status_quo()
        prompt = vote_prompt(
            PromptLibrary(tmp_path),
            rule="anti-plurality",
            year=2,
            candidates=[BallotCandidate(x, incumbent, "incumbent") for x in ABC],
            persona_text="You are a test persona.",
            weekly_hours=40.0,
            income_usd=50_000.0,
            projections=[{"label": x, "tax": 1.0, "rebate": 1.0, "net": 1.0} for x in ABC],
        )
        assert prompt.messages[0].content.endswith(VETO_TEXT + "\n")
    assert vote_rule_names() == builtin
    with pytest.raises(VoteRuleError, match="unknown voting rule 'anti-plurality'"):
        get_vote_rule("anti-plurality")


class _FixedProposal:
    name = "test"

    def __init__(self, schedule: TaxSchedule) -> None:
        self.schedule = schedule

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self.schedule


def test_a_registered_rule_runs_a_round_with_rational_voters() -> None:
    economy = Economy(synthetic_population(60, np.random.default_rng(1)), UtilityConfig())
    low, high = TaxSchedule.flat(0.1), TaxSchedule.flat(0.4)
    outcome, metrics = economy.evaluate(low)
    history = [YearRecord(0, low, metrics, outcome.weekly_hours, outcome.income_usd)]
    with registered_vote_rule(AntiPlurality()):
        config = RunConfig(
            planner="us-federal",
            workers="rational",
            vote_every=1,
            voters="rational",
            candidates=2,
            vote_rule="anti-plurality",
        )
        ctx = PlannerContext(economy, low.edges, np.random.default_rng(0))
        events: list[Any] = []
        rounds = VotingRounds(config, ctx, _FixedProposal(high), events.append)

        async def propose() -> tuple[TaxSchedule, str]:
            return high, "planner"

        decision = asyncio.run(rounds.decide(1, history, propose))
    assert decision is not None and decision.source == "vote"
    (event,) = [e for e in events if isinstance(e, VoteRound)]
    assert event.rule == "anti-plurality" and len(event.candidates) == 3
    assert event.turnout == 1.0 and all(set(b.ballot or {}) == {"against"} for b in event.ballots)
    vetoes = [b.ballot["against"] for b in event.ballots if b.ballot]
    assert event.winner in {c.label for c in event.candidates}
    assert event.scores[event.winner] == len(vetoes) - vetoes.count(event.winner)
    assert decision.summary is not None and "anti-plurality vote" in decision.summary


def test_llm_voters_need_the_rules_template(tmp_path: Path) -> None:
    """A registered rule without its ``vote_rule_<name>.j2`` fails when the run is built
    (naming the template), never at the first vote."""
    from llmecon.runs import ConfigError, build_config, build_simulation

    settings = {
        "planner": "mock/default",
        "agents": 4,
        "years": 3,
        "vote_every": 2,
        "vote_rule": "anti-plurality",
        "voters": "llm",
        "out": str(tmp_path),
    }
    with registered_vote_rule(AntiPlurality()):
        config = build_config(overrides=settings)
        with pytest.raises(ConfigError, match=r"vote_rule_anti-plurality\.j2"):
            build_simulation(config, write_log=False)
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        (prompts / "vote_rule_anti-plurality.j2").write_text(VETO_TEXT + "\n")
        result = build_simulation(
            config.model_copy(update={"prompts": str(prompts)}), write_log=False
        ).run()
    assert result.complete and any(r.source == "vote" for r in result.records)
