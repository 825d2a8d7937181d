"""Voting rules on hand-made ballots: plurality, Borda, approval, ties, abstentions."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.voting.rules import (
    ApprovalBallot,
    Ballot,
    BallotError,
    PluralityBallot,
    RankingBallot,
    ballot_from_json,
    ballot_to_json,
    candidate_labels,
    perturbed_rates,
    rate_grid,
    tally,
)

ABC = ("A", "B", "C")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def votes(*choices: str) -> list[Ballot | None]:
    return [PluralityBallot(c) for c in choices]


def ranks(*orders: str) -> list[Ballot | None]:
    return [RankingBallot(tuple(o)) for o in orders]


def test_plurality_counts_votes_shares_and_turnout() -> None:
    ballots = [*votes("B", "A", "B", "C", "B"), None]
    t = tally("plurality", ballots, ABC, rng())
    assert t.winner == "B" and t.tied == ()
    assert t.scores == {"A": 1.0, "B": 3.0, "C": 1.0}
    assert t.shares == pytest.approx({"A": 0.2, "B": 0.6, "C": 0.2})
    assert (t.valid, t.electorate) == (5, 6) and t.turnout == pytest.approx(5 / 6)


def test_borda_points_can_elect_a_candidate_plurality_would_not() -> None:
    ballots = ranks("ABC", "ABC", "BCA", "BCA", "CBA", "CAB", "CAB")
    t = tally("borda", ballots, ABC, rng())
    # A: 2+2+0+0+0+1+1 = 6, B: 1+1+2+2+1+0+0 = 7, C: 0+0+1+1+2+2+2 = 8
    assert t.scores == {"A": 6.0, "B": 7.0, "C": 8.0}
    assert t.winner == "C"
    assert sum(t.shares.values()) == pytest.approx(1.0)
    assert t.shares["C"] == pytest.approx(8 / 21)
    first_choices = [b.ranking[0] for b in ballots if isinstance(b, RankingBallot)]
    plural = tally("plurality", votes(*first_choices), ABC, rng())
    assert plural.winner == "C" and plural.scores == {"A": 2.0, "B": 2.0, "C": 3.0}
    # the Condorcet-ish middle candidate wins under Borda when preferences are polarised
    polar = ranks("ABC", "ABC", "ABC", "CBA", "CBA", "BAC", "BCA")
    assert tally("plurality", votes("A", "A", "A", "C", "C", "B", "B"), ABC, rng()).winner == "A"
    assert tally("borda", polar, ABC, rng()).winner == "B"


def test_approval_shares_are_fractions_of_voters_approving() -> None:
    ballots: list[Ballot | None] = [
        ApprovalBallot(("A", "C")),
        ApprovalBallot(("C",)),
        ApprovalBallot(()),
        ApprovalBallot(("B", "C", "A")),
        None,
    ]
    t = tally("approval", ballots, ABC, rng())
    assert t.winner == "C" and t.scores == {"A": 2.0, "B": 1.0, "C": 3.0}
    assert t.shares == pytest.approx({"A": 0.5, "B": 0.25, "C": 0.75})
    assert t.turnout == pytest.approx(4 / 5)  # an empty approval set is a valid ballot


@pytest.mark.parametrize(
    ("rule", "ballots"),
    [
        ("plurality", votes("A", "B", "B", "A", "C")),
        ("borda", ranks("ABC", "BAC")),
        ("approval", [ApprovalBallot(("A", "B")), ApprovalBallot(("B",)), ApprovalBallot(("A",))]),
    ],
)
def test_ties_are_broken_uniformly_with_the_seeded_generator(
    rule: str, ballots: list[Ballot | None]
) -> None:
    first = tally(rule, ballots, ABC, rng(7))
    assert first.tied == ("A", "B")
    # one draw rng.integers(len(tied)) over the tied labels in candidate order
    assert first.winner == ("A", "B")[int(rng(7).integers(2))]
    assert tally(rule, ballots, ABC, rng(7)).winner == first.winner  # reproducible
    winners = [tally(rule, ballots, ABC, rng(seed)).winner for seed in range(400)]
    assert set(winners) == {"A", "B"}
    assert 0.4 < winners.count("A") / len(winners) < 0.6


def test_no_draw_without_a_tie() -> None:
    g = rng(3)
    tally("plurality", votes("A", "A", "B"), ABC, g)
    assert g.integers(1 << 30) == rng(3).integers(1 << 30)


def test_three_way_tie_lists_every_tied_label() -> None:
    t = tally("plurality", votes("C", "B", "A"), ABC, rng(1))
    assert t.tied == ABC and t.winner in ABC


def test_invalid_ballots_are_not_counted_and_say_why() -> None:
    ballots: list[Ballot | None] = [
        RankingBallot(("A", "B", "Z")),  # unknown candidate
        RankingBallot(("A", "A", "B")),  # duplicate
        RankingBallot(("A", "B")),  # incomplete
        PluralityBallot("B"),  # wrong kind for the rule
        RankingBallot(("C", "B", "A")),
        None,
    ]
    t = tally("borda", ballots, ABC, rng())
    assert t.valid == 1 and t.electorate == 6 and t.winner == "C"
    assert set(t.invalid) == {0, 1, 2, 3}
    assert "unknown candidate" in t.invalid[0] and "twice" in t.invalid[1]
    assert "all 3 candidates" in t.invalid[2] and "not a borda ballot" in t.invalid[3]
    assert tally("approval", [ApprovalBallot(("A", "A"))], ABC, rng()).valid == 0


def test_no_valid_ballot_enacts_the_fallback() -> None:
    t = tally("plurality", [None, PluralityBallot("Q")], ABC, rng(), fallback="A")
    assert t.winner == "A" and t.valid == 0 and t.turnout == 0.0 and t.tied == ()
    assert t.shares == {"A": 0.0, "B": 0.0, "C": 0.0}
    with pytest.raises(ValueError, match="fallback"):
        tally("plurality", [], ABC, rng(), fallback="D")


def test_labels_and_json_round_trip() -> None:
    assert candidate_labels(3) == ABC and candidate_labels(26)[-1] == "Z"
    with pytest.raises(ValueError):
        candidate_labels(27)
    for rule, ballot in [
        ("plurality", PluralityBallot("B")),
        ("borda", RankingBallot(("C", "A", "B"))),
        ("approval", ApprovalBallot(("A",))),
    ]:
        assert ballot_from_json(rule, ballot_to_json(ballot)) == ballot
    with pytest.raises(BallotError):
        ballot_from_json("borda", {"vote": "A"})


def test_perturbed_rates_are_distinct_bounded_and_seeded() -> None:
    base = [0.1, 0.12, 0.22]
    alts = perturbed_rates(base, 4, rng(5), 0.1, 0.3, avoid=[[0.1, 0.13, 0.22]])
    assert len(alts) == 4
    keys = {tuple(np.round(a, 9)) for a in alts}
    assert len(keys) == 4 and (0.1, 0.12, 0.22) not in keys and (0.1, 0.13, 0.22) not in keys
    for a in alts:
        assert np.all((a >= 0.1 - 1e-12) & (a <= 0.3 + 1e-12))
        assert np.all(np.abs(a - base) <= 0.05 + 1e-9)
        assert np.allclose(a * 100, np.round(a * 100))
    again = perturbed_rates(base, 4, rng(5), 0.1, 0.3, avoid=[[0.1, 0.13, 0.22]])
    assert all(np.array_equal(x, y) for x, y in zip(alts, again, strict=True))


def test_rate_grid_includes_the_bounds() -> None:
    assert rate_grid(0.0, 1.0).tolist() == pytest.approx([i / 20 for i in range(21)])
    grid = rate_grid(0.07, 0.3)
    assert grid[0] == pytest.approx(0.07) and grid[-1] == pytest.approx(0.3)
    assert grid[1] == pytest.approx(0.1)
