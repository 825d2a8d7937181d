"""Voting over candidate schedules (docs/design.md §5, ``docs/voting.md``).

* :mod:`llmecon.voting.rules` — pure: ballots, the vote-rule registry
  (:func:`register_vote_rule`, :func:`vote_rule_names`, :func:`get_vote_rule`), the
  count, rational ballots, candidate projections and perturbations.
* :mod:`llmecon.voting.voters` — LLM voters and persona proposers (prompts, calls).
* :mod:`llmecon.voting.rounds` — the rounds of a run (:class:`VotingRounds`,
  :func:`build_voting`, :func:`vote_summaries`, :func:`vote_leaders`).

The rules are imported eagerly (the run config lists :func:`vote_rule_names`); voters
and rounds on first use, since they import the run config themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmecon.voting.rules import (
    MAX_CANDIDATES,
    TIE_TOLERANCE,
    ApprovalBallot,
    Ballot,
    BallotError,
    CandidateProjection,
    PluralityBallot,
    RankingBallot,
    Tally,
    VoteRule,
    VoteRuleError,
    ballot_from_json,
    ballot_problem,
    ballot_schema,
    ballot_to_json,
    candidate_labels,
    favourite_rates,
    get_vote_rule,
    perturbed_rates,
    project_candidates,
    rate_grid,
    rational_ballots,
    register_vote_rule,
    registered_vote_rule,
    tally,
    unregister_vote_rule,
    utilities_of_rates,
    vote_rule_names,
)

if TYPE_CHECKING:
    from llmecon.voting.rounds import (
        CandidateProposer,
        VoteDecision,
        VotingRounds,
        build_voting,
        default_candidates,
        vote_leaders,
        vote_summaries,
        vote_summary,
    )
    from llmecon.voting.voters import BallotCandidate, LLMVoters, persona_platform

_LAZY = {
    "BallotCandidate": "voters",
    "LLMVoters": "voters",
    "persona_platform": "voters",
    "CandidateProposer": "rounds",
    "VoteDecision": "rounds",
    "VotingRounds": "rounds",
    "build_voting": "rounds",
    "default_candidates": "rounds",
    "vote_leaders": "rounds",
    "vote_summaries": "rounds",
    "vote_summary": "rounds",
}

__all__ = [
    "MAX_CANDIDATES",
    "TIE_TOLERANCE",
    "ApprovalBallot",
    "Ballot",
    "BallotCandidate",
    "BallotError",
    "CandidateProjection",
    "CandidateProposer",
    "LLMVoters",
    "PluralityBallot",
    "RankingBallot",
    "Tally",
    "VoteDecision",
    "VoteRule",
    "VoteRuleError",
    "VotingRounds",
    "ballot_from_json",
    "ballot_problem",
    "ballot_schema",
    "ballot_to_json",
    "build_voting",
    "candidate_labels",
    "default_candidates",
    "favourite_rates",
    "get_vote_rule",
    "persona_platform",
    "perturbed_rates",
    "project_candidates",
    "rate_grid",
    "rational_ballots",
    "register_vote_rule",
    "registered_vote_rule",
    "tally",
    "unregister_vote_rule",
    "utilities_of_rates",
    "vote_leaders",
    "vote_rule_names",
    "vote_summaries",
    "vote_summary",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmecon.voting' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"llmecon.voting.{module}"), name)
