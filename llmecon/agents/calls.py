"""Who is calling the model: a context variable the run log reads for each call.

Agents wrap each ``model.generate`` in :func:`call_context`; the run layer's ``on_call``
handler reads :func:`current_call` to tag the logged call with its role, agent, year and
templates. Each asyncio task has its own copy of the context, so concurrent calls of
different workers never mix.

The context also carries the **structured request** behind the prompt
(:attr:`CallContext.request`: a :class:`WorkerAsk`, :class:`PlannerAsk`,
:class:`CandidatesAsk`, :class:`BallotAsk`, :class:`PlatformAsk` or
:class:`SatisfactionAsk`). It is never logged
and no real model sees it; scripted test models (``scripted/reference``,
:mod:`llmecon.agents.scripted`) read it instead of parsing the rendered prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from llmecon.agents.planner_prompts import PlannerPromptSettings
    from llmecon.economy import Economy, TaxSchedule
    from llmecon.planners import PlannerContext, YearRecord

Role = Literal["planner", "worker", "voter", "proposer"]


@dataclass(frozen=True)
class WorkerAsk:
    """Worker ``index`` chooses weekly hours under ``schedule`` (it was shown
    ``last_rebate_usd`` as last year's rebate)."""

    economy: Economy
    index: int
    schedule: TaxSchedule
    last_rebate_usd: float


@dataclass(frozen=True)
class PlannerAsk:
    """The planner proposes next year's rates from ``history`` (the prompt shows the
    years :func:`~llmecon.agents.planner_prompts.shown_years` selects with ``settings``)."""

    ctx: PlannerContext
    history: Sequence[YearRecord]
    settings: PlannerPromptSettings


@dataclass(frozen=True)
class CandidatesAsk:
    """The planner proposes ``k`` distinct schedules for a ballot."""

    ctx: PlannerContext
    history: Sequence[YearRecord]
    settings: PlannerPromptSettings
    k: int


@dataclass(frozen=True)
class BallotAsk:
    """Voter ``index`` casts a ``rule`` ballot over ``candidates`` (label, schedule)."""

    economy: Economy
    index: int
    rule: str
    candidates: Sequence[tuple[str, TaxSchedule]]


@dataclass(frozen=True)
class PlatformAsk:
    """Persona ``index`` proposes a platform; ``schedule`` is the one in force."""

    ctx: PlannerContext
    index: int
    schedule: TaxSchedule


@dataclass(frozen=True)
class SatisfactionAsk:
    """Worker ``index`` says whether it is satisfied with ``schedule``, having worked
    ``weekly_hours`` this step (``rebate_usd``: the rebate those hours fund)."""

    economy: Economy
    index: int
    schedule: TaxSchedule
    weekly_hours: float
    rebate_usd: float


AgentAsk = WorkerAsk | PlannerAsk | CandidatesAsk | BallotAsk | PlatformAsk | SatisfactionAsk


@dataclass(frozen=True)
class CallContext:
    role: Role
    year: int
    agent: str | None = None
    step: int = 0
    templates: dict[str, str] = field(default_factory=dict)
    #: the structured request behind the prompt (not logged; see the module docstring)
    request: AgentAsk | None = field(default=None, compare=False, repr=False)


_CURRENT: ContextVar[CallContext | None] = ContextVar("llmecon_call_context", default=None)


@contextmanager
def call_context(context: CallContext) -> Iterator[None]:
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_call() -> CallContext | None:
    return _CURRENT.get()
