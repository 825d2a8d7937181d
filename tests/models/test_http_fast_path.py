"""The ``http`` transports' one-coroutine POST: the client's headers with every
request, connection failures mapped as before, an environment proxy that never sees the
API key, and replies still redacted."""

from __future__ import annotations

import asyncio
import os

import pytest

from llmecon.models import ChatMessage, ProviderError, get_model
from llmecon.models._http import HttpClient
from tests.models.conftest import WorkerDecision
from tests.models.test_throughput_transport import _ok, _RawServer

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


def test_the_one_coroutine_post_sends_the_clients_headers_with_every_request():
    raw = _RawServer([_ok(b'{"a": 1}'), _ok(b'{"b": 2}')])

    async def run():
        async with raw.running() as url:
            client = HttpClient(url + "/v1", {"authorization": "Bearer k", "x-extra": "1"})
            try:
                first = await client.post_json("/v1/x?api-version=1", b'{"i":1}', "m")
                return first, await client.post_json("/v1/z", b"{}", "m")
            finally:
                await client.close()

    first, second = asyncio.run(run())
    assert first.body == b'{"a": 1}' and second.body == b'{"b": 2}'
    assert first.status == 200 and first.headers["content-type"] == "application/json"
    assert raw.heads[0].startswith("POST /v1/x?api-version=1 HTTP/1.1\r\n")
    assert raw.heads[1].startswith("POST /v1/z HTTP/1.1\r\n")  # URLs kept apart
    for head in raw.heads:
        lines = head.split("\r\n")
        for line in ("authorization: Bearer k", "x-extra: 1", "content-type: application/json"):
            assert line in lines


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


@pytest.mark.parametrize(
    "base", ["https://api.example.invalid/v1", "https://user:pw@api.example.invalid/v1"]
)
def test_an_environment_proxy_never_sees_the_api_key(
    monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    """Through ``HTTPS_PROXY`` the proxy gets a bare ``CONNECT``: no API key, no Basic
    credentials of the URL, no ``Proxy-Authorization`` made of them (aiohttp copies a
    session's default headers into the ``CONNECT``; the client sets none)."""
    raw = _RawServer([b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"])

    async def run() -> None:
        async with raw.running() as proxy_url:
            monkeypatch.setenv("HTTPS_PROXY", proxy_url)
            monkeypatch.setenv("NO_PROXY", "")
            headers = {"authorization": "Bearer sk-SECRET-1", "x-api-key": "sk-ant-SECRET-2"}
            client = HttpClient(base, headers)
            try:
                await client.post_json("/v1/messages", b"{}", "anthropic/x")
            finally:
                await client.close()

    with pytest.raises(ProviderError):
        asyncio.run(run())
    (head,) = raw.heads
    assert head.startswith("CONNECT api.example.invalid:443 HTTP/1.1\r\n")
    assert "SECRET" not in head and "dXNlcjpwdw" not in head  # base64 of user:pw
    assert "authorization" not in head.lower()
