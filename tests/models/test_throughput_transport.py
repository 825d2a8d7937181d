"""The HTTP transport (``llmecon.models._http``, tuned aiohttp) on the wire, and worker calls that
start while later prompts are still being rendered."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest

from llmecon.agents.llm_workers import gather_streaming
from llmecon.models import ChatMessage, ProviderError, get_model
from llmecon.models._http import HttpClient, HttpResponse
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.models.conftest import FAST, WorkerDecision, generate_once

MSGS = [ChatMessage(role="user", content="Hours?")]


class _RawServer:
    """A scripted HTTP/1.1 server on 127.0.0.1: ``replies`` are sent as raw bytes, one
    per request, and every request's head is kept."""

    def __init__(self, replies: list[bytes], close_after_each: bool = False) -> None:
        self.replies = list(replies)
        self.close_after_each = close_after_each
        self.heads: list[str] = []
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head.decode("latin-1"))
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                writer.write(self.replies.pop(0))
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self):
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.close()
            await server.wait_closed()


def _ok(body: bytes, *, chunked: bool = False, extra: str = "") -> bytes:
    if not chunked:
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    half = len(body) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:])
    )
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def post_once(raw: _RawServer, path: str = "/") -> HttpResponse:
    """One request through a fresh ``HttpClient`` to ``raw``: its reply."""

    async def run() -> HttpResponse:
        async with raw.running() as url:
            client = HttpClient(url, {})
            try:
                return await client.post_json(path, b"{}", "m")
            finally:
                await client.close()

    return asyncio.run(run())


def test_chunked_and_sized_replies_on_one_kept_alive_connection():
    replies = [_ok(b'{"a": 1}'), _ok(b'{"b": 22}', chunked=True), _ok(b'{"c": 3}')]
    raw = _RawServer(replies)
    url_host: list[str] = []

    async def run():
        async with raw.running() as url:
            url_host.append(url.removeprefix("http://"))
            client = HttpClient(url + "/v1", {"authorization": "Bearer k"})
            try:
                return [
                    await client.post_json(
                        "/v1/x?api-version=1", json.dumps({"i": i}).encode(), "m"
                    )
                    for i in range(3)
                ]
            finally:
                await client.close()

    first, second, third = asyncio.run(run())
    assert [json.loads(r.body) for r in (first, second, third)] == [{"a": 1}, {"b": 22}, {"c": 3}]
    assert first.status == 200 and first.headers["content-type"] == "application/json"
    assert raw.connections == 1  # one kept-alive connection served all three
    assert raw.heads[0].startswith("POST /v1/x?api-version=1 HTTP/1.1\r\n")
    assert "authorization: Bearer k" in raw.heads[0]
    assert f"host: {url_host[0]}\r\n" in raw.heads[0].lower()


def test_a_closed_idle_connection_is_replaced_and_the_request_resent():
    raw = _RawServer([_ok(b"{}"), _ok(b'{"again": true}')], close_after_each=True)

    async def run():
        async with raw.running() as url:
            client = HttpClient(url, {})
            try:
                await client.post_json("/a", b"{}", "m")
                await asyncio.sleep(0.05)  # the server has closed the connection by now
                return await client.post_json("/b", b"{}", "m")
            finally:
                await client.close()

    assert json.loads(asyncio.run(run()).body) == {"again": True}
    assert raw.connections == 2


def test_connection_close_and_read_to_end_replies():
    body = b'{"to": "end"}'
    replies = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body]
    raw = _RawServer(replies, close_after_each=True)
    assert post_once(raw).body == body


def test_user_info_in_the_url_becomes_basic_auth():
    raw = _RawServer([_ok(b"{}")])

    async def run():
        async with raw.running() as url:
            client = HttpClient(url.replace("http://", "http://us%40er:p%3Ass@"), {})
            try:
                await client.post_json("/", b"{}", "m")
            finally:
                await client.close()

    asyncio.run(run())
    token = base64.b64encode(b"us@er:p:ss").decode()
    assert f"authorization: Basic {token}\r\n" in raw.heads[0]
    assert "us%40er" not in raw.heads[0]


def test_a_refused_connection_is_a_retryable_provider_error():
    model = get_model(
        "openai/fake",
        api_base="http://127.0.0.1:9/v1",
        config=FAST.merged(None).model_copy(update={"max_retries": 1}),
    )
    with pytest.raises(ProviderError, match=r"connection to .* failed") as info:
        asyncio.run(generate_once(model, MSGS))
    assert info.value.retryable and "gave up after 1 retries" in str(info.value)


def test_many_concurrent_calls_share_few_connections(monkeypatch):
    import aiohttp

    from llmecon.models import _http

    made: list[int] = []

    async def on_new_connection(*_: object) -> None:
        made.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_new_connection)
    monkeypatch.setattr(_http.HttpClient, "trace_configs", (trace,))
    with FakeOpenAIServer(latency_s=0.01) as server:
        model = get_model("openai/fake", api_base=server.base_url, max_concurrency=8, config=FAST)

        async def run():
            try:
                for _ in range(3):  # later rounds reuse the first round's connections
                    await asyncio.gather(*[model.generate(MSGS, WorkerDecision) for _ in range(8)])
                return len(made)
            finally:
                await model.aclose()

        connections = asyncio.run(run())
    assert server.stats.requests == 24 and 1 <= connections <= 8


def test_calls_start_while_later_ones_are_still_to_be_rendered():
    """With ``gather_streaming`` a request leaves (its callback runs) before the last
    prompt is rendered; with a plain gather every prompt is rendered first."""

    def run(gather) -> tuple[list[int], list[int]]:
        sent: list[int] = []
        sent_at_render: list[int] = []

        async def call(i: int) -> int:
            sent_at_render.append(len(sent))  # the render step
            asyncio.get_running_loop().call_soon(sent.append, i)  # the request leaves
            await asyncio.sleep(0)
            return i

        async def main() -> list[int]:
            return await gather(call(i) for i in range(100))

        return asyncio.run(main()), sent_at_render

    results, streamed = run(lambda calls: gather_streaming(calls, chunk=10))
    assert results == list(range(100))  # in order, like gather
    assert streamed[:10] == [0] * 10 and streamed[-1] >= 80
    _, gathered = run(lambda calls: asyncio.gather(*calls))
    assert gathered[-1] == 0  # the baseline: nothing left before all were rendered


def test_gather_streaming_cancels_the_rest_when_one_call_raises():
    cancelled: list[int] = []

    async def call(i: int) -> int:
        if i == 3:
            raise RuntimeError("boom")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def run() -> None:
        await gather_streaming((call(i) for i in range(8)), chunk=2)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(run())
    assert len(cancelled) == 7


def test_slots_limit_concurrency_in_fifo_order_and_survive_cancellation():
    from llmecon.models._provider import Slots

    async def run() -> tuple[int, list[int]]:
        slots = Slots(3)
        inside, peak, order = 0, 0, []

        async def call(i: int) -> None:
            nonlocal inside, peak
            async with slots:
                inside += 1
                peak = max(peak, inside)
                order.append(i)
                await asyncio.sleep(0.001)
                inside -= 1

        tasks = [asyncio.ensure_future(call(i)) for i in range(30)]
        await asyncio.sleep(0)
        tasks[10].cancel()  # a waiter that gives up keeps no slot
        tasks[11].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with slots, slots, slots:  # every slot came back
            pass
        return peak, order

    peak, order = asyncio.run(run())
    assert peak == 3
    assert order == [i for i in range(30) if i not in (10, 11)]  # first come, first served


def _self_signed(tmp_path) -> tuple[str, str]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    args = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key]
    args += ["-out", cert, "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*args, "-addext", "subjectAltName=DNS:localhost"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_checks_the_certificate_and_works_with_a_trusted_one(tmp_path, monkeypatch):
    import ssl

    from llmecon.models import _http

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def post_once() -> bytes:
        raw = _RawServer([_ok(b'{"tls": true}')])
        server = await asyncio.start_server(raw._handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient(f"https://localhost:{port}/v1", {})
        try:
            return (await client.post_json("/v1/x", b"{}", "m")).body
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    # an untrusted certificate is refused
    with pytest.raises(ProviderError, match="certificate") as refused:
        asyncio.run(post_once())
    assert not refused.value.retryable
    # trusted (as a CA bundle would), the same server answers over TLS
    monkeypatch.setattr(_http, "_ssl_context", lambda: ssl.create_default_context(cafile=cert))
    assert json.loads(asyncio.run(post_once())) == {"tls": True}


def test_the_environment_proxy_is_used_and_no_proxy_respected(monkeypatch):
    """``HTTP_PROXY`` routes requests through the proxy (absolute URI in the request
    line); a host listed in ``NO_PROXY`` is reached directly."""
    raw = _RawServer([_ok(b'{"via": "proxy"}')])

    async def run() -> bytes:
        async with raw.running() as proxy_url:
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            monkeypatch.setenv("NO_PROXY", "")
            client = HttpClient("http://api.example.invalid/v1", {})
            try:
                return (await client.post_json("/v1/x", b"{}", "m")).body
            finally:
                await client.close()

    assert json.loads(asyncio.run(run())) == {"via": "proxy"}
    assert raw.heads[0].startswith("POST http://api.example.invalid/v1/x HTTP/1.1\r\n")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "api.example.invalid")
    assert HttpClient("http://api.example.invalid/v1", {})._proxy is None
