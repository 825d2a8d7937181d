"""What the ``http`` transport puts on the wire and reads back: JSON bodies (encoded and
parsed by pydantic-core, with the ``json`` module for what it refuses) and reply headers."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from llmecon.models import ChatMessage, get_model
from llmecon.models._errors import retry_after_header
from llmecon.models._http import decode_json, encode_json
from llmecon.testing.fake_servers import FakeAnthropicServer, FakeOpenAIServer
from tests.models.conftest import FAST, WorkerDecision, generate_once
from tests.models.test_throughput_transport import _ok, _RawServer, post_once

#: Bodies json.loads reads, some of which pydantic-core refuses (a BOM, UTF-16, a lone
#: surrogate): decode_json must give the same value for every one.
BODIES = [
    b'{"a": 1, "b": [1.5, -0.0, 1e400, 123456789012345678901234567890], "c": null}',
    '{"text": "héllo – 世界 ☃", "esc": "\\u00e9\\n\\"q\\""}'.encode(),
    b'\xef\xbb\xbf{"bom": true}',
    '{"utf16": "é"}'.encode("utf-16"),
    b'{"lone": "\\ud800 x"}',
    b'{"dup": 1, "other": 2, "dup": 3}',
    b'  {"padded": "yes"}  \n',
]


@pytest.mark.parametrize("body", BODIES)
def test_reply_bodies_parse_as_json_loads_parses_them(body: bytes) -> None:
    assert decode_json(body) == json.loads(body)


def test_nan_and_malformed_bodies_behave_as_with_json_loads() -> None:
    assert math.isnan(decode_json(b'{"x": NaN}')["x"])
    for bad in (b"[1,]", b'{"a": ', b"", b'{"a": "\xff"}', b"<html>busy</html>"):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            decode_json(bad)
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(RecursionError):  # refused by pydantic-core, then as json.loads does
        decode_json(deep)


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "m", "messages": [{"role": "user", "content": 'héllo – 世界 ☃ "q" \\ \n'}]},
        {"temperature": 0.1, "top_p": 1e-7, "seed": 2**70, "stop": ["</s>", "\x00"]},
        {"lone": "\ud800 surrogate"},  # pydantic-core refuses it: the json module writes it
        {"schema": {"properties": {"h": {"maximum": 80}}}, "strict": False, "none": None},
    ],
)
def test_request_bodies_are_json_of_the_payload(payload: dict[str, object]) -> None:
    body = encode_json(payload)
    assert isinstance(body, bytes)
    assert json.loads(body) == payload


@pytest.mark.parametrize(
    ("server_cls", "model_name"),
    [(FakeOpenAIServer, "openai/fake"), (FakeAnthropicServer, "anthropic/fake")],
)
def test_non_ascii_prompts_reach_the_server_intact(
    server_cls: type[FakeOpenAIServer], model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    text = 'Semaine 3 : combien d’heures ? – 世界 ☃ "JSON" \\ please'
    msgs = [ChatMessage(role="user", content=text)]
    with server_cls(latency_s=0.0) as server:
        model = get_model(model_name, api_base=server.base_url, config=FAST)
        out = asyncio.run(generate_once(model, msgs))
        sent = server.stats.bodies[-1]["messages"]
    assert isinstance(out.parsed, WorkerDecision)
    assert sent[-1]["content"] == text


def test_reply_headers_are_read_whatever_their_case() -> None:
    raw = _RawServer([_ok(b"{}", extra="ReTrY-AfTeR: 7\r\nX-Thing: a\r\n")])
    reply = post_once(raw, "/x")
    assert reply.headers["retry-after"] == "7" and reply.headers.get("x-thing") == "a"
    assert retry_after_header(reply.headers) == "7"


def test_reply_parsing_tries_each_place_a_json_object_may_sit_once() -> None:
    """The candidates come lazily: the whole reply first, then each fenced block once
    (an empty block is no candidate), then from the first brace to the last."""
    from llmecon.models._schema import _candidates

    reply = 'a ```json\n```\n b ```\n{"x":1}\n``` c'
    assert list(_candidates(reply)) == [reply, '{"x":1}']
    reply = 'Sure:\n```\n{"hours": 3}\n```\nor {"hours": 3}'
    assert list(_candidates(reply)) == [
        reply,
        '{"hours": 3}',
        '{"hours": 3}\n```\nor {"hours": 3}',
    ]
    assert list(_candidates('{"hours": 40}')) == ['{"hours": 40}']
    assert list(_candidates("   ")) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_reply_body_over_the_cap_fails_the_attempt_unread(chunked: bool) -> None:
    # A 300 MB reply was read whole: 1.8 GB of memory, then a MemoryError under a limit.
    from llmecon.models import ProviderError
    from llmecon.models._http import MAX_REPLY_BYTES

    huge = b'{"pad": "' + b"x" * (MAX_REPLY_BYTES + 10) + b'"}'
    with pytest.raises(ProviderError, match="reply is over 32 MB") as caught:
        post_once(_RawServer([_ok(huge, chunked=chunked)]))
    assert caught.value.retryable
    # a body at the cap is read as before, and so is a small chunked one
    at_cap = b'{"pad": "' + b"x" * (MAX_REPLY_BYTES - 12) + b'"}'
    assert len(at_cap) <= MAX_REPLY_BYTES
    assert post_once(_RawServer([_ok(at_cap, chunked=chunked)])).body == at_cap
    assert post_once(_RawServer([_ok(b'{"a": 1}', chunked=chunked)])).body == b'{"a": 1}'
