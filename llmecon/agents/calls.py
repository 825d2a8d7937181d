"""Who is calling the model: a context variable the run log reads for each call.

Agents wrap each ``model.generate`` in :func:`call_context`; the run layer's ``on_call``
handler reads :func:`current_call` to tag the logged call with its role, agent, year and
templates. Each asyncio task has its own copy of the context, so concurrent calls of
different workers never mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["planner", "worker", "voter", "proposer"]


@dataclass(frozen=True)
class CallContext:
    role: Role
    year: int
    agent: str | None = None
    step: int = 0
    templates: dict[str, str] = field(default_factory=dict)


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
