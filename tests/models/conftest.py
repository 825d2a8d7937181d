"""Shared fixtures: fake servers on 127.0.0.1 and a sentinel API key."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from pydantic import BaseModel, Field

from llmecon.models import ChatMessage, GenerateConfig, Model, ModelOutput

SENTINEL = "sk-SENTINEL-do-not-leak-0123456789abcdef"


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)
    reason: str = Field(default="", max_length=120)


class PlannerProposal(BaseModel):
    rates: list[int] = Field(min_length=7, max_length=7)
    rationale: str = Field(max_length=200)


#: Fast retries for tests: tiny backoff. The timeout is only a bound on a request to a
#: fake server that never answers: long enough that a reply slowed by a loaded 2-core
#: machine (an SDK's first client built inside the request) is not taken for one.
FAST = GenerateConfig(timeout_s=10.0, max_retries=3, backoff_base_s=0.001, backoff_max_s=0.01)


async def generate_once(
    model: Model,
    messages: Sequence[ChatMessage],
    schema: type[BaseModel] | None = WorkerDecision,
    config: GenerateConfig | None = None,
) -> ModelOutput:
    """One ``model.generate`` call, then the model's clients closed (on this loop)."""
    try:
        return await model.generate(list(messages), schema, config)
    finally:
        await model.aclose()


@pytest.fixture
def sentinel_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LLMECON_API_KEY"):
        monkeypatch.setenv(name, SENTINEL)
    yield SENTINEL
