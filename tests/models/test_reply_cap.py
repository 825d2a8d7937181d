"""Replies longer than ``max_reply_chars`` fail the call and are recorded truncated."""

from __future__ import annotations

import asyncio
import json

import pytest

from llmecon.models import (
    CallRecord,
    ChatMessage,
    GenerateConfig,
    ReplyTooLongError,
    get_model,
)
from llmecon.models._model import truncate_reply
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.models.conftest import FAST, WorkerDecision, generate_once

MSGS = [ChatMessage(role="user", content="Hours?")]
EIGHT_MB = 8 * 1024 * 1024
CAP = GenerateConfig().max_reply_chars
MARKER = f"…[truncated: {EIGHT_MB} chars]"


def _huge_reply() -> str:
    # Valid JSON followed by 8 MB of padding: it would parse if it were accepted.
    head = '{"hours": 40}'
    return head + " " * (EIGHT_MB - len(head))


def test_an_8_mb_reply_fails_once_and_is_recorded_truncated():
    records: list[CallRecord] = []
    good = json.dumps({"hours": 30})
    model = get_model("mock/default", outputs=[_huge_reply(), good], on_call=records.append)
    with pytest.raises(ReplyTooLongError) as info:
        asyncio.run(model.generate(MSGS, WorkerDecision))
    assert info.value.chars == EIGHT_MB and info.value.limit == CAP
    assert not info.value.retryable
    # Neither retried nor re-asked: the good reply is still unused, and no request ever
    # carried the huge reply back to the model.
    assert model.provider.remaining == 1 and len(model.provider.requests) == 1
    assert all(len(m.content) < CAP for r in model.provider.requests for m in r)
    (record,) = records
    assert record.error_type == "ReplyTooLongError"
    assert record.raw_outputs == [_huge_reply()[:CAP] + MARKER]
    assert len(record.model_dump_json()) < CAP + 2_000
    assert record.usage.output_tokens > EIGHT_MB // 8  # the reply is still paid for
    assert model.failures == 1


def test_the_cap_is_configurable_and_inclusive():
    exactly = '{"hours": 7}' + " " * 88  # 100 chars
    model = get_model(
        "mock/default",
        outputs=[exactly, exactly + " "],
        config=GenerateConfig(max_reply_chars=100),
    )
    assert asyncio.run(model.generate(MSGS, WorkerDecision)).parsed.hours == 7
    with pytest.raises(ReplyTooLongError, match="101 chars"):
        asyncio.run(model.generate(MSGS, WorkerDecision))


def test_a_recorded_truncation_replays_to_the_same_failure_and_record():
    """Served back (replay, resume), the truncated reply fails the same way and is
    recorded unchanged, with the original length in its marker."""
    first: list[CallRecord] = []
    model = get_model("mock/default", outputs=[_huge_reply()], on_call=first.append)
    with pytest.raises(ReplyTooLongError):
        asyncio.run(model.generate(MSGS, WorkerDecision))
    recorded = first[0].raw_outputs[0]
    again: list[CallRecord] = []
    replay = get_model("mock/default", outputs=[recorded], on_call=again.append)
    with pytest.raises(ReplyTooLongError):
        asyncio.run(replay.generate(MSGS, WorkerDecision))
    assert again[0].raw_outputs == [recorded]
    assert truncate_reply(recorded, CAP, len(recorded)) == recorded
    assert truncate_reply("x" * 10, 4, 10) == "xxxx…[truncated: 10 chars]"


def test_an_8_mb_reply_over_http_is_capped(sentinel_keys):
    records: list[CallRecord] = []
    with FakeOpenAIServer(responder=lambda request, schema: _huge_reply()) as server:
        model = get_model(
            "openai/fake-model", api_base=server.base_url, config=FAST, on_call=records.append
        )
        with pytest.raises(ReplyTooLongError):
            asyncio.run(generate_once(model, MSGS))
        assert server.stats.requests == 1
    assert records[0].raw_outputs[0].endswith(MARKER)
