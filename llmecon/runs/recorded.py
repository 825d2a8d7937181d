"""Serve model calls from a run log: the ``replay`` provider.

Every logged ``llm_call`` is keyed by who made it (role, agent, year, step). During a
replay each agent's call is answered with the recorded raw output of the same key —
attempt by attempt, so recorded re-asks and failures replay exactly — and the request's
messages are checked against the recorded ones (a changed template or a different
history is a :class:`ReplayMismatchError`, not a silent divergence). With a ``live``
provider behind it (resume, fork), calls that have no recording go to the real model.

Attempts: the wrapper tells the provider which attempt of a logical call a request is
(:func:`~llmecon.models.current_attempt`): attempt ``k`` is answered with
``raw_outputs[k]``, for any number of re-asks (a re-ask's prompt holds only the latest bad
reply, so the attempt cannot be told from the messages). Transport retries add no reply,
so a recorded call with ``retries > 0`` replays from its replies alone; a call that
failed without a reply at attempt ``k`` (``k == len(raw_outputs)``) fails the same way.

Only the first attempt's messages are checked: the log holds the hashes of the first
request only. A re-ask is that request plus the previous (recorded) reply and the repair
text rendered from ``repair.j2`` and that reply's validation error, so it adds nothing
the first check and the recorded replies do not already pin down; a changed
``repair.j2`` is not detected (it would only change what a live model reads).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from llmecon.agents.calls import current_call
from llmecon.models import (
    BatchAPI,
    ChatMessage,
    GenerateConfig,
    ModelProvider,
    ProviderError,
    ProviderResponse,
    StructuredSpec,
    Usage,
    current_attempt,
)
from llmecon.models._schema import with_schema_instruction
from llmecon.runs.columnar import file_columns
from llmecon.runs.events import CallFile, LLMCall

CallKey = tuple[str, str | None, int, int]


class ReplayMismatchError(RuntimeError):
    """A replayed run asked for a call the log does not hold, or with other messages."""


@dataclass(slots=True)
class RecordedCall:
    """What a replay needs of a logged call (light: a large run has one per worker and
    step, and building full ``LLMCall`` events for them would dominate the replay)."""

    role: str
    agent: str | None
    year: int
    step: int
    messages: list[tuple[str, str]]
    """(role, sha256) of each message of the first request."""
    raw_outputs: list[str]
    input_tokens: int
    output_tokens: int
    error_type: str | None
    error_message: str | None

    @classmethod
    def of(cls, call: LLMCall) -> RecordedCall:
        return cls(
            call.role,
            call.agent,
            call.year,
            call.step,
            [(m.role, m.sha256) for m in call.messages],
            call.raw_outputs,
            call.input_tokens,
            call.output_tokens,
            call.error_type,
            call.error_message,
        )


#: The columns of a ``call_file`` a :class:`RecordedCall` is made of.
_RECORDED_COLUMNS = (
    "role",
    "agent",
    "year",
    "step",
    "messages_json",
    "raw_outputs",
    "input_tokens",
    "output_tokens",
    "error_type",
    "error_message",
)


def recorded_calls(events: Iterable[Any]) -> Iterator[RecordedCall]:
    """The calls of ``events`` in order: ``llm_call`` events and the rows of the
    ``call_file`` files, read column-wise."""
    for event in events:
        if isinstance(event, LLMCall):
            yield RecordedCall.of(event)
        elif isinstance(event, CallFile):
            cols = file_columns(event, _RECORDED_COLUMNS)
            for role, agent, year, step, messages, *rest in zip(*cols, strict=True):
                pairs = [(m["role"], m["sha256"]) for m in json.loads(messages)]
                yield RecordedCall(role, agent, year, step, pairs, *rest)


def call_key(call: LLMCall | RecordedCall) -> CallKey:
    return (call.role, call.agent, call.year, call.step)


class RecordedCalls:
    """The logged calls of a run, queued per key in log order."""

    #: check that each replayed request sends the recorded messages (off when the run's
    #: templates are no longer available: outputs are then replayed by who asked)
    verify_messages: bool = True

    def __init__(self, calls: Iterable[LLMCall | RecordedCall], *, then_live: bool = False) -> None:
        #: calls with no recording go on to the live model (resume, fork) instead of
        #: being a mismatch (replay)
        self.then_live = then_live
        self._queues: dict[CallKey, deque[RecordedCall]] = defaultdict(deque)
        count = 0
        for call in calls:
            if isinstance(call, LLMCall):
                call = RecordedCall.of(call)
            self._queues[call_key(call)].append(call)
            count += 1
        self.total = count

    @classmethod
    def from_events(cls, events: Iterable[Any], *, then_live: bool = False) -> RecordedCalls:
        """The calls of ``events``: ``llm_call`` events and those in ``call_file`` files."""
        return cls(recorded_calls(events), then_live=then_live)

    def has(self, key: CallKey) -> bool:
        return bool(self._queues.get(key))

    def take(self, key: CallKey) -> RecordedCall:
        queue = self._queues.get(key)
        if not queue:
            role, agent, year, step = key
            who = f"{role} {agent}" if agent else role
            raise ReplayMismatchError(
                f"the log holds no (more) model calls for the {who} in year {year}, step {step}"
            )
        return queue.popleft()

    @property
    def remaining(self) -> int:
        return sum(len(q) for q in self._queues.values())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReplayProvider(ModelProvider):
    """Answers from :class:`RecordedCalls`; optionally falls through to a live provider."""

    provider_name = "replay"
    in_process = True
    supports_native_schema = True
    default_max_concurrency = 10_000

    def __init__(
        self, model_name: str, recorded: RecordedCalls, live: ModelProvider | None = None
    ) -> None:
        super().__init__(model_name, None)
        self.recorded = recorded
        self.live = live
        if live is not None:
            self.default_max_concurrency = live.default_max_concurrency
        #: the recorded call being replayed for a key (its re-asks come back to it)
        self._current: dict[CallKey, RecordedCall] = {}
        #: requests that did not match the log (the model layer turns the raised error
        #: into an agent fallback, so replays check this list afterwards)
        self.mismatches: list[ReplayMismatchError] = []

    @property
    def endpoint(self) -> str:
        return self.live.endpoint if self.live is not None else f"replay|{self.model_name}"

    def reserve(self) -> AbstractAsyncContextManager[Any]:
        """The live provider's reservation (a fleet picks its endpoint here, before the
        request's timeout starts); a recorded answer holds it only briefly."""
        return self.live.reserve() if self.live is not None else super().reserve()

    def batch_api(self) -> BatchAPI | None:
        """The live provider's batch API (calls with no recording may be batched)."""
        return self.live.batch_api() if self.live is not None else None

    def recorded_answer(self) -> bool:
        """Whether this call is answered from the log: always in a replay; in a resume
        or fork when the log holds it (a batch leaves such calls out)."""
        ctx = current_call()
        if self.live is None or ctx is None:
            return True
        return self.recorded.has((ctx.role, ctx.agent, ctx.year, ctx.step))

    @property
    def prices_known(self) -> bool:
        return self.live.prices_known if self.live is not None else True

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        ctx = current_call()
        if ctx is None:
            raise ReplayMismatchError("a replayed model call carries no call context")
        key: CallKey = (ctx.role, ctx.agent, ctx.year, ctx.step)
        attempt = current_attempt()  # this request's reply is raw_outputs[attempt]
        if attempt == 0:
            self._current.pop(key, None)  # a new logical call
            if self.live is not None and not self.recorded.has(key):
                return await self._live(messages, spec, config)
            try:
                call = self.recorded.take(key)
                if self.recorded.verify_messages:
                    self._check_messages(call, messages, key)
            except ReplayMismatchError as exc:
                return await self._mismatch(exc, messages, spec, config)
            self._current[key] = call
        elif key in self._current:
            call = self._current[key]
        elif self.live is not None:  # a re-ask of a call the live model answered
            return await self._live(messages, spec, config)
        else:
            return await self._mismatch(
                ReplayMismatchError(f"re-ask {attempt} with no recorded call for {key}"),
                messages,
                spec,
                config,
            )
        if attempt >= len(call.raw_outputs) and call.error_type is None:
            # The recorded call was settled by its last reply; asking again means that
            # reply no longer validates here (the schema changed).
            self._current.pop(key, None)
            return await self._mismatch(
                ReplayMismatchError(
                    f"the {key[0]} call in year {key[2]} (agent {key[1]}) was settled by its "
                    f"reply {len(call.raw_outputs) - 1} in the log, but the replay asked again: "
                    "the output schema or its validation changed"
                ),
                messages,
                spec,
                config,
            )
        if attempt < len(call.raw_outputs):
            usage = (
                Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens)
                if attempt == 0
                else Usage()
            )
            return ProviderResponse(text=call.raw_outputs[attempt], usage=usage, cost_usd=0.0)
        # The recorded call failed here without a reply (timeout, 5xx, …): fail the same
        # way, without retries, so the agent applies the same fallback.
        raise ProviderError(
            f"replayed failure: {call.error_type}: {call.error_message}", retryable=False
        )

    async def _mismatch(
        self,
        error: ReplayMismatchError,
        messages: list[ChatMessage],
        spec: StructuredSpec | None,
        config: GenerateConfig,
    ) -> ProviderResponse:
        """Note ``error``; resume/fork let the live model answer, a replay raises it."""
        self.mismatches.append(error)
        if self.live is None:
            raise error
        return await self._live(messages, spec, config)

    async def _live(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        assert self.live is not None
        # This provider always takes the schema natively (so replayed messages match the
        # log); a live provider without native schemas gets it in the prompt instead.
        if spec is not None and not self.live.supports_native_schema:
            return await self.live.generate(with_schema_instruction(messages, spec), None, config)
        return await self.live.generate(messages, spec, config)

    @staticmethod
    def _check_messages(call: RecordedCall, messages: list[ChatMessage], key: CallKey) -> None:
        got = [(m.role, _sha(m.content)) for m in messages]
        want = call.messages
        if got != want:
            raise ReplayMismatchError(
                f"the {key[0]} call in year {key[2]} (agent {key[1]}) sends other messages "
                "than the log recorded: a template, the persona bank or the history changed"
            )

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.aclose()
