"""A provider's refusal (content filter, safety refusal) fails the call once, naming it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import llmecon.models
from llmecon.models import CallRecord, ChatMessage, GenerateConfig, ModelError, get_model
from llmecon.testing.fake_servers import FakeAnthropicServer, FakeOpenAIServer, _json_reply, _Reply
from tests.models.conftest import WorkerDecision, generate_once

MSGS = [ChatMessage(role="user", content="Hours?")]
CONFIG = GenerateConfig(timeout_s=5, max_retries=2, max_repairs=2, backoff_base_s=0.001)
REFUSAL = "I can't help with that."


class _ContentFilterOpenAI(FakeOpenAIServer):
    """Every chat request refused as OpenAI does: no content, ``message.refusal`` and
    ``finish_reason`` ``content_filter``."""

    def completion(self, request: dict[str, Any], fault: str) -> _Reply:
        return _json_reply(
            200,
            {
                "id": "chatcmpl-refused",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "refusal": REFUSAL},
                        "finish_reason": "content_filter",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 7},
            },
        )


class _RefusalOnlyOpenAI(FakeOpenAIServer):
    """A structured-output refusal: ``message.refusal`` with ``finish_reason`` ``stop``."""

    def completion(self, request: dict[str, Any], fault: str) -> _Reply:
        reply = super().completion(request, fault)
        payload = json.loads(reply.body)
        payload["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "refusal": REFUSAL,
        }
        payload["usage"] = {"prompt_tokens": 10, "completion_tokens": 7}
        return _json_reply(200, payload)


class _RefusingAnthropic(FakeAnthropicServer):
    def completion(self, request: dict[str, Any], fault: str) -> _Reply:
        return _json_reply(
            200,
            {
                "id": "msg_refused",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": REFUSAL}],
                "stop_reason": "refusal",
                "usage": {"input_tokens": 10, "output_tokens": 7},
            },
        )


@pytest.mark.parametrize(
    ("server_class", "name", "how"),
    [
        (_ContentFilterOpenAI, "openai/gpt-4o", "content filter"),
        (_RefusalOnlyOpenAI, "openai/gpt-4o", "refusal"),
        (_RefusingAnthropic, "anthropic/claude-x", "refusal"),
        (_ContentFilterOpenAI, "litellm/openai/fake-model", "content filter"),
    ],
)
def test_a_refusal_fails_the_call_once_naming_it_and_keeps_its_text(
    sentinel_keys: object, server_class: type, name: str, how: str
) -> None:
    """It read "reply did not match schema … after 2 re-asks: empty reply", re-asked
    twice (three refused requests paid for) and the refusal's text was lost."""
    records: list[CallRecord] = []
    with server_class() as server:
        model = get_model(name, api_base=server.base_url, config=CONFIG, on_call=records.append)
        with pytest.raises(ModelError) as info:
            asyncio.run(generate_once(model, MSGS, WorkerDecision))
        assert server.stats.requests == 1  # neither re-asked nor retried
    # (looked up here, so that the test runs, and fails, where the class is missing)
    assert isinstance(info.value, getattr(llmecon.models, "RefusalError", ()))
    said = str(info.value)
    assert f"{name}: the provider refused ({how}): {REFUSAL}" in said
    assert "change the prompt or use another model" in said
    assert not info.value.retryable
    (record,) = records
    assert record.error_type == "RefusalError" and record.repairs == 0 and record.retries == 0
    assert record.raw_outputs == [REFUSAL]
    assert record.usage.input_tokens == 10 and record.usage.output_tokens == 7


def test_a_refused_call_without_a_schema_fails_too(sentinel_keys: object) -> None:
    with _ContentFilterOpenAI() as server:
        model = get_model("openai/gpt-4o", api_base=server.base_url, config=CONFIG)
        with pytest.raises(ModelError, match=r"refused \(content filter\)"):
            asyncio.run(generate_once(model, MSGS, None))
