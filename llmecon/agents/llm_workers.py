"""LLM workers: each persona asks a model how many hours to work this year.

Output schema ``{"hours": int}`` with bounds ``[0, max_hours]`` (enforced by the schema,
so providers with constrained decoding cannot leave them). A call that still fails after
the model layer's retries and re-asks is a recorded fallback: the worker keeps its
previous hours. All workers decide concurrently (a simultaneous move); the model layer
bounds the concurrency per endpoint. With several decision steps a year
(``worker_steps``), each step after the first shows every worker what its previous
step produced (LLM Economist's within-year feedback). With ``batch`` (``--batch-api``)
a step's decisions go out as one provider batch (``Model.generate_batch``, half price);
a failed call still keeps the previous hours.

With ``worker_satisfaction`` (LLM Economist's bounded scenario) each worker is also
asked after each step whether it is satisfied with the tax policy
(:meth:`LLMWorkers.satisfaction`, ``prompts/satisfaction.j2``, ``{"satisfied": bool}``);
the run halves the utility of the dissatisfied in the year's metrics.

A provider that answers from a recording (an offline replay) can answer a whole step at
once (:class:`RecordedReplies`): the pool renders every prompt, and the calls whose
recorded prompt matches and whose single recorded reply is a plain ``{"hours": N}`` are
settled without a call each; the others go through the model as usual.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from llmecon.agents.base import WorkerDecision, WorkerRequest
from llmecon.agents.calls import CallContext, SatisfactionAsk, WorkerAsk, call_context
from llmecon.agents.prompting import HistoryView, StepFeedback, WorkerPrompts, satisfaction_prompt
from llmecon.economy import Economy
from llmecon.models import (
    BatchRequest,
    ChatMessage,
    GenerateConfig,
    Model,
    ModelError,
    ModelOutput,
)
from llmecon.prompts import PromptLibrary

WORKER_STYLES = ("persona", "rational")
#: Calls started between two turns of the event loop in :func:`gather_streaming`.
STREAM_CHUNK = 32
T = TypeVar("T")
#: A reply the worker schema takes as it is: one JSON object with only an integer
#: ``hours`` (JSON whitespace, no leading zeros). Other replies are settled by the model.
PLAIN_HOURS = re.compile(
    r'[ \t\n\r]*\{[ \t\n\r]*"hours"[ \t\n\r]*:[ \t\n\r]*(0|[1-9][0-9]{0,5})[ \t\n\r]*\}[ \t\n\r]*'
)


@runtime_checkable
class RecordedReplies(Protocol):
    """A provider answering from a recording that can settle many calls at once."""

    def answers_in_bulk(self) -> bool:
        """Whether :meth:`bulk_replies` may settle calls (else every call is a request)."""
        ...

    def bulk_replies(
        self,
        role: str,
        year: int,
        step: int,
        agents: Sequence[str],
        messages: Sequence[Sequence[tuple[str, str]]],
        parse: Callable[[str], Any],
        templates: Iterable[str] = (),
    ) -> list[Any]:
        """For each agent's call of ``role`` in (``year``, ``step``), sending
        ``messages`` ((role, text) pairs, rendered from ``templates``): ``parse`` of its
        recorded reply, when the recording settles the call with that one reply, the
        recorded messages match (where the recording can check them) and
        ``parse`` returns a value (the call is then used up); else ``None``, and the call
        is left for an ordinary request."""
        ...


async def gather_streaming(calls: Iterable[Awaitable[T]], chunk: int = STREAM_CHUNK) -> list[T]:
    """``asyncio.gather`` of ``calls``, started ``chunk`` at a time with a turn of the
    event loop in between.

    Each call renders its prompt before its request; gathering 10 000 at once renders
    every prompt before the first request leaves (the first reply came 2.8 s late).
    Started in chunks, requests go out while later prompts are still being rendered.
    If one call raises, the others are cancelled.
    """
    tasks: list[asyncio.Future[T]] = []
    try:
        for count, call in enumerate(calls, 1):
            tasks.append(asyncio.ensure_future(call))
            if count % chunk == 0:
                await asyncio.sleep(0)
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


def worker_max_tokens(reasons: bool) -> int:
    """The default cap on a worker's reply (``max_tokens``): room for ``{"hours": N}``
    only, or with ``reasons`` for a short reason too; ``worker_max_tokens`` (run
    config) sets another. Kept small: it bounds what a model that rambles costs."""
    return 60 if reasons else 16


def worker_schema(max_hours: int, with_reason: bool = False) -> type[BaseModel]:
    """``{"hours": int in [0, max_hours]}`` (+ an optional short ``reason``)."""
    fields: dict[str, object] = {"hours": (int, Field(ge=0, le=max_hours))}
    if with_reason:
        fields["reason"] = (str | None, Field(default=None, max_length=200))
    return create_model(  # type: ignore[call-overload]
        "WorkerDecision", __config__=ConfigDict(extra="forbid"), **fields
    )


class SatisfactionReply(BaseModel):
    """``{"satisfied": bool}``: LLM Economist's bounded scenario."""

    model_config = ConfigDict(extra="forbid")
    satisfied: bool


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
        batch: bool = False,
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
        #: workers may add a short ``reason`` to their answer
        self.reasons = reasons
        self.schema = worker_schema(int(economy.utility_config.max_weekly_hours), reasons)
        self.config = config or GenerateConfig(max_tokens=worker_max_tokens(reasons))
        self.satisfaction_config = self.config.model_copy(update={"max_tokens": 16})
        self.ids = economy.population.ids
        #: decide through the provider's batch API (``Model.generate_batch``)
        self.batch = batch
        #: (year, step, the feedback shown then): the previous step's outcome, kept for
        #: the next step's "did your last change raise your value".
        self._shown: tuple[int, int, StepFeedback] | None = None

    @property
    def name(self) -> str:
        return self.model.name

    async def decide(self, request: WorkerRequest) -> WorkerDecision:
        history = HistoryView(request.history, self.history_len)
        feedback = None
        if request.step > 0:
            # The outcome of step t−2, kept when step t−1 showed it, tells a rational-style
            # worker whether its last change of hours raised its value (a pool that did
            # not see the previous step, e.g. after a resume, leaves the change out).
            shown = self._shown
            before = (
                shown[2]
                if shown is not None and shown[:2] == (request.year, request.step - 1)
                else None
            )
            feedback = StepFeedback.of(
                self.economy, request.schedule, request.previous_hours, before
            )
            self._shown = (request.year, request.step, feedback)
        else:
            self._shown = None
        prompts = WorkerPrompts(
            self.library,
            style=self.style,
            economy=self.economy,
            year=request.year,
            schedule=request.schedule,
            last_rebate_usd=request.last_rebate_usd,
            history=history,
            step_feedback=feedback,
            reasons=self.reasons,
        )
        hours = np.empty(self.economy.size, dtype=float)
        rest, users = self._recorded(request, prompts, hours)
        if not rest:
            reasons: dict[int, str] = {}
        elif self.batch:
            results = await self._decide_batch(request, prompts, rest, users)
            reasons = self._settle(hours, rest, results)
        else:
            results = await gather_streaming(
                self._decide_one(i, request, prompts, users.get(i)) for i in rest
            )
            reasons = self._settle(hours, rest, results)
        return WorkerDecision(hours, reasons)

    @staticmethod
    def _settle(
        hours: np.ndarray, indices: Sequence[int], results: Sequence[tuple[float, str | None]]
    ) -> dict[int, str]:
        """Write ``results`` of workers ``indices`` into ``hours``; their failures."""
        reasons = {}
        for i, (h, err) in zip(indices, results, strict=True):
            hours[i] = h
            if err is not None:
                reasons[i] = err
        return reasons

    def _recorded(
        self, request: WorkerRequest, prompts: WorkerPrompts, hours: np.ndarray
    ) -> tuple[list[int], dict[int, str]]:
        """Settle what a recording answers at once (a replay, see the module docstring)
        into ``hours``: the workers left for the model, and their user messages
        rendered already."""
        everyone = list(range(self.economy.size))
        provider = self.model.provider
        if not isinstance(provider, RecordedReplies) or not provider.answers_in_bulk():
            return everyone, {}
        users = [prompts.user(i, self.persona_texts[i]) for i in everyone]
        system = prompts.system
        max_hours = int(self.economy.utility_config.max_weekly_hours)
        cap = self.model.config.merged(self.config).max_reply_chars

        def parse(text: str) -> float | None:
            match = PLAIN_HOURS.fullmatch(text) if len(text) <= cap else None
            if match is None or int(match[1]) > max_hours:
                return None
            return float(match[1])

        answers = provider.bulk_replies(
            "worker",
            request.year,
            request.step,
            self.ids,
            [(("system", system), ("user", user)) for user in users],
            parse,
            prompts.templates,
        )
        rest = []
        for i, answer in enumerate(answers):
            if answer is None:
                rest.append(i)
            else:
                hours[i] = answer
        return rest, {i: users[i] for i in rest}

    async def _decide_one(
        self, index: int, request: WorkerRequest, prompts: WorkerPrompts, user: str | None = None
    ) -> tuple[float, str | None]:
        messages, context = self._ask(index, request, prompts, user)
        with call_context(context):
            try:
                out = await self.model.generate(messages, self.schema, self.config)
            except ModelError as exc:
                return float(request.previous_hours[index]), f"{type(exc).__name__}: {exc}"
        return float(out.parsed.hours), None

    async def _decide_batch(
        self,
        request: WorkerRequest,
        prompts: WorkerPrompts,
        indices: Sequence[int],
        users: dict[int, str],
    ) -> list[tuple[float, str | None]]:
        """The calls of workers ``indices`` in the provider's batch (``--batch-api``); a
        failed call keeps the previous hours, as a synchronous one does."""
        asks = []
        for index in indices:
            messages, context = self._ask(index, request, prompts, users.get(index))
            with call_context(context):  # each call is logged with its own context
                asks.append(BatchRequest(messages, contextvars.copy_context()))
        outputs = await self.model.generate_batch(asks, self.schema, self.config)
        return [
            (float(out.parsed.hours), None)
            if isinstance(out, ModelOutput)
            else (float(request.previous_hours[i]), f"{type(out).__name__}: {out}")
            for i, out in zip(indices, outputs, strict=True)
        ]

    def _ask(
        self, index: int, request: WorkerRequest, prompts: WorkerPrompts, user: str | None = None
    ) -> tuple[list[ChatMessage], CallContext]:
        """Worker ``index``'s prompt and the context its call is made in (``user``: its
        user message, when rendered already)."""
        prompt = prompts.prompt(index, self.persona_texts[index], user)
        context = CallContext(
            role="worker",
            year=request.year,
            agent=self.ids[index],
            step=request.step,
            templates=prompt.templates,
            request=WorkerAsk(self.economy, index, request.schedule, request.last_rebate_usd),
        )
        return list(prompt.messages), context

    async def satisfaction(
        self, request: WorkerRequest, weekly_hours: np.ndarray
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Whether each worker is satisfied with ``request.schedule`` after working
        ``weekly_hours`` this step (a bool per worker), and the failed calls (index ->
        reason; such a worker counts as satisfied)."""
        hours = np.asarray(weekly_hours, dtype=float)
        rebate = float(self.economy.outcome(request.schedule, hours).rebate_usd)

        async def one(index: int) -> tuple[bool, str | None]:
            prompt = satisfaction_prompt(
                self.library,
                persona_text=self.persona_texts[index],
                economy=self.economy,
                index=index,
                year=request.year,
                schedule=request.schedule,
                weekly_hours=float(hours[index]),
                rebate_usd=rebate,
            )
            context = CallContext(
                role="worker",
                year=request.year,
                agent=self.ids[index],
                step=request.step,
                templates=prompt.templates,
                request=SatisfactionAsk(
                    self.economy, index, request.schedule, float(hours[index]), rebate
                ),
            )
            with call_context(context):
                try:
                    out = await self.model.generate(
                        prompt.messages, SatisfactionReply, self.satisfaction_config
                    )
                except ModelError as exc:
                    return True, f"{type(exc).__name__}: {exc}"
            return bool(out.parsed.satisfied), None

        results = await gather_streaming(one(i) for i in range(self.economy.size))
        satisfied = np.array([ok for ok, _ in results], dtype=bool)
        return satisfied, {i: err for i, (_, err) in enumerate(results) if err is not None}
