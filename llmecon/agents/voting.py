"""LLM voters and proposers for voting rounds (DESIGN.md §5).

* :class:`LLMVoters`: each persona sees every candidate with its own projected tax,
  rebate and net income (at its current hours) and answers a ballot from
  ``prompts/vote.j2``. The schema lists the candidate labels as an enum and, for Borda,
  demands every label exactly once; an invalid reply is re-asked by the model layer
  (bounded) and then becomes a recorded abstention.
* :func:`planner_candidates`: the LLM planner, asked (``prompts/planner_candidates.j2``
  after its usual context and demonstrations) for K distinct proposals, best first.
* :func:`persona_platform`: a persona proposes a schedule (``prompts/platform.j2``).

Calls are tagged ``voter`` / ``proposer`` for the run log (and replay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from llmecon.agents.calls import (
    BallotAsk,
    CallContext,
    CandidatesAsk,
    PlatformAsk,
    call_context,
)
from llmecon.agents.llm_planner import LLMPlanner, planner_schema
from llmecon.agents.prompting import (
    PlannerPromptSettings,
    Prompt,
    bracket_rows,
    count_words,
    pct_list,
    planner_frame,
)
from llmecon.economy import Economy, TaxSchedule
from llmecon.economy.voting import Ballot, ballot_from_json
from llmecon.models import ChatMessage, GenerateConfig, Model, ModelError
from llmecon.planners import PlannerContext, YearRecord
from llmecon.prompts import PromptLibrary


def _no_duplicates(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each candidate may appear only once")
    return values


def ballot_schema(rule: str, labels: Sequence[str]) -> type[BaseModel]:
    """The reply schema of a ballot; labels are an enum so constrained decoding keeps
    to them. plurality ``{"vote": "A"}``, borda ``{"ranking": [all labels]}`` (no
    duplicates), approval ``{"approve": [labels]}`` (no duplicates, may be empty)."""
    label = Literal[tuple(labels)]  # type: ignore[valid-type]
    n = len(labels)
    if rule == "plurality":
        fields: dict[str, Any] = {"vote": (label, ...)}
        validators: dict[str, Any] = {}
    elif rule == "borda":
        fields = {
            "ranking": (
                list[label],  # type: ignore[valid-type]
                Field(min_length=n, max_length=n, json_schema_extra={"uniqueItems": True}),
            )
        }
        validators = {"_unique": field_validator("ranking")(_no_duplicates)}
    elif rule == "approval":
        fields = {
            "approve": (
                list[label],  # type: ignore[valid-type]
                Field(max_length=n, json_schema_extra={"uniqueItems": True}),
            )
        }
        validators = {"_unique": field_validator("approve")(_no_duplicates)}
    else:
        raise ValueError(f"unknown voting rule {rule!r}")
    return create_model(
        f"{rule.capitalize()}Ballot",
        __config__=ConfigDict(extra="forbid"),
        __validators__=validators,
        **fields,
    )


def candidates_schema(k: int, n_brackets: int, min_pct: int, max_pct: int) -> type[BaseModel]:
    """``{"candidates": [k distinct lists of n whole percents in [min, max]]}``."""
    rate = Annotated[int, Field(ge=min_pct, le=max_pct)]
    rates = Annotated[list[rate], Field(min_length=n_brackets, max_length=n_brackets)]

    def distinct(values: list[list[int]]) -> list[list[int]]:
        if len({tuple(v) for v in values}) != len(values):
            raise ValueError("the proposals must all differ")
        return values

    return create_model(
        "PlannerCandidates",
        __config__=ConfigDict(extra="forbid"),
        __validators__={"_distinct": field_validator("candidates")(distinct)},
        candidates=(list[rates], Field(min_length=k, max_length=k)),
    )


@dataclass(frozen=True)
class BallotCandidate:
    """A candidate as voters see it."""

    label: str
    schedule: TaxSchedule
    origin: str


def edge_rows(schedule: TaxSchedule) -> list[dict[str, Any]]:
    return [{"range": row["range"]} for row in bracket_rows(schedule)]


def vote_prompt(
    library: PromptLibrary,
    *,
    rule: str,
    year: int,
    candidates: Sequence[BallotCandidate],
    persona_text: str,
    weekly_hours: float,
    income_usd: float,
    projections: Sequence[dict[str, float | str]],
) -> Prompt:
    """The one user message of a voter's ballot (see ``prompts/vote.j2``)."""
    labels = [c.label for c in candidates]
    rendered = library.render(
        "vote.j2",
        year=year,
        rule=rule,
        edges=edge_rows(candidates[0].schedule),
        candidates=[
            {"label": c.label, "rates": pct_list(c.schedule.rates), "origin": c.origin}
            for c in candidates
        ],
        persona_text=persona_text.strip(),
        hours=weekly_hours,
        income=income_usd,
        projections=list(projections),
        labels=labels,
    )
    return Prompt([ChatMessage(role="user", content=rendered.text)], {"vote.j2": rendered.sha256})


def current_projections(
    economy: Economy, candidates: Sequence[BallotCandidate], income_usd: np.ndarray
) -> list[list[dict[str, float | str]]]:
    """Per voter, per candidate: tax, rebate and net income at current incomes.

    Nobody changes hours in this projection: the rebate is the revenue the candidate
    would raise from everyone's current incomes, shared as the run shares it.
    """
    share = economy.utility_config.rebate_share
    per_candidate = []
    for c in candidates:
        tax = c.schedule.tax(income_usd)
        rebate = share * float(tax.mean())
        per_candidate.append((c.label, tax, rebate))
    return [
        [
            {
                "label": label,
                "tax": float(tax[i]),
                "rebate": rebate,
                "net": float(income_usd[i] - tax[i] + rebate),
            }
            for label, tax, rebate in per_candidate
        ]
        for i in range(len(income_usd))
    ]


class LLMVoters:
    """Persona voters driven by one model (the workers' model)."""

    def __init__(
        self,
        model: Model,
        economy: Economy,
        persona_texts: Sequence[str],
        library: PromptLibrary,
        config: GenerateConfig | None = None,
    ) -> None:
        if len(persona_texts) != economy.size:
            raise ValueError(f"{len(persona_texts)} persona texts for {economy.size} voters")
        self.model = model
        self.economy = economy
        self.persona_texts = list(persona_texts)
        self.library = library
        self.config = config or GenerateConfig(max_tokens=60)
        self.ids = economy.population.ids

    async def vote(
        self,
        *,
        year: int,
        rule: str,
        candidates: Sequence[BallotCandidate],
        weekly_hours: np.ndarray,
        income_usd: np.ndarray,
    ) -> list[tuple[Ballot | None, str | None]]:
        """Every voter's ballot, or ``(None, reason)`` for a recorded abstention."""
        schema = ballot_schema(rule, [c.label for c in candidates])
        projections = current_projections(self.economy, candidates, income_usd)
        ballot = [(c.label, c.schedule) for c in candidates]

        async def one(i: int) -> tuple[Ballot | None, str | None]:
            prompt = vote_prompt(
                self.library,
                rule=rule,
                year=year,
                candidates=candidates,
                persona_text=self.persona_texts[i],
                weekly_hours=float(weekly_hours[i]),
                income_usd=float(income_usd[i]),
                projections=projections[i],
            )
            ctx = CallContext(
                role="voter",
                year=year,
                agent=self.ids[i],
                templates=prompt.templates,
                request=BallotAsk(self.economy, i, rule, ballot),
            )
            with call_context(ctx):
                try:
                    out = await self.model.generate(prompt.messages, schema, self.config)
                except ModelError as exc:
                    return None, f"{type(exc).__name__}: {exc}"
            return ballot_from_json(rule, out.parsed.model_dump()), None

        return list(await asyncio.gather(*(one(i) for i in range(self.economy.size))))


def planner_candidates_prompt(
    library: PromptLibrary,
    ctx: PlannerContext,
    settings: PlannerPromptSettings,
    history: Sequence[YearRecord],
    k: int,
    year: int,
) -> Prompt:
    """The planner's usual context and demonstrations, then ``planner_candidates.j2``
    (with no history, the status quo is the incumbent)."""
    used: dict[str, str] = {}
    frame = planner_frame(library, ctx, history, settings, used)
    query = library.render(
        "planner_candidates.j2",
        year=year,
        k=k,
        k_words=count_words(k),
        current=frame.current,
        lowest=frame.lowest,
        highest=frame.highest,
        n_brackets=ctx.n_brackets,
        best_year=frame.best_year,
        best_swf=frame.best_swf,
    )
    used["planner_candidates.j2"] = query.sha256
    return Prompt(
        [
            ChatMessage(role="system", content=frame.system),
            ChatMessage(role="user", content=f"{frame.demonstrations}\n{query.text}"),
        ],
        used,
    )


async def planner_candidates(
    planner: LLMPlanner, library: PromptLibrary, history: Sequence[YearRecord], k: int, year: int
) -> list[np.ndarray]:
    """K proposals (fractions, best first) from the LLM planner, each clipped to the
    trust region around the incumbent and the rate bounds like its ordinary proposals.
    Raises :class:`~llmecon.models.ModelError` when the call fails."""
    ctx = planner.ctx
    schema = candidates_schema(
        k, ctx.n_brackets, round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    )
    prompt = planner_candidates_prompt(library, ctx, planner.settings, history, k, year)
    per_list = 4 * ctx.n_brackets + 4
    config = planner.config.model_copy(update={"max_tokens": 24 + k * per_list})
    context = CallContext(
        role="proposer",
        year=year,
        templates=prompt.templates,
        request=CandidatesAsk(ctx, history, planner.settings, k),
    )
    with call_context(context):
        out = await planner.model.generate(prompt.messages, schema, config)
    current = history[-1].schedule.rates_array
    return [
        planner.constrain(np.asarray(rates, dtype=float) / 100.0, current)
        for rates in out.parsed.candidates
    ]


def platform_prompt(
    library: PromptLibrary,
    *,
    year: int,
    schedule: TaxSchedule,
    persona_text: str,
    weekly_hours: float,
    income_usd: float,
    min_pct: int,
    max_pct: int,
) -> Prompt:
    rendered = library.render(
        "platform.j2",
        year=year,
        brackets=bracket_rows(schedule),
        persona_text=persona_text.strip(),
        hours=weekly_hours,
        income=income_usd,
        tax=float(schedule.tax(np.array([income_usd]))[0]),
        min_pct=min_pct,
        max_pct=max_pct,
        n_brackets=schedule.n_brackets,
    )
    return Prompt(
        [ChatMessage(role="user", content=rendered.text)], {"platform.j2": rendered.sha256}
    )


async def persona_platform(
    model: Model,
    library: PromptLibrary,
    ctx: PlannerContext,
    *,
    year: int,
    agent: str,
    schedule: TaxSchedule,
    persona_text: str,
    weekly_hours: float,
    income_usd: float,
    config: GenerateConfig,
) -> np.ndarray:
    """A persona's proposed rates (fractions, within the rate bounds). Raises
    :class:`~llmecon.models.ModelError` when the call fails."""
    lo, hi = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    prompt = platform_prompt(
        library,
        year=year,
        schedule=schedule,
        persona_text=persona_text,
        weekly_hours=weekly_hours,
        income_usd=income_usd,
        min_pct=lo,
        max_pct=hi,
    )
    schema = planner_schema(ctx.n_brackets, lo, hi)
    ids = ctx.economy.population.ids
    context = CallContext(
        role="proposer",
        year=year,
        agent=agent,
        templates=prompt.templates,
        request=PlatformAsk(ctx, ids.index(agent), schedule) if agent in ids else None,
    )
    with call_context(context):
        out = await model.generate(prompt.messages, schema, config)
    rates = np.asarray(out.parsed.rates, dtype=float) / 100.0
    return np.clip(rates, ctx.min_rate, ctx.max_rate)
