"""Voting over candidate schedules (DESIGN.md §5): ballots, rules, rational voters.

Pure and deterministic: no I/O, no LLM. Randomness (tie-breaks, perturbed candidates)
comes only from a ``numpy.random.Generator`` passed in.

Rules, with ``C`` candidates labelled ``A, B, C, …`` in candidate order:

* ``plurality``: one vote per ballot; score = votes; share = votes / valid ballots.
* ``borda``: a full ranking without duplicates; rank ``p`` (0 = best) scores
  ``C − 1 − p`` points; share = points / all points cast (``valid · C(C−1)/2``).
* ``approval``: any set of distinct candidates (empty allowed); score = approvals;
  share = approvals / valid ballots (the fraction of voters approving, so shares need
  not sum to 1).

``None`` in place of a ballot is an abstention. A ballot that breaks the rule (unknown
label, duplicate, incomplete ranking) is not counted and reported as invalid. Turnout is
valid ballots / electorate. Ties for the top score are broken uniformly at random: the
tied labels are listed in candidate order and one draw ``rng.integers(len(tied))`` picks
the winner; no draw is made when there is no tie. With no valid ballot at all the
``fallback`` candidate (the incumbent, in a run) wins.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from llmecon.economy.economy import Economy
from llmecon.economy.schedule import TaxSchedule, tax_of_rates
from llmecon.economy.utility import WEEKS_PER_YEAR, utility

FloatArray = NDArray[np.float64]

VoteRule = Literal["plurality", "borda", "approval"]
VOTE_RULES: tuple[VoteRule, ...] = ("plurality", "borda", "approval")
#: Most candidates in a round (one letter each).
MAX_CANDIDATES = len(string.ascii_uppercase)


class BallotError(ValueError):
    """A ballot that cannot be read for its rule."""


def candidate_labels(n: int) -> tuple[str, ...]:
    """``A, B, C, …`` for ``n`` candidates (at most 26)."""
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(f"need 1 to {MAX_CANDIDATES} candidates, got {n}")
    return tuple(string.ascii_uppercase[:n])


@dataclass(frozen=True)
class PluralityBallot:
    """One vote for one candidate."""

    choice: str


@dataclass(frozen=True)
class RankingBallot:
    """Every candidate, best first (Borda)."""

    ranking: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalBallot:
    """The candidates the voter approves of (any number, in any order)."""

    approved: tuple[str, ...]


Ballot = PluralityBallot | RankingBallot | ApprovalBallot

_BALLOT_TYPES: dict[str, type[Ballot]] = {
    "plurality": PluralityBallot,
    "borda": RankingBallot,
    "approval": ApprovalBallot,
}


def ballot_problem(ballot: Ballot, rule: str, labels: Sequence[str]) -> str | None:
    """Why ``ballot`` is invalid under ``rule`` for these candidates, or ``None``."""
    expected = _BALLOT_TYPES.get(rule)
    if expected is None:
        raise ValueError(f"unknown voting rule {rule!r}: use one of {', '.join(VOTE_RULES)}")
    if not isinstance(ballot, expected):
        return f"a {type(ballot).__name__} is not a {rule} ballot"
    known = set(labels)
    if isinstance(ballot, PluralityBallot):
        return None if ballot.choice in known else f"unknown candidate {ballot.choice!r}"
    names = ballot.ranking if isinstance(ballot, RankingBallot) else ballot.approved
    unknown = [x for x in names if x not in known]
    if unknown:
        return f"unknown candidate {unknown[0]!r}"
    if len(set(names)) != len(names):
        return "a candidate is listed twice"
    if isinstance(ballot, RankingBallot) and len(names) != len(labels):
        return f"the ranking must list all {len(labels)} candidates, got {len(names)}"
    return None


def ballot_to_json(ballot: Ballot) -> dict[str, Any]:
    """The ballot as the models write it: ``{"vote"}``, ``{"ranking"}`` or ``{"approve"}``."""
    if isinstance(ballot, PluralityBallot):
        return {"vote": ballot.choice}
    if isinstance(ballot, RankingBallot):
        return {"ranking": list(ballot.ranking)}
    return {"approve": list(ballot.approved)}


def ballot_from_json(rule: str, data: dict[str, Any]) -> Ballot:
    """Read a ballot in the models' JSON shape; raises :class:`BallotError`."""
    try:
        if rule == "plurality":
            return PluralityBallot(str(data["vote"]))
        if rule == "borda":
            return RankingBallot(tuple(str(x) for x in data["ranking"]))
        if rule == "approval":
            return ApprovalBallot(tuple(str(x) for x in data["approve"]))
    except (KeyError, TypeError):
        raise BallotError(f"not a {rule} ballot: {data!r}") from None
    raise BallotError(f"unknown voting rule {rule!r}")


@dataclass(frozen=True)
class Tally:
    """The result of one count.

    Attributes:
        rule: the voting rule.
        labels: candidate labels in candidate order.
        scores: votes, Borda points or approvals per label.
        shares: per label, see the module docstring for each rule's normalisation.
        electorate: ballots expected (voters), valid or not.
        valid: ballots counted.
        winner: the winning label.
        tied: the labels that tied for the top score (empty when there was no tie).
        invalid: voter index -> why the ballot was not counted (abstentions excluded).
    """

    rule: str
    labels: tuple[str, ...]
    scores: dict[str, float]
    shares: dict[str, float]
    electorate: int
    valid: int
    winner: str
    tied: tuple[str, ...] = ()
    invalid: dict[int, str] = field(default_factory=dict)

    @property
    def turnout(self) -> float:
        """Valid ballots / electorate (0 for an empty electorate)."""
        return self.valid / self.electorate if self.electorate else 0.0


def tally(
    rule: str,
    ballots: Sequence[Ballot | None],
    labels: Sequence[str],
    rng: np.random.Generator,
    fallback: str | None = None,
) -> Tally:
    """Count ``ballots`` (``None`` = abstention) under ``rule``; see the module docstring."""
    labels = tuple(labels)
    if not labels:
        raise ValueError("a vote needs at least one candidate")
    if len(set(labels)) != len(labels):
        raise ValueError(f"candidate labels must be distinct, got {labels}")
    if fallback is not None and fallback not in labels:
        raise ValueError(f"fallback {fallback!r} is not a candidate")
    n = len(labels)
    scores = dict.fromkeys(labels, 0.0)
    invalid: dict[int, str] = {}
    valid = 0
    for index, ballot in enumerate(ballots):
        if ballot is None:
            continue
        problem = ballot_problem(ballot, rule, labels)
        if problem is not None:
            invalid[index] = problem
            continue
        valid += 1
        if isinstance(ballot, PluralityBallot):
            scores[ballot.choice] += 1.0
        elif isinstance(ballot, RankingBallot):
            for position, label in enumerate(ballot.ranking):
                scores[label] += float(n - 1 - position)
        else:
            for label in ballot.approved:
                scores[label] += 1.0
    total = valid * n * (n - 1) / 2 if rule == "borda" else float(valid)
    shares = {k: (v / total if total > 0 else 0.0) for k, v in scores.items()}
    if valid == 0 and fallback is not None:
        return Tally(rule, labels, scores, shares, len(ballots), 0, fallback, (), invalid)
    top = max(scores.values())
    tied = tuple(label for label in labels if scores[label] == top)
    winner = tied[int(rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
    return Tally(
        rule,
        labels,
        scores,
        shares,
        len(ballots),
        valid,
        winner,
        tied if len(tied) > 1 else (),
        invalid,
    )


# -- rational voters -------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateProjection:
    """Every worker's outcome under each candidate at the rational best response.

    Attributes:
        utilities: ``(C, N)`` utility of worker ``i`` under candidate ``c``, with the
            rebate that candidate raises when everyone best-responds.
        swf: ``(C,)`` the economy's objective under each candidate.
    """

    utilities: FloatArray
    swf: FloatArray


def project_candidates(economy: Economy, schedules: Sequence[TaxSchedule]) -> CandidateProjection:
    """Utilities and SWF of each schedule with every worker at the best response.

    The projection is :meth:`Economy.evaluate`: hours are each worker's best response,
    and the rebate is the revenue raised at everyone's best response (under CRRA, the
    within-year equilibrium). A voter thus judges a candidate by the life it would lead
    under it, including the rebate the candidate would pay.
    """
    utilities, swf = [], []
    for schedule in schedules:
        outcome, metrics = economy.evaluate(schedule)
        utilities.append(outcome.utility)
        swf.append(metrics.swf)
    return CandidateProjection(np.asarray(utilities, dtype=float), np.asarray(swf, dtype=float))


def rational_ballots(utilities: FloatArray, labels: Sequence[str], rule: str) -> list[Ballot]:
    """Each voter's sincere ballot from a ``(C, N)`` utility matrix.

    * plurality: the candidate with the highest utility;
    * borda: candidates by decreasing utility;
    * approval: the candidates at least as good as the voter's mean over candidates.

    Exact utility ties go to the earlier label (a stable sort).
    """
    u = np.asarray(utilities, dtype=float)
    labels = tuple(labels)
    if u.ndim != 2 or u.shape[0] != len(labels):
        raise ValueError(f"need a ({len(labels)}, N) utility matrix, got shape {u.shape}")
    if rule == "plurality":
        best = np.argmax(u, axis=0)
        return [PluralityBallot(labels[int(c)]) for c in best]
    if rule == "borda":
        order = np.argsort(-u, axis=0, kind="stable")
        return [
            RankingBallot(tuple(labels[int(c)] for c in order[:, i])) for i in range(u.shape[1])
        ]
    if rule == "approval":
        approve = u >= u.mean(axis=0, keepdims=True) - 1e-9 * np.abs(u).max(initial=1.0)
        return [
            ApprovalBallot(tuple(labels[c] for c in range(len(labels)) if approve[c, i]))
            for i in range(u.shape[1])
        ]
    raise ValueError(f"unknown voting rule {rule!r}: use one of {', '.join(VOTE_RULES)}")


# -- candidates ------------------------------------------------------------------------


def utilities_of_rates(economy: Economy, edges: Sequence[float], rates: FloatArray) -> FloatArray:
    """``(S, N)`` utility of every worker under a batch of rate vectors ``(S, B)``.

    Each schedule at its within-year equilibrium, as :meth:`Economy.welfare_of_rates`
    and :meth:`Economy.evaluate` settle it: best-response hours and the rebate raised
    at everyone's best response. Used to search a persona's favourite schedule.
    """
    e = np.asarray(edges, dtype=float)
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    s = economy.population.hourly_wage_usd
    cfg = economy.utility_config
    hours = economy.equilibrium_of_rates(e, r).weekly_hours
    z = WEEKS_PER_YEAR * s[None, :] * hours
    tax = tax_of_rates(e, r, z)
    rebate = cfg.rebate_share * tax.mean(axis=1, keepdims=True)
    return np.asarray(utility(z - tax + rebate, hours, economy.psi[None, :], cfg), dtype=float)


def rate_grid(min_rate: float, max_rate: float, step: float = 0.05) -> FloatArray:
    """Rates from ``min_rate`` to ``max_rate`` in ``step`` (both bounds included)."""
    inner = np.arange(np.ceil(min_rate / step) * step, max_rate + 1e-12, step)
    grid = np.unique(np.round(np.concatenate([[min_rate], inner, [max_rate]]), 10))
    return grid[(grid >= min_rate - 1e-12) & (grid <= max_rate + 1e-12)]


def favourite_rates(
    economy: Economy,
    index: int,
    edges: Sequence[float],
    start_rates: Sequence[float],
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    *,
    step: float = 0.05,
    sweeps: int = 2,
) -> FloatArray:
    """A self-interested platform: worker ``index``'s best schedule on a coarse grid.

    Coordinate ascent from ``start_rates`` (the incumbent): bracket by bracket, each
    rate is set to the grid value (``step`` apart within the bounds) that maximises the
    worker's own utility at everyone's best response with the projected rebate; the
    sweep over brackets is repeated ``sweeps`` times. On a utility tie the current rate
    is kept (a bracket that matters to nobody stays as it is), else the lower rate wins.
    """
    grid = rate_grid(min_rate, max_rate, step)
    rates = np.clip(np.asarray(start_rates, dtype=float), min_rate, max_rate)
    for _ in range(sweeps):
        for b in range(rates.size):
            values = np.concatenate([[rates[b]], grid])
            batch = np.repeat(rates[None, :], values.size, axis=0)
            batch[:, b] = values
            own = utilities_of_rates(economy, edges, batch)[:, index]
            rates[b] = values[int(np.argmax(own))]
    return rates


def perturbed_rates(
    base_rates: Sequence[float] | FloatArray,
    count: int,
    rng: np.random.Generator,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    *,
    max_step_pp: int = 5,
    avoid: Sequence[Sequence[float] | FloatArray] = (),
    max_tries: int = 100,
) -> list[FloatArray]:
    """``count`` alternatives near ``base_rates``: each rate moves by a uniform whole
    number of percentage points in ``[−max_step_pp, max_step_pp]`` (one
    ``rng.integers`` draw per alternative), clipped to the bounds and rounded to whole
    percents. Draws equal to ``base_rates``, to ``avoid`` or to an earlier alternative
    are redrawn (at most ``max_tries`` draws in all, so fewer may come back)."""
    base = np.asarray(base_rates, dtype=float)
    seen = {_key(base), *(_key(np.asarray(a, dtype=float)) for a in avoid)}
    out: list[FloatArray] = []
    for _ in range(max_tries):
        if len(out) >= count:
            break
        step = rng.integers(-max_step_pp, max_step_pp + 1, size=base.size) / 100.0
        rates = np.round(np.clip(base + step, min_rate, max_rate) * 100.0) / 100.0
        rates = np.clip(rates, min_rate, max_rate)
        key = _key(rates)
        if key not in seen:
            seen.add(key)
            out.append(rates)
    return out


def _key(rates: FloatArray) -> tuple[float, ...]:
    return tuple(np.round(rates, 9).tolist())
