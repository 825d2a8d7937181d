"""Ballots weighted by survey weight: a weighted majority beats a numeric one, for every
built-in rule, in a count and in a whole round; old vote events still load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, UtilityConfig, synthetic_population
from llmecon.runs.events import VoteRound
from llmecon.voting.rounds import vote_summary
from llmecon.voting.rules import (
    ApprovalBallot,
    Ballot,
    PluralityBallot,
    RankingBallot,
    tally,
    utilities_of_rates,
)

from .test_rational import _round

ABC = ("A", "B", "C")


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# Three light voters prefer A, two heavy ones B: A wins by count, B by weight.
LIGHT, HEAVY = 0.5, 1.75
WEIGHTS = [LIGHT, LIGHT, LIGHT, HEAVY, HEAVY]


def test_weighted_plurality_beats_the_numeric_majority() -> None:
    ballots: list[Ballot | None] = [PluralityBallot(c) for c in "AAABB"]
    assert tally("plurality", ballots, ABC, rng()).winner == "A"  # one persona, one vote
    t = tally("plurality", ballots, ABC, rng(), weights=WEIGHTS)
    assert t.winner == "B" and t.weighted
    assert t.scores == pytest.approx({"A": 1.5, "B": 3.5, "C": 0.0})
    assert t.counts == {"A": 3.0, "B": 2.0, "C": 0.0}  # the raw counts are kept
    assert t.shares == pytest.approx({"A": 0.3, "B": 0.7, "C": 0.0})
    assert t.valid == 5 and t.valid_weight == pytest.approx(5.0)


def test_weighted_borda_and_approval_beat_the_numeric_majority() -> None:
    rankings: list[Ballot | None] = [RankingBallot(tuple(o)) for o in ["ACB"] * 3 + ["BCA"] * 2]
    assert tally("borda", rankings, ABC, rng()).winner == "A"  # A 6, B 4, C 5 points
    t = tally("borda", rankings, ABC, rng(), weights=WEIGHTS)
    # A: 1.5·2 = 3; B: 3.5·2 = 7; C: 1.5 + 3.5 = 5 (of weight 5 × 3 points)
    assert t.winner == "B"
    assert t.scores == pytest.approx({"A": 3.0, "B": 7.0, "C": 5.0})
    assert t.counts == {"A": 6.0, "B": 4.0, "C": 5.0}
    assert t.shares["B"] == pytest.approx(7.0 / 15.0)
    approvals: list[Ballot | None] = [ApprovalBallot(("A",)) for _ in range(3)]
    approvals += [ApprovalBallot(("B", "C")) for _ in range(2)]
    assert tally("approval", approvals, ABC, rng()).winner == "A"
    t = tally("approval", approvals, ABC, rng(), weights=WEIGHTS)
    assert t.winner in ("B", "C") and set(t.tied) == {"B", "C"}
    assert t.shares == pytest.approx({"A": 0.3, "B": 0.7, "C": 0.7})


def test_turnout_is_weighted_and_weightless_ballots_decide_nothing() -> None:
    ballots: list[Ballot | None] = [PluralityBallot("A"), None, PluralityBallot("B")]
    t = tally("plurality", ballots, ABC, rng(), weights=[1.0, 3.0, 0.0])
    assert t.turnout == pytest.approx(0.25) and t.winner == "A"
    only_weightless = tally("plurality", ballots, ABC, rng(), fallback="C", weights=[0.0, 1.0, 0.0])
    assert only_weightless.winner == "C" and only_weightless.valid == 2
    with pytest.raises(ValueError, match="one weight per ballot"):
        tally("plurality", ballots, ABC, rng(), weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="finite and ≥ 0"):
        tally("plurality", ballots, ABC, rng(), weights=[1.0, -1.0, 1.0])


def test_a_round_counts_each_persona_with_its_survey_weight() -> None:
    base = synthetic_population(301, np.random.default_rng(3))
    low, high = TaxSchedule.flat(0.10), TaxSchedule.flat(0.40)
    unweighted = Economy(base, UtilityConfig())
    before = utilities_of_rates(unweighted, low.edges, np.array([low.rates, high.rates]))
    # Give whoever is the numeric minority for the high-tax schedule B four times the
    # weight of the majority.
    minority = before[1] > before[0]
    if minority.mean() > 0.5:
        minority = ~minority
    weight = np.where(minority, 4.0, 1.0)
    economy = Economy(dataclasses.replace(base, weight=weight), UtilityConfig())
    w = economy.population.weight
    assert w is not None
    # Weights move the rebate (revenue per person), so preferences are read again.
    u = utilities_of_rates(economy, low.edges, np.array([low.rates, high.rates]))
    for_b = u[1] > u[0]
    numeric = "B" if for_b.sum() > (~for_b).sum() else "A"
    weighted = "B" if w[for_b].sum() > w[~for_b].sum() else "A"
    assert numeric != weighted  # the case under test: the weights decide

    event = _round(economy, low, high, vote_rule="plurality")
    assert event.winner == weighted and event.survey_weighted
    assert event.counts[numeric] > event.counts[weighted]  # the raw counts disagree
    assert event.counts["B"] == for_b.sum()
    assert event.scores["B"] == pytest.approx(float(w[for_b].sum()))
    assert event.shares[weighted] > 0.5 and event.valid_ballots == economy.size
    assert event.turnout == 1.0
    assert "survey-weighted shares" in vote_summary(event)


def test_vote_events_from_older_logs_still_load() -> None:
    old = {
        "type": "vote_round",
        "seq": 4,
        "year": 2,
        "rule": "plurality",
        "source": "planner",
        "voters": "rational",
        "candidates": [{"label": "A", "rates": [0.1], "origin": "incumbent"}],
        "ballots": [{"agent": "p1", "ballot": {"vote": "A"}}],
        "scores": {"A": 1.0},
        "shares": {"A": 1.0},
        "turnout": 1.0,
        "winner": "A",
        "winner_swf": 1.0,
        "best_candidate": "A",
        "best_candidate_swf": 1.0,
    }
    event = VoteRound.model_validate(old)
    assert event.counts == {} and event.valid_ballots is None and not event.survey_weighted
    assert "survey-weighted" not in vote_summary(event)
