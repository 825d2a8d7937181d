"""Voting over candidate schedules (docs/design.md §5): ballots, rules, rational voters.

Pure and deterministic: no I/O, no LLM. Randomness (tie-breaks, perturbed candidates)
comes only from a ``numpy.random.Generator`` passed in.

Every rule is one :class:`VoteRule` object in a registry (:func:`register_vote_rule`,
:func:`vote_rule_names`, :func:`get_vote_rule`). It carries everything the rule needs:
its ballot type, validation, counting, the sincere ballot of a rational voter, the
reply model of an LLM ballot and the ballot's JSON shape; what LLM voters are asked to
do is the template ``prompts/vote_rule_<name>.j2`` (prompt text lives in templates).
The built-in rules, with ``C`` candidates labelled ``A, B, C, …`` in candidate order:

* ``plurality``: one vote per ballot; score = votes; share = votes / valid ballots.
* ``borda``: a full ranking without duplicates; rank ``p`` (0 = best) scores
  ``C − 1 − p`` points; share = points / all points cast (``valid · C(C−1)/2``).
* ``approval``: any set of distinct candidates (empty allowed); score = approvals;
  share = approvals / valid ballots (the fraction of voters approving, so shares need
  not sum to 1).

Each ballot counts with its voter's survey weight ``w_i`` (``Population.weight``, mean
1; none given: 1 each), as every other aggregate of the economy does: scores are
``Σ w_i · points_i`` and "valid ballots" above means their total weight, so a weighted
majority wins even against a numeric one. The unweighted counts (one persona, one
ballot) are kept next to them (:attr:`Tally.counts`).

``None`` in place of a ballot is an abstention. A ballot that breaks the rule (unknown
label, duplicate, incomplete ranking) is not counted and reported as invalid. Turnout is
the weight of the valid ballots / the weight of the electorate. Ties for the top score
are broken uniformly at random (weighted scores within :data:`TIE_TOLERANCE` of the
total that shares divide by tie: float sums in another order differ in the last bit); the
tied labels are listed in candidate order and one draw ``rng.integers(len(tied))`` picks
the winner; no draw is made when there is no tie. With no valid ballot at all, or
none that supports any candidate (every approval ballot approves nothing), the
``fallback`` candidate (the incumbent, in a run) wins: nothing was decided.
"""

from __future__ import annotations

import dataclasses
import string
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from llmecon.economy.economy import Economy
from llmecon.economy.schedule import TaxSchedule, tax_of_rates
from llmecon.economy.utility import WEEKS_PER_YEAR, utility

FloatArray = NDArray[np.float64]

#: Scores within this fraction of the total shares divide by (the weight of the valid
#: ballots; for Borda all points cast) of the top score tie for it: survey-weighted
#: scores are float sums, and equal weights added in another order can differ in the
#: last bit (2.9999999999999996 against 3.0). Unweighted scores are compared exactly.
TIE_TOLERANCE = 1e-9

#: Most candidates in a round (one letter each).
MAX_CANDIDATES = len(string.ascii_uppercase)


class BallotError(ValueError):
    """A ballot that cannot be read for its rule."""


class VoteRuleError(ValueError):
    """An unknown vote rule, or a rule registered twice."""


def candidate_labels(n: int) -> tuple[str, ...]:
    """``A, B, C, …`` for ``n`` candidates (at most 26)."""
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(f"need 1 to {MAX_CANDIDATES} candidates, got {n}")
    return tuple(string.ascii_uppercase[:n])


# -- ballots ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ballot:
    """Base of every rule's ballot type (a frozen dataclass)."""


@dataclass(frozen=True)
class PluralityBallot(Ballot):
    """One vote for one candidate."""

    choice: str


@dataclass(frozen=True)
class RankingBallot(Ballot):
    """Every candidate, best first (Borda)."""

    ranking: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalBallot(Ballot):
    """The candidates the voter approves of (any number, in any order)."""

    approved: tuple[str, ...]


# -- the rule interface and registry ---------------------------------------------------


class VoteRule(ABC):
    """One vote rule: everything a round needs to ask for, read, check and count its
    ballots. Subclass it, set the class attributes and register an instance with
    :func:`register_vote_rule` (see ``docs/voting.md``).

    Attributes:
        name: the rule's name (``--vote-rule``, ``vote_round.rule``).
        help: one line for ``--help`` and the docs.
        ballot_type: the :class:`Ballot` subclass this rule counts.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    ballot_type: ClassVar[type[Ballot]]

    # validation and counting

    @abstractmethod
    def problem(self, ballot: Any, labels: Sequence[str]) -> str | None:
        """Why a ballot of :attr:`ballot_type` is invalid for these labels, or ``None``."""

    @abstractmethod
    def points(self, ballot: Any, labels: Sequence[str]) -> Iterable[tuple[str, float]]:
        """``(label, points)`` a valid ballot adds, in the order they are added."""

    def share_total(self, valid: float, n_candidates: int) -> float:
        """What scores are divided by to give shares (default: the valid ballots; with
        survey weights, their total weight)."""
        return float(valid)

    # voters

    @abstractmethod
    def sincere(self, utilities: FloatArray, labels: tuple[str, ...]) -> list[Ballot]:
        """Each voter's sincere ballot from a ``(C, N)`` utility matrix (already
        checked); exact utility ties go to the earlier label."""

    @abstractmethod
    def reply_model(self, labels: Sequence[str]) -> type[BaseModel]:
        """The pydantic model (JSON schema) of an LLM voter's reply; labels should be
        an enum so constrained decoding keeps to them."""

    # JSON

    @abstractmethod
    def to_json(self, ballot: Any) -> dict[str, Any]:
        """The ballot as the models write it (the shape of :meth:`reply_model`)."""

    @abstractmethod
    def from_json(self, data: dict[str, Any]) -> Ballot:
        """Read a ballot in the models' JSON shape; may raise ``KeyError``/``TypeError``
        (turned into :class:`BallotError`)."""


_RULES: dict[str, VoteRule] = {}


def register_vote_rule(rule: VoteRule, *, replace: bool = False) -> VoteRule:
    """Add ``rule`` to the registry under ``rule.name``; returns it."""
    if rule.name in _RULES and not replace:
        raise VoteRuleError(f"vote rule {rule.name!r} is already registered")
    _RULES[rule.name] = rule
    return rule


def unregister_vote_rule(name: str) -> None:
    """Remove a rule (for tests); unknown names are ignored."""
    _RULES.pop(name, None)


@contextmanager
def registered_vote_rule(rule: VoteRule) -> Iterator[VoteRule]:
    """Register ``rule`` for the duration of a ``with`` block (for tests)."""
    register_vote_rule(rule)
    try:
        yield rule
    finally:
        unregister_vote_rule(rule.name)


def vote_rule_names() -> dict[str, str]:
    """Registered vote rules, in registration order, and their one-line help."""
    return {name: rule.help for name, rule in _RULES.items()}


def get_vote_rule(name: str) -> VoteRule:
    """The registered rule called ``name``; raises :class:`VoteRuleError`."""
    try:
        return _RULES[name]
    except KeyError:
        known = ", ".join(_RULES)
        raise VoteRuleError(f"unknown voting rule {name!r}: use one of {known}") from None


# -- what every round does through the rule ---------------------------------------------


def ballot_problem(ballot: Ballot, rule: str, labels: Sequence[str]) -> str | None:
    """Why ``ballot`` is invalid under ``rule`` for these candidates, or ``None``."""
    r = get_vote_rule(rule)
    if not isinstance(ballot, r.ballot_type):
        return f"a {type(ballot).__name__} is not a {rule} ballot"
    return r.problem(ballot, labels)


def ballot_to_json(ballot: Ballot, rule: str | None = None) -> dict[str, Any]:
    """The ballot as the models write it (``{"vote"}``, ``{"ranking"}``, ``{"approve"}``
    for the built-in rules). Without ``rule`` the rule is found by the ballot's type."""
    if rule is not None:
        return get_vote_rule(rule).to_json(ballot)
    for r in _RULES.values():
        if type(ballot) is r.ballot_type:
            return r.to_json(ballot)
    raise BallotError(f"no registered rule counts a {type(ballot).__name__}")


def ballot_from_json(rule: str, data: dict[str, Any]) -> Ballot:
    """Read a ballot in the models' JSON shape; raises :class:`BallotError`."""
    r = get_vote_rule(rule)
    try:
        return r.from_json(data)
    except (KeyError, TypeError):
        raise BallotError(f"not a {rule} ballot: {data!r}") from None


def ballot_schema(rule: str, labels: Sequence[str]) -> type[BaseModel]:
    """The reply model of an LLM ballot under ``rule`` (see :meth:`VoteRule.reply_model`)."""
    return get_vote_rule(rule).reply_model(labels)


@dataclass(frozen=True)
class Tally:
    """The result of one count.

    Attributes:
        rule: the voting rule.
        labels: candidate labels in candidate order.
        scores: votes, Borda points or approvals per label, each ballot weighted by its
            voter's survey weight (the tally that decides).
        shares: per label, see the module docstring for each rule's normalisation.
        electorate: ballots expected (voters), valid or not.
        valid: ballots counted.
        winner: the winning label.
        tied: the labels that tied for the top score (empty when there was no tie).
        invalid: voter index -> why the ballot was not counted (abstentions excluded).
        counts: the unweighted scores (one persona, one ballot).
        valid_weight: total survey weight of the counted ballots.
        electorate_weight: total survey weight of the electorate.
        weighted: whether survey weights were given (else every weight is 1 and
            ``scores == counts``).
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
    counts: dict[str, float] = field(default_factory=dict)
    valid_weight: float = 0.0
    electorate_weight: float = 0.0
    weighted: bool = False

    @property
    def turnout(self) -> float:
        """Weight of the valid ballots / weight of the electorate (0 when empty)."""
        if self.electorate_weight > 0:
            return self.valid_weight / self.electorate_weight
        return 0.0


def tied_for_top(scores: Mapping[str, float], labels: Sequence[str], tol: float) -> tuple[str, ...]:
    """The ``labels`` whose score is within ``tol`` (absolute) of the top one, in their
    order: the labels a count's draw picks among (:data:`TIE_TOLERANCE`)."""
    top = max(scores[label] for label in labels)
    return tuple(label for label in labels if scores[label] >= top - tol)


def tally(
    rule: str,
    ballots: Sequence[Ballot | None],
    labels: Sequence[str],
    rng: np.random.Generator,
    fallback: str | None = None,
    weights: Sequence[float] | FloatArray | None = None,
    tolerance: float | None = None,
    unsupported_keeps_fallback: bool = True,
) -> Tally:
    """Count ``ballots`` (``None`` = abstention) under ``rule``, ballot ``i`` with weight
    ``weights[i]`` (survey weights, ≥ 0; ``None``: 1 each); see the module docstring.
    ``tolerance``: weighted scores within this fraction of the share total of the top
    one tie (default :data:`TIE_TOLERANCE`; 0 compares exactly, as releases before it
    did: a replay of their logs counts so). ``unsupported_keeps_fallback``: valid
    ballots that support no candidate (scores all 0) leave the ``fallback`` winning;
    off, every candidate ties and one is drawn, as releases before it did."""
    r = get_vote_rule(rule)
    labels = tuple(labels)
    if weights is None:
        w = np.ones(len(ballots))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(ballots),):
            raise ValueError(f"need one weight per ballot ({len(ballots)}), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("ballot weights must be finite and ≥ 0")
    if not labels:
        raise ValueError("a vote needs at least one candidate")
    if len(set(labels)) != len(labels):
        raise ValueError(f"candidate labels must be distinct, got {labels}")
    if fallback is not None and fallback not in labels:
        raise ValueError(f"fallback {fallback!r} is not a candidate")
    scores = dict.fromkeys(labels, 0.0)
    counts = dict.fromkeys(labels, 0.0)
    invalid: dict[int, str] = {}
    counted = np.zeros(len(ballots), dtype=bool)
    for index, ballot in enumerate(ballots):
        if ballot is None:
            continue
        problem = ballot_problem(ballot, rule, labels)
        if problem is not None:
            invalid[index] = problem
            continue
        counted[index] = True
        for label, points in r.points(ballot, labels):
            scores[label] += float(w[index]) * points
            counts[label] += points
    valid = int(counted.sum())
    # Summed like the electorate's weight, so full turnout is exactly 1.
    valid_weight = float(w[counted].sum())
    total = r.share_total(valid_weight, len(labels))
    shares = {k: (v / total if total > 0 else 0.0) for k, v in scores.items()}
    found = Tally(
        rule,
        labels,
        scores,
        shares,
        len(ballots),
        valid,
        fallback or labels[0],
        counts=counts,
        invalid=invalid,
        valid_weight=valid_weight,
        electorate_weight=float(w.sum()),
        weighted=weights is not None,
    )
    # No valid ballot, only weightless ones, or none supporting anyone: nothing was decided.
    unsupported = unsupported_keeps_fallback and max(scores.values()) <= 0.0
    if (valid == 0 or valid_weight == 0 or unsupported) and fallback is not None:
        return found
    # Weighted scores are float sums in ballot order: equal weights on two sides can
    # add up one ulp apart, which is a tie, not a win (TIE_TOLERANCE).
    if tolerance is None:
        tolerance = TIE_TOLERANCE
    tied = tied_for_top(scores, labels, tolerance * total if weights is not None else 0.0)
    winner = tied[int(rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
    return dataclasses.replace(found, winner=winner, tied=tied if len(tied) > 1 else ())


def rational_ballots(utilities: FloatArray, labels: Sequence[str], rule: str) -> list[Ballot]:
    """Each voter's sincere ballot under ``rule`` from a ``(C, N)`` utility matrix (see
    each rule's :meth:`VoteRule.sincere`; exact utility ties go to the earlier label)."""
    r = get_vote_rule(rule)
    u = np.asarray(utilities, dtype=float)
    labels = tuple(labels)
    if u.ndim != 2 or u.shape[0] != len(labels):
        raise ValueError(f"need a ({len(labels)}, N) utility matrix, got shape {u.shape}")
    return r.sincere(u, labels)


# -- the built-in rules ------------------------------------------------------------------


def listed_problem(names: Sequence[str], labels: Sequence[str]) -> str | None:
    """The problem of a list of labels: an unknown label or a label listed twice."""
    known = set(labels)
    unknown = [x for x in names if x not in known]
    if unknown:
        return f"unknown candidate {unknown[0]!r}"
    if len(set(names)) != len(names):
        return "a candidate is listed twice"
    return None


def _no_duplicates(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each candidate may appear only once")
    return values


def label_reply_model(model_name: str, key: str, labels: Sequence[str]) -> type[BaseModel]:
    """``{key: one label}`` (labels as an enum)."""
    label = Literal[tuple(labels)]  # type: ignore[valid-type]
    fields: dict[str, Any] = {key: (label, ...)}
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


def label_list_reply_model(
    model_name: str, key: str, labels: Sequence[str], *, min_length: int = 0
) -> type[BaseModel]:
    """``{key: [distinct labels]}`` with ``min_length`` to ``len(labels)`` items."""
    label = Literal[tuple(labels)]  # type: ignore[valid-type]
    limits: dict[str, Any] = {"max_length": len(labels), "json_schema_extra": {"uniqueItems": True}}
    if min_length:
        limits = {"min_length": min_length, **limits}
    fields: dict[str, Any] = {key: (list[label], Field(**limits))}  # type: ignore[valid-type]
    return create_model(
        model_name,
        __config__=ConfigDict(extra="forbid"),
        __validators__={"_unique": field_validator(key)(_no_duplicates)},
        **fields,
    )


class Plurality(VoteRule):
    name = "plurality"
    help = "one vote per voter; the most votes wins"
    ballot_type = PluralityBallot

    def problem(self, ballot: PluralityBallot, labels: Sequence[str]) -> str | None:
        return None if ballot.choice in labels else f"unknown candidate {ballot.choice!r}"

    def points(self, ballot: PluralityBallot, labels: Sequence[str]) -> list[tuple[str, float]]:
        return [(ballot.choice, 1.0)]

    def sincere(self, utilities: FloatArray, labels: tuple[str, ...]) -> list[Ballot]:
        best = np.argmax(utilities, axis=0)
        return [PluralityBallot(labels[int(c)]) for c in best]

    def reply_model(self, labels: Sequence[str]) -> type[BaseModel]:
        return label_reply_model("PluralityBallot", "vote", labels)

    def to_json(self, ballot: PluralityBallot) -> dict[str, Any]:
        return {"vote": ballot.choice}

    def from_json(self, data: dict[str, Any]) -> Ballot:
        return PluralityBallot(str(data["vote"]))


class Borda(VoteRule):
    name = "borda"
    help = "a full ranking; rank p of C candidates scores C-1-p points"
    ballot_type = RankingBallot

    def problem(self, ballot: RankingBallot, labels: Sequence[str]) -> str | None:
        problem = listed_problem(ballot.ranking, labels)
        if problem is None and len(ballot.ranking) != len(labels):
            n = len(ballot.ranking)
            return f"the ranking must list all {len(labels)} candidates, got {n}"
        return problem

    def points(self, ballot: RankingBallot, labels: Sequence[str]) -> list[tuple[str, float]]:
        n = len(labels)
        return [(label, float(n - 1 - p)) for p, label in enumerate(ballot.ranking)]

    def share_total(self, valid: float, n_candidates: int) -> float:
        return valid * n_candidates * (n_candidates - 1) / 2

    def sincere(self, utilities: FloatArray, labels: tuple[str, ...]) -> list[Ballot]:
        order = np.argsort(-utilities, axis=0, kind="stable")
        return [
            RankingBallot(tuple(labels[int(c)] for c in order[:, i]))
            for i in range(utilities.shape[1])
        ]

    def reply_model(self, labels: Sequence[str]) -> type[BaseModel]:
        return label_list_reply_model("BordaBallot", "ranking", labels, min_length=len(labels))

    def to_json(self, ballot: RankingBallot) -> dict[str, Any]:
        return {"ranking": list(ballot.ranking)}

    def from_json(self, data: dict[str, Any]) -> Ballot:
        return RankingBallot(tuple(str(x) for x in data["ranking"]))


class Approval(VoteRule):
    name = "approval"
    help = "approve any set of candidates; the most approvals wins"
    ballot_type = ApprovalBallot

    def problem(self, ballot: ApprovalBallot, labels: Sequence[str]) -> str | None:
        return listed_problem(ballot.approved, labels)

    def points(self, ballot: ApprovalBallot, labels: Sequence[str]) -> list[tuple[str, float]]:
        return [(label, 1.0) for label in ballot.approved]

    def sincere(self, utilities: FloatArray, labels: tuple[str, ...]) -> list[Ballot]:
        """The candidates at least as good as the voter's mean over candidates."""
        u = utilities
        approve = u >= u.mean(axis=0, keepdims=True) - 1e-9 * np.abs(u).max(initial=1.0)
        return [
            ApprovalBallot(tuple(labels[c] for c in range(len(labels)) if approve[c, i]))
            for i in range(u.shape[1])
        ]

    def reply_model(self, labels: Sequence[str]) -> type[BaseModel]:
        return label_list_reply_model("ApprovalBallot", "approve", labels)

    def to_json(self, ballot: ApprovalBallot) -> dict[str, Any]:
        return {"approve": list(ballot.approved)}

    def from_json(self, data: dict[str, Any]) -> Ballot:
        return ApprovalBallot(tuple(str(x) for x in data["approve"]))


for _rule in (Plurality(), Borda(), Approval()):
    register_vote_rule(_rule)


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
    sw = economy.survey_weight  # the rebate is revenue per person
    per_person = tax.mean(axis=1) if sw is None else (tax @ sw) / sw.sum()
    rebate = cfg.rebate_share * per_person[:, None]
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
    start_rates: Sequence[float] | FloatArray,
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
