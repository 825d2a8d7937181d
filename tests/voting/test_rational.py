"""Rational voters and platforms; the median-voter prediction with two candidates."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, synthetic_population
from llmecon.planners import PlannerContext, YearRecord
from llmecon.runs.config import RunConfig
from llmecon.runs.events import VoteRound
from llmecon.voting.rounds import VotingRounds
from llmecon.voting.rules import (
    ApprovalBallot,
    PluralityBallot,
    RankingBallot,
    favourite_rates,
    project_candidates,
    rational_ballots,
    utilities_of_rates,
)


def test_rational_ballots_from_a_hand_made_utility_matrix() -> None:
    u = np.array(
        [  # candidates A, B, C (rows) for four voters (columns)
            [3.0, 1.0, 5.0, 2.0],
            [2.0, 4.0, 5.0, 2.0],
            [1.0, 2.0, 0.0, 2.0],
        ]
    )
    assert rational_ballots(u, "ABC", "plurality") == [
        PluralityBallot("A"),
        PluralityBallot("B"),
        PluralityBallot("A"),  # exact tie A/B: the earlier label
        PluralityBallot("A"),
    ]
    assert rational_ballots(u, "ABC", "borda") == [
        RankingBallot(("A", "B", "C")),
        RankingBallot(("B", "C", "A")),
        RankingBallot(("A", "B", "C")),
        RankingBallot(("A", "B", "C")),
    ]
    # approval: candidates at least as good as the voter's mean over candidates
    assert rational_ballots(u, "ABC", "approval") == [
        ApprovalBallot(("A", "B")),  # mean 2: B is exactly average, approved
        ApprovalBallot(("B",)),  # mean 2.33
        ApprovalBallot(("A", "B")),  # mean 3.33
        ApprovalBallot(("A", "B", "C")),  # indifferent
    ]


def _economy(n: int = 301, seed: int = 3, rebate_share: float = 1.0) -> Economy:
    return Economy(
        synthetic_population(n, np.random.default_rng(seed)),
        UtilityConfig(rebate_share=rebate_share),
    )


def test_rational_voters_pick_their_utility_maximising_candidate() -> None:
    economy = _economy()
    schedules = [
        TaxSchedule.status_quo(),
        TaxSchedule.from_rates([0.3] * 7, "us-federal-2025"),
        TaxSchedule.from_rates([0.0, 0.05, 0.1, 0.3, 0.4, 0.5, 0.6], "us-federal-2025"),
    ]
    # each voter's utility at its own best response, rebate from everyone's best response
    direct = []
    for schedule in schedules:
        hours = economy.rational_hours(schedule)
        direct.append(economy.outcome(schedule, hours).utility)
    direct_u = np.array(direct)
    assert np.allclose(project_candidates(economy, schedules).utilities, direct_u)
    ballots = rational_ballots(direct_u, "ABC", "plurality")
    chosen = np.array(["ABC".index(b.choice) for b in ballots if isinstance(b, PluralityBallot)])
    assert np.all(direct_u[chosen, np.arange(economy.size)] >= direct_u.max(axis=0) - 1e-9)
    assert len(set(chosen.tolist())) >= 2  # a real choice, not a unanimous one
    for b, col in zip(rational_ballots(direct_u, "ABC", "borda"), direct_u.T, strict=True):
        assert isinstance(b, RankingBallot)
        assert np.all(np.diff([col["ABC".index(x)] for x in b.ranking]) <= 1e-9)


class _FixedProposal:
    """A baseline-like planner whose proposal is the given schedule."""

    name = "test"

    def __init__(self, schedule: TaxSchedule) -> None:
        self.schedule = schedule

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self.schedule


def _round(
    economy: Economy,
    incumbent: TaxSchedule,
    proposal: TaxSchedule,
    **settings: Any,
) -> VoteRound:
    config = RunConfig(
        planner="us-federal",
        workers="rational",
        vote_every=1,
        voters="rational",
        candidates=1,
        **settings,
    )
    ctx = PlannerContext(economy, incumbent.edges, np.random.default_rng(0))
    outcome, metrics = economy.evaluate(incumbent)
    history = [YearRecord(0, incumbent, metrics, outcome.weekly_hours, outcome.income_usd)]
    events: list[Any] = []
    rounds = VotingRounds(config, ctx, _FixedProposal(proposal), events.append)

    async def propose() -> tuple[TaxSchedule, str]:
        return proposal, "planner"

    decision = asyncio.run(rounds.decide(1, history, propose))
    assert decision is not None and decision.source == "vote"
    (event,) = [e for e in events if isinstance(e, VoteRound)]
    assert decision.schedule.rates == tuple(
        next(c.rates for c in event.candidates if c.label == event.winner)
    )
    return event


@pytest.mark.parametrize(
    ("rebate_share", "low", "high"),
    [(1.0, 0.10, 0.25), (1.0, 0.10, 0.40), (0.5, 0.10, 0.40)],
)
def test_majority_matches_the_median_voter_prediction(
    rebate_share: float, low: float, high: float
) -> None:
    economy = _economy(n=501, rebate_share=rebate_share)
    low_tax, high_rebate = TaxSchedule.flat(low), TaxSchedule.flat(high)
    # The prediction, computed directly from the voters' utilities: with flat taxes and a
    # lump-sum rebate, u_i(high) - u_i(low) falls with income (single crossing), so the
    # voter with the median income decides a pairwise majority vote.
    out_low, _ = economy.evaluate(low_tax)
    out_high, _ = economy.evaluate(high_rebate)
    gain = out_high.utility - out_low.utility
    order = np.argsort(out_low.income_usd, kind="stable")
    assert np.all(np.diff(gain[order]) <= 1e-6), "single crossing fails: no median voter"
    median_voter = order[economy.size // 2]
    predicted = "B" if gain[median_voter] > 0 else "A"
    event = _round(economy, low_tax, high_rebate, vote_rule="plurality")
    assert [c.origin for c in event.candidates] == ["incumbent", "planner"]
    assert event.winner == predicted
    assert event.shares[predicted] > 0.5 and event.turnout == 1.0
    assert event.shares["B"] == pytest.approx(float(np.mean(gain > 0)))
    assert event.planner_proposal_label == "B"
    # the winner's SWF and the best candidate's are the economy's own evaluation
    swf = {"A": economy.evaluate(low_tax)[1].swf, "B": economy.evaluate(high_rebate)[1].swf}
    assert event.winner_swf == pytest.approx(swf[event.winner])
    assert event.best_candidate_swf == pytest.approx(max(swf.values()))


def test_the_median_voter_cases_go_both_ways() -> None:
    """Guard: the parametrised cases above are not all won by the same candidate."""
    winners = set()
    for share, low, high in [(1.0, 0.10, 0.25), (1.0, 0.10, 0.40)]:
        economy = _economy(n=501, rebate_share=share)
        winners.add(_round(economy, TaxSchedule.flat(low), TaxSchedule.flat(high)).winner)
    assert winners == {"A", "B"}


def test_rational_platform_is_at_least_as_good_for_its_proposer() -> None:
    economy = _economy(n=200)
    edges = TaxSchedule.status_quo().edges
    start = np.array(TaxSchedule.status_quo().rates)
    incomes = economy.evaluate(TaxSchedule.status_quo())[0].income_usd
    poor, rich = int(np.argmin(incomes)), int(np.argmax(incomes))
    for who in (poor, rich):
        rates = favourite_rates(economy, who, edges, start, 0.0, 0.9)
        both = utilities_of_rates(economy, edges, np.vstack([start, rates]))[:, who]
        assert both[1] >= both[0] - 1e-9
        assert np.all((rates >= 0) & (rates <= 0.9 + 1e-12))
    poor_rates = favourite_rates(economy, poor, edges, start, 0.0, 0.9)
    rich_rates = favourite_rates(economy, rich, edges, start, 0.0, 0.9)
    assert poor_rates.mean() > rich_rates.mean()  # the poor want more redistribution
    # utilities_of_rates agrees with the exact projection (quasi-linear utility)
    exact = project_candidates(economy, [TaxSchedule(edges, tuple(poor_rates))]).utilities[0]
    assert np.allclose(utilities_of_rates(economy, edges, poor_rates[None, :])[0], exact)
