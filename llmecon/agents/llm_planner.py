"""The LLM planner: in-context reinforcement learning over tax schedules.

Each year the model sees the context (economy, objective, brackets, bounds), the
demonstrations (past years' rates and measured outcomes: the most recent and the best)
and a query, and answers ``{"rates": [int percent, …]}``. The first year enacts the
status quo so there is a demonstration to learn from. The proposal is clipped to the
rate bounds and the trust region (largest change per year); a failed call raises
:class:`~llmecon.planners.PlannerError`, which the run loop records as a fallback (the
schedule is kept).

With ``planner_moves: grid:<step>,<max>`` (LLM Economist's ``DELTA``) the model answers
``{"deltas": [...]}``, one change per bracket from ``{−max, …, 0, …, max}`` in steps of
``step`` points (a JSON-schema enum, so constrained decoding cannot leave the set and any
other value is re-asked, then a fallback); the new rate is the current rate on the grid
plus the change, clipped to the rate bounds. ``planner_start`` replaces the status quo
as year 0's schedule (LLM Economist starts at 50 % in every bracket).

For a voting round (``docs/voting.md``) :meth:`LLMPlanner.propose_candidates` asks, in
one call (``prompts/planner_candidates.j2`` after the usual context and
demonstrations; call role ``proposer``), for K distinct proposals, best first. With
``candidate_source: leaders`` the rounds elect a worker and set :attr:`LLMPlanner.leader`:
the context then says who the planner is (the leader's persona) and when it was elected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator

from llmecon.agents.calls import CallContext, CandidatesAsk, PlannerAsk, call_context
from llmecon.agents.planner_prompts import (
    GridMoves,
    Leader,
    PlannerPromptSettings,
    planner_candidates_prompt,
    planner_prompt,
)
from llmecon.economy import TaxSchedule
from llmecon.models import GenerateConfig, Model, ModelError
from llmecon.planners import PlannerContext, PlannerError, YearRecord, first_year_note
from llmecon.prompts import PromptLibrary

#: Longest rationale kept (characters; the schema's ``maxLength``, which constrained
#: decoding keeps to).
RATIONALE_CHARS = 300


def _cut_rationale(value: Any) -> Any:
    """A longer rationale cut to :data:`RATIONALE_CHARS`, ending with ``…`` (so the log
    shows it was cut): free text beside the rates, never a reason to lose a valid
    proposal (a re-ask, then a fallback). Not a string: left to the type check."""
    if isinstance(value, str) and len(value) > RATIONALE_CHARS:
        return value[: RATIONALE_CHARS - 1] + "…"
    return value


#: The optional ``rationale`` of a planner's reply.
_RATIONALE: Any = (str | None, Field(default=None, max_length=RATIONALE_CHARS))


def _rationale_cut() -> dict[str, Any]:
    """The validators of a reply model with a ``rationale`` (one per model)."""
    return {"_cut": field_validator("rationale", mode="before")(_cut_rationale)}


def planner_schema(n_brackets: int, min_pct: int, max_pct: int) -> type[BaseModel]:
    """``{"rates": [n whole percents in [min, max]], "rationale": optional short text}``."""
    rate = Annotated[int, Field(ge=min_pct, le=max_pct)]
    return create_model(
        "PlannerProposal",
        __config__=ConfigDict(extra="forbid"),
        __validators__=_rationale_cut(),
        rates=(list[rate], Field(min_length=n_brackets, max_length=n_brackets)),
        rationale=_RATIONALE,
    )


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number of points")
    return value


def delta_schema(n_brackets: int, moves: GridMoves) -> type[BaseModel]:
    """``{"deltas": [n changes in points, each one of moves.deltas], "rationale": …}``."""
    # an enum of whole points; true and false are not 1 and 0 (bool is an int to Literal)
    points = Literal.__getitem__(tuple(moves.deltas))
    delta = Annotated[points, BeforeValidator(_not_bool)]  # type: ignore[valid-type]
    return create_model(
        "PlannerDeltas",
        __config__=ConfigDict(extra="forbid"),
        __validators__=_rationale_cut(),
        deltas=(list[delta], Field(min_length=n_brackets, max_length=n_brackets)),
        rationale=_RATIONALE,
    )


def parse_rates_pct(text: str, n_brackets: int) -> list[float]:
    """``"50"`` or ``"50,50,50"`` (percent) → one fraction per bracket (a single value
    applies to every bracket). Raises ``ValueError`` on another count."""
    values = [float(v) / 100.0 for v in text.split(",")]
    if len(values) == 1:
        values = values * n_brackets
    if len(values) != n_brackets:
        raise ValueError(
            f"planner_start {text!r} gives {len(values)} rates for {n_brackets} brackets: "
            "give one rate for all or one per bracket"
        )
    return values


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


#: The default cap on the planner's reply (``max_tokens``): the rates and a short
#: rationale; ``planner_max_tokens`` (run config) sets another.
PLANNER_MAX_TOKENS = 160


class LLMPlanner:
    """Proposes schedules by asking a model, learning from the history in context."""

    def __init__(
        self,
        model: Model,
        ctx: PlannerContext,
        library: PromptLibrary,
        settings: PlannerPromptSettings | None = None,
        config: GenerateConfig | None = None,
        start: Sequence[float] | None = None,
    ) -> None:
        self.model = model
        self.ctx = ctx
        self.library = library
        self.settings = settings or PlannerPromptSettings()
        self.config = config or GenerateConfig(max_tokens=PLANNER_MAX_TOKENS)
        moves = self.settings.moves
        self.schema = (
            delta_schema(ctx.n_brackets, moves)
            if moves
            else planner_schema(
                ctx.n_brackets, round(100 * ctx.min_rate), round(100 * ctx.max_rate)
            )
        )
        #: Year 0's schedule (fractions per bracket); ``None``: the status quo.
        self.start = (
            None
            if start is None
            else np.clip(np.asarray(start, dtype=float), ctx.min_rate, ctx.max_rate)
        )
        if self.start is not None and self.start.size != ctx.n_brackets:
            raise ValueError(f"planner start needs {ctx.n_brackets} rates, got {self.start.size}")
        #: Details of the last proposal for the run log (clipping, rationale).
        self.last_detail: dict[str, Any] = {}
        #: The elected leader the planner acts as (``candidate_source: leaders``; set by
        #: the voting rounds), named in the context; ``None``: no leader.
        self.leader: Leader | None = None

    @property
    def name(self) -> str:
        return f"llm:{self.model.name}"

    async def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        year = len(history)
        if not history:
            if self.start is not None:
                self.last_detail = first_year_note("planner_start (a demonstration)")
                return self.ctx.schedule(self.start)
            self.last_detail = first_year_note("the status quo (a demonstration)")
            return self.ctx.status_quo()
        prompt = planner_prompt(
            self.library,
            ctx=self.ctx,
            history=history,
            settings=self.settings,
            year=year,
            leader=self.leader,
        )
        context = CallContext(
            role="planner",
            year=year,
            templates=prompt.templates,
            request=PlannerAsk(self.ctx, history, self.settings),
        )
        with call_context(context):
            try:
                out = await self.model.generate(prompt.messages, self.schema, self.config)
            except ModelError as exc:
                self.last_detail = {}
                raise PlannerError(f"planner model failed: {type(exc).__name__}: {exc}") from exc
        current = history[-1].schedule.rates_array
        if self.settings.moves:
            deltas = [int(d) for d in out.parsed.deltas]
            proposed = self.apply_deltas(current, deltas, self.settings.moves)
            rates = np.clip(proposed, self.ctx.min_rate, self.ctx.max_rate)
            self.last_detail = {
                "deltas": deltas,
                "proposed_rates": proposed.tolist(),
                "clipped": bool(np.any(np.abs(rates - proposed) > 1e-12)),
                "rationale": out.parsed.rationale,
            }
            return self.ctx.schedule(rates)
        proposed = np.asarray(out.parsed.rates, dtype=float) / 100.0
        rates = self.constrain(proposed, current)
        self.last_detail = {
            "proposed_rates": proposed.tolist(),
            "clipped": bool(np.any(np.abs(rates - proposed) > 1e-12)),
            "rationale": out.parsed.rationale,
        }
        return self.ctx.schedule(rates)

    @staticmethod
    def apply_deltas(current: np.ndarray, deltas: Sequence[int], moves: GridMoves) -> np.ndarray:
        """The current rates on the grid plus the changes (fractions; not yet clipped)."""
        base = moves.snap(np.round(100 * np.asarray(current, dtype=float)))
        return (base + np.asarray(deltas, dtype=float)) / 100.0

    def constrain(self, proposed: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Clip to the trust region around ``current`` and to the rate bounds (with grid
        moves: round to the grid, then at most the grid's ``max`` from the current grid
        point)."""
        moves = self.settings.moves
        if moves:
            base = moves.snap(np.round(100 * np.asarray(current, dtype=float)))
            pct = moves.snap(np.round(100 * np.asarray(proposed, dtype=float)))
            pct = np.clip(pct, base - moves.max_pct, base + moves.max_pct)
            return np.clip(pct / 100.0, self.ctx.min_rate, self.ctx.max_rate)
        step = self.settings.trust_region
        rates = np.clip(proposed, current - step, current + step)
        return np.clip(rates, self.ctx.min_rate, self.ctx.max_rate)

    async def propose_candidates(self, history: Sequence[YearRecord], k: int) -> list[TaxSchedule]:
        """K proposals for a voting round held in year ``len(history)``, best first, each
        clipped like :meth:`propose` (trust region around the incumbent, rate bounds).
        Raises :class:`~llmecon.models.ModelError` when the call fails (the round then
        records a fallback)."""
        year = len(history)
        ctx = self.ctx
        schema = candidates_schema(
            k, ctx.n_brackets, round(100 * ctx.min_rate), round(100 * ctx.max_rate)
        )
        prompt = planner_candidates_prompt(
            self.library, ctx, self.settings, history, k, year, self.leader
        )
        per_list = 4 * ctx.n_brackets + 4
        config = self.config.model_copy(update={"max_tokens": 24 + k * per_list})
        context = CallContext(
            role="proposer",
            year=year,
            templates=prompt.templates,
            request=CandidatesAsk(ctx, history, self.settings, k),
        )
        with call_context(context):
            out = await self.model.generate(prompt.messages, schema, config)
        current = history[-1].schedule.rates_array
        return [
            ctx.schedule(self.constrain(np.asarray(rates, dtype=float) / 100.0, current))
            for rates in out.parsed.candidates
        ]
