"""The ``http`` transports' per-call shortcuts do what the long way did: request bodies
spliced from parts encoded once are the bytes of encoding the whole, the one-coroutine
POST sends the request ``post`` sends, and a reply is still redacted."""

from __future__ import annotations

import asyncio
import os

import pytest
from pydantic import BaseModel

from llmecon.models import ChatMessage, GenerateConfig, ProviderError, get_model
from llmecon.models._http import HttpClient, encode_json
from llmecon.models._schema import spec_for
from tests.models.conftest import WorkerDecision
from tests.models.test_throughput_transport import _ok, _RawServer


class Choice(BaseModel):
    pick: str
    note: str = "é ✓"


CONFIGS = [
    GenerateConfig(),
    GenerateConfig(temperature=0.3, top_p=0.9, seed=7, stop=["\n\n", "END"], max_tokens=64),
    GenerateConfig(max_tokens=1),
    GenerateConfig(stop=["bad \ud800 surrogate"]),  # refused by pydantic-core: json.dumps
]
CONVERSATIONS = [
    [ChatMessage(role="user", content="Hours?")],
    [
        ChatMessage(role="system", content="You are a nurse. «Ünïcode» 数字"),
        ChatMessage(role="user", content='Say {"hours": 3}?'),
        ChatMessage(role="assistant", content="ok"),
        ChatMessage(role="system", content="second system"),
        ChatMessage(role="user", content="again"),
    ],
    [ChatMessage(role="user", content="lone \udc00 surrogate")],
    [ChatMessage(role="system", content="only a system prompt")],
]


def _whole(provider, messages, spec, config) -> bytes:
    body = provider._request_args(messages, spec, config)
    del body["timeout"]
    return encode_json(body)


@pytest.mark.parametrize("name", ["openai/fake", "openai/gpt-4o-mini", "anthropic/claude-x"])
def test_spliced_bodies_are_the_bytes_of_encoding_the_whole(name, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-key")
    api_base = None if name == "openai/gpt-4o-mini" else "http://127.0.0.1:9/v1"
    provider = get_model(name, api_base=api_base, transport="http").provider
    dialects = ["json_schema", "json_object_schema", "prompt"] if name == "openai/fake" else [""]
    for dialect in dialects:
        if dialect:
            provider._dialect = dialect
        # Each config twice in a row (the second from the kept parts) and the schemas
        # alternating: the parts follow every change.
        for config in [c for c in CONFIGS for _ in (0, 1)]:
            for spec in (spec_for(WorkerDecision), None, spec_for(Choice)):
                for messages in CONVERSATIONS:
                    spliced = provider._http_body(messages, spec, config)
                    assert spliced == _whole(provider, messages, spec, config)


def test_a_changed_dialect_or_model_name_changes_the_spliced_body():
    provider = get_model("openai/fake", api_base="http://127.0.0.1:9/v1").provider
    spec, config = spec_for(WorkerDecision), GenerateConfig()
    messages = CONVERSATIONS[0]
    first = provider._http_body(messages, spec, config)
    assert b'"type":"json_schema"' in first
    provider._dialect = "json_object_schema"
    assert b'"type":"json_object"' in provider._http_body(messages, spec, config)
    provider._dialect = "prompt"
    prompt = provider._http_body(messages, spec, config)
    assert b"response_format" not in prompt and b"JSON schema" in prompt
    provider._dialect = "json_schema"
    provider.model_name = "other"
    assert provider._http_body(messages, spec, config) == first.replace(b'"fake"', b'"other"')


def test_the_one_coroutine_post_sends_what_post_sends_and_get_no_content_type():
    raw = _RawServer([_ok(b'{"a": 1}'), _ok(b'{"b": 2}'), _ok(b"{}"), _ok(b"{}")])

    async def run():
        async with raw.running() as url:
            client = HttpClient(url + "/v1", {"authorization": "Bearer k", "x-extra": "1"})
            try:
                by_post = await client.post("/v1/x?api-version=1", b'{"i":1}')
                by_post_json = await client.post_json("/v1/x?api-version=1", b'{"i":1}', "m")
                await client.get("/v1/y")
                await client.post_json("/v1/z", b"{}", "m")
                return by_post, by_post_json
            finally:
                await client.close()

    by_post, by_post_json = asyncio.run(run())
    assert by_post.body == b'{"a": 1}' and by_post_json.body == b'{"b": 2}'
    assert by_post_json.status == 200 and by_post_json.headers["content-type"] == "application/json"
    assert raw.heads[0] == raw.heads[1]  # same request line, headers and their order
    assert raw.heads[0].startswith("POST /v1/x?api-version=1 HTTP/1.1\r\n")
    lines = raw.heads[0].split("\r\n")
    for line in ("authorization: Bearer k", "x-extra: 1", "content-type: application/json"):
        assert line in lines
    assert raw.heads[2].startswith("GET /v1/y HTTP/1.1\r\n")
    assert "authorization: Bearer k" in raw.heads[2] and "content-type" not in raw.heads[2].lower()
    assert raw.heads[3].startswith("POST /v1/z HTTP/1.1\r\n")


def test_the_one_coroutine_post_maps_a_refused_connection_as_before():
    async def run():
        client = HttpClient("http://127.0.0.1:9/v1", {})
        try:
            await client.post_json("/v1/chat/completions", b"{}", "openai/fake")
        finally:
            await client.close()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run())
    assert caught.value.retryable
    assert str(caught.value).startswith("openai/fake: connection to http://127.0.0.1:9 failed (")


def test_a_reply_is_redacted_with_the_secrets_in_force(monkeypatch):
    from llmecon.testing.fake_servers import FakeOpenAIServer

    secret = "topsecret-value-123"
    monkeypatch.setenv("LLMECON_API_KEY", secret)

    def responder(request, schema):
        return f'{{"hours": 3}} {secret}'

    with FakeOpenAIServer(responder=responder) as server:
        model = get_model("openai/fake", api_base=server.base_url, transport="http")

        async def run():
            try:
                return await model.generate(CONVERSATIONS[0], WorkerDecision)
            finally:
                await model.aclose()

        out = asyncio.run(run())
    assert out.parsed == WorkerDecision(hours=3)
    assert secret not in out.text and secret not in "".join(out.raw_outputs)
    assert "***" in out.text
    assert os.environ["LLMECON_API_KEY"] == secret
