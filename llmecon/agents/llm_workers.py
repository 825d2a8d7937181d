"""LLM workers: each persona asks a model how many hours to work this year.

Output schema ``{"hours": int}`` with bounds ``[0, max_hours]`` (enforced by the schema,
so providers with constrained decoding cannot leave them). A call that still fails after
the model layer's retries and re-asks is a recorded fallback: the worker keeps its
previous hours. All workers decide concurrently (a simultaneous move); the model layer
bounds the concurrency per endpoint. With several decision steps a year
(``worker_steps``), each step after the first shows every worker what its previous
step produced (LLM Economist's within-year feedback).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from llmecon.agents.base import WorkerDecision, WorkerRequest
from llmecon.agents.calls import CallContext, WorkerAsk, call_context
from llmecon.agents.prompting import HistoryView, StepFeedback, worker_prompt
from llmecon.economy import Economy
from llmecon.models import GenerateConfig, Model, ModelError
from llmecon.prompts import PromptLibrary

WORKER_STYLES = ("persona", "rational")


def worker_schema(max_hours: int, with_reason: bool = False) -> type[BaseModel]:
    """``{"hours": int in [0, max_hours]}`` (+ an optional short ``reason``)."""
    fields: dict[str, object] = {"hours": (int, Field(ge=0, le=max_hours))}
    if with_reason:
        fields["reason"] = (str | None, Field(default=None, max_length=200))
    return create_model(  # type: ignore[call-overload]
        "WorkerDecision", __config__=ConfigDict(extra="forbid"), **fields
    )


class LLMWorkers:
    """A pool of persona workers driven by one model."""

    def __init__(
        self,
        model: Model,
        economy: Economy,
        persona_texts: Sequence[str],
        library: PromptLibrary,
        *,
        style: str = "persona",
        history_len: int = 3,
        reasons: bool = False,
        config: GenerateConfig | None = None,
    ) -> None:
        if style not in WORKER_STYLES:
            raise ValueError(f"worker style must be one of {WORKER_STYLES}, got {style!r}")
        if len(persona_texts) != economy.size:
            raise ValueError(f"{len(persona_texts)} persona texts for {economy.size} workers")
        self.model = model
        self.economy = economy
        self.persona_texts = list(persona_texts)
        self.library = library
        self.style = style
        self.history_len = history_len
        self.schema = worker_schema(int(economy.utility_config.max_weekly_hours), reasons)
        self.config = config or GenerateConfig(max_tokens=60 if reasons else 16)
        self.ids = economy.population.ids

    @property
    def name(self) -> str:
        return self.model.name

    async def decide(self, request: WorkerRequest) -> WorkerDecision:
        history = HistoryView(request.history, self.history_len)
        feedback = (
            StepFeedback.of(self.economy, request.schedule, request.previous_hours)
            if request.step > 0
            else None
        )
        results = await asyncio.gather(
            *(self._decide_one(i, request, history, feedback) for i in range(self.economy.size))
        )
        hours = np.array([h for h, _ in results], dtype=float)
        reasons = {i: err for i, (_, err) in enumerate(results) if err is not None}
        return WorkerDecision(hours, reasons)

    async def _decide_one(
        self,
        index: int,
        request: WorkerRequest,
        history: HistoryView,
        feedback: StepFeedback | None = None,
    ) -> tuple[float, str | None]:
        prompt = worker_prompt(
            self.library,
            style=self.style,
            persona_text=self.persona_texts[index],
            index=index,
            economy=self.economy,
            year=request.year,
            schedule=request.schedule,
            last_rebate_usd=request.last_rebate_usd,
            history=history,
            step_feedback=feedback,
        )
        context = CallContext(
            role="worker",
            year=request.year,
            agent=self.ids[index],
            step=request.step,
            templates=prompt.templates,
            request=WorkerAsk(self.economy, index, request.schedule, request.last_rebate_usd),
        )
        with call_context(context):
            try:
                out = await self.model.generate(prompt.messages, self.schema, self.config)
            except ModelError as exc:
                return float(request.previous_hours[index]), f"{type(exc).__name__}: {exc}"
        return float(out.parsed.hours), None
