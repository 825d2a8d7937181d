"""The LLM planner: in-context reinforcement learning over tax schedules.

Each year the model sees the context (economy, objective, brackets, bounds), the
demonstrations (past years' rates and measured outcomes: the most recent and the best)
and a query, and answers ``{"rates": [int percent, …]}``. The first year enacts the
status quo so there is a demonstration to learn from. The proposal is clipped to the
rate bounds and the trust region (largest change per year); a failed call raises
:class:`~llmecon.planners.PlannerError`, which the run loop records as a fallback (the
schedule is kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from llmecon.agents.calls import CallContext, PlannerAsk, call_context
from llmecon.agents.prompting import PlannerPromptSettings, planner_prompt
from llmecon.economy import TaxSchedule
from llmecon.models import GenerateConfig, Model, ModelError
from llmecon.planners import PlannerContext, PlannerError, YearRecord
from llmecon.prompts import PromptLibrary


def planner_schema(n_brackets: int, min_pct: int, max_pct: int) -> type[BaseModel]:
    """``{"rates": [n whole percents in [min, max]], "rationale": optional short text}``."""
    rate = Annotated[int, Field(ge=min_pct, le=max_pct)]
    return create_model(
        "PlannerProposal",
        __config__=ConfigDict(extra="forbid"),
        rates=(list[rate], Field(min_length=n_brackets, max_length=n_brackets)),
        rationale=(str | None, Field(default=None, max_length=300)),
    )


class LLMPlanner:
    """Proposes schedules by asking a model, learning from the history in context."""

    def __init__(
        self,
        model: Model,
        ctx: PlannerContext,
        library: PromptLibrary,
        settings: PlannerPromptSettings | None = None,
        config: GenerateConfig | None = None,
    ) -> None:
        self.model = model
        self.ctx = ctx
        self.library = library
        self.settings = settings or PlannerPromptSettings()
        self.config = config or GenerateConfig(max_tokens=160)
        self.schema = planner_schema(
            ctx.n_brackets, round(100 * ctx.min_rate), round(100 * ctx.max_rate)
        )
        #: Details of the last proposal for the run log (clipping, rationale).
        self.last_detail: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return f"llm:{self.model.name}"

    async def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        year = len(history)
        if not history:
            self.last_detail = {"note": "first year enacts the status quo (a demonstration)"}
            return self.ctx.status_quo()
        prompt = planner_prompt(
            self.library, ctx=self.ctx, history=history, settings=self.settings, year=year
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
        proposed = np.asarray(out.parsed.rates, dtype=float) / 100.0
        rates = self.constrain(proposed, history[-1].schedule.rates_array)
        self.last_detail = {
            "proposed_rates": proposed.tolist(),
            "clipped": bool(np.any(np.abs(rates - proposed) > 1e-12)),
            "rationale": out.parsed.rationale,
        }
        return self.ctx.schedule(rates)

    def constrain(self, proposed: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Clip to the trust region around ``current`` and to the rate bounds."""
        step = self.settings.trust_region
        rates = np.clip(proposed, current - step, current + step)
        return np.clip(rates, self.ctx.min_rate, self.ctx.max_rate)
