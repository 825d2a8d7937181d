"""litellm routed to the fake OpenAI server (litellm's own client code, no mocking)."""

from __future__ import annotations

import asyncio

import pytest

from llmecon.models import ChatMessage, GenerateConfig, RateLimitError, get_model
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.models.conftest import SENTINEL, WorkerDecision

MSGS = [ChatMessage(role="user", content="Hours?")]


def test_litellm_structured_call_with_retries(sentinel_keys):
    with FakeOpenAIServer(faults=["429", "500", "ok", "429", "429", "429"]) as server:
        config = GenerateConfig(timeout_s=5, max_retries=2, backoff_base_s=0.001)
        model = get_model("litellm/openai/fake-model", api_base=server.base_url, config=config)
        out = asyncio.run(model.generate(MSGS, WorkerDecision))
        assert isinstance(out.parsed, WorkerDecision) and out.retries == 2
        assert server.stats.bodies[-1]["model"] == "fake-model"
        with pytest.raises(RateLimitError) as info:
            asyncio.run(model.generate(MSGS, WorkerDecision))
        assert SENTINEL not in str(info.value)
        assert server.stats.requests == 6
