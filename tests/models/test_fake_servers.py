"""The real openai/anthropic SDK code paths (and the aiohttp transport) against the
fake servers on 127.0.0.1: every fault ends in bounded retries then a typed error."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from llmecon.models import (
    AuthError,
    ChatMessage,
    GenerateConfig,
    MissingKeyError,
    ModelError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    StructuredOutputError,
    get_model,
)
from llmecon.testing.fake_servers import FakeAnthropicServer, FakeOpenAIServer
from tests.models.conftest import FAST, SENTINEL, WorkerDecision, generate_once

MSGS = [
    ChatMessage(role="system", content="You are a worker."),
    ChatMessage(role="user", content="Hours?"),
]
# (model string, server class, provider args)
TARGETS = [
    pytest.param("openai/fake", FakeOpenAIServer, {"transport": "sdk"}, id="openai-sdk"),
    pytest.param("openai/fake", FakeOpenAIServer, {"transport": "http"}, id="openai-http"),
    pytest.param(
        "anthropic/claude-test", FakeAnthropicServer, {"transport": "sdk"}, id="anthropic-sdk"
    ),
    pytest.param(
        "anthropic/claude-test", FakeAnthropicServer, {"transport": "http"}, id="anthropic-http"
    ),
]
# fault -> the typed error after bounded retries (None: repaired by a re-ask)
FAULTS = {
    "429": RateLimitError,
    "500": ProviderError,
    "503": ProviderError,
    "hang": ModelTimeoutError,
    "malformed_body": ProviderError,
    "truncated_body": ProviderError,
    "malformed_json": StructuredOutputError,
    "truncated_json": StructuredOutputError,
    "wrong_schema": StructuredOutputError,
    "401": AuthError,
}


async def _call(model, schema=WorkerDecision, config=None):
    return await generate_once(model, MSGS, schema, config)


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
def test_happy_path_structured_and_text(name, server_cls, args, sentinel_keys):
    with server_cls() as server:
        model = get_model(name, api_base=server.base_url, config=FAST, **args)
        out = asyncio.run(_call(model))
        assert isinstance(out.parsed, WorkerDecision)
        assert out.usage.input_tokens > 0 and out.usage.output_tokens > 0
        text = asyncio.run(_call(model, schema=None))
        assert text.text == "Hello from the fake server." and text.parsed is None
        body = server.stats.bodies[0]
        # the schema travelled provider-natively
        assert (
            "response_format" in body or body.get("tool_choice", {}).get("name") == "WorkerDecision"
        )


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_bounded_then_typed(name, server_cls, args, fault, sentinel_keys):
    # a short timeout only where the server never answers: elsewhere a reply slowed by a
    # loaded machine must not be taken for a hang
    timeout = 0.5 if fault == "hang" else 10.0
    config = GenerateConfig(timeout_s=timeout, max_retries=2, max_repairs=1, backoff_base_s=0.001)
    with server_cls(faults=[fault] * 10, retry_after_s=0.05) as server:
        model = get_model(name, api_base=server.base_url, config=config, **args)
        t0 = time.perf_counter()
        with pytest.raises(FAULTS[fault]) as info:
            asyncio.run(_call(model))
        elapsed = time.perf_counter() - t0
        assert SENTINEL not in str(info.value) and SENTINEL not in repr(info.value)
        if fault == "401":
            assert server.stats.requests == 1  # auth errors fail fast, never retried
        elif FAULTS[fault] is StructuredOutputError:
            assert server.stats.requests == 2  # one try + one re-ask
        else:
            assert server.stats.requests == 3  # one try + two retries
        if fault == "hang":  # the SDKs were given each attempt's longer timeout
            assert elapsed >= 0.5 * (1 + 2 + 4)
            # and gave up: bounded by its timeouts (a retry after a timeout gets twice
            # the time), with room for a loaded machine
            assert elapsed < 0.5 * (1 + 2 + 4) + 30
        if fault == "429":
            assert elapsed >= 2 * 0.05  # Retry-After honoured
        # the caller keeps going: once the faults stop, the same model works
        server.script.clear()
        assert asyncio.run(_call(model)).parsed is not None


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
def test_a_redirect_is_not_followed_with_the_key(name, server_cls, args, sentinel_keys):
    # aiohttp drops Authorization on a redirect to another origin, not x-api-key: the
    # Anthropic key went on to whatever address the server named.
    with server_cls(faults=["307"] * 5) as server:
        model = get_model(name, api_base=server.base_url, config=FAST, **args)
        with pytest.raises(ModelError) as info:
            asyncio.run(_call(model))
        assert server.stats.requests == 1  # neither followed nor retried
        message = str(info.value)
        assert "redirected" in message and SENTINEL not in message
        if args["transport"] == "http":
            assert f"to http://localhost:{server.port}/" in message


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
def test_transient_faults_recover(name, server_cls, args, sentinel_keys):
    with server_cls(faults=["ok", "429", "500", "hang", "truncated_json"]) as server:
        config = FAST.merged(GenerateConfig(timeout_s=2.0))
        model = get_model(name, api_base=server.base_url, config=config, **args)
        # a first call builds the SDK's client, which on a loaded machine took longer
        # than the hang's timeout and was taken for a second hang
        assert asyncio.run(_call(model)).retries == 0
        out = asyncio.run(_call(model))
        # three transport faults retried; the truncated reply re-asked (a repair)
        assert out.parsed is not None and out.retries == 3 and out.repairs == 1


def test_server_concurrency_limit_is_never_hit_with_endpoint_limit(sentinel_keys):
    with FakeOpenAIServer(latency_s=0.02, max_concurrency=8) as server:
        model = get_model("openai/fake", api_base=server.base_url, max_concurrency=8, config=FAST)

        async def many():
            try:
                return await asyncio.gather(
                    *[model.generate(MSGS, WorkerDecision) for _ in range(60)]
                )
            finally:
                await model.aclose()

        outs = asyncio.run(many())
        assert len(outs) == 60 and server.stats.max_in_flight <= 8
        assert server.stats.faults["over_concurrency"] == 0


def test_run_level_caller_keeps_going_with_mixed_faults(sentinel_keys):
    with FakeOpenAIServer(
        fault_rates={"500": 0.2, "wrong_schema": 0.2, "hang": 0.05}, seed=3
    ) as server:
        config = GenerateConfig(timeout_s=2.0, max_retries=1, max_repairs=0, backoff_base_s=0.001)
        model = get_model("openai/fake", api_base=server.base_url, config=config)

        async def year():
            try:
                return await asyncio.gather(
                    *[model.generate(MSGS, WorkerDecision) for _ in range(100)],
                    return_exceptions=True,
                )
            finally:
                await model.aclose()

        results = asyncio.run(year())
        ok = [r for r in results if not isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, BaseException)]
        assert ok and errors
        assert all(
            isinstance(e, ProviderError | StructuredOutputError | ModelTimeoutError) for e in errors
        )
        assert model.calls == 100 and model.failures == len(errors)


def test_missing_key_fails_fast(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY is not set: set it, or give"):
        get_model("gpt-4o")
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        get_model("claude-sonnet-4-5")


def test_no_secret_leaks(sentinel_keys, caplog, capfd):
    """A sentinel key in the environment never shows up in logs, errors or reprs, even
    when the server echoes the key back in its error message."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    records = []
    for name, server_cls in (
        ("anthropic/claude-x", FakeAnthropicServer),
        ("openai/fake", FakeOpenAIServer),
    ):
        with server_cls(faults=["429", "500", "401"], api_key=None) as server:
            model = get_model(name, api_base=server.base_url, config=FAST, on_call=records.append)
            with pytest.raises(AuthError) as info:
                asyncio.run(_call(model))
            texts += [str(info.value), repr(info.value), repr(model), repr(model.provider)]
    # the openai SDK path against "api.openai.com"-like host sends OPENAI_API_KEY: echo it
    with FakeOpenAIServer(faults=["401"]) as server:
        model = get_model("openai/fake", api_base=server.base_url, config=FAST, transport="sdk")
        model.provider._key_env = lambda: "OPENAI_API_KEY"  # type: ignore[method-assign]
        with pytest.raises(AuthError) as info:
            asyncio.run(_call(model))
        assert "***" in str(info.value)  # the echoed key was there, and was masked
        texts.append(str(info.value))
    texts += [r.model_dump_json() for r in records]
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    assert all(SENTINEL not in t for t in texts)
    assert any("Incorrect API key provided" in t for t in texts)


def test_llmecon_key_is_sent_to_self_hosted_servers_not_openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("LLMECON_API_KEY", "local-server-key")
    with FakeOpenAIServer(api_key="local-server-key") as server:
        model = get_model("openai/fake", api_base=server.base_url, config=FAST)
        assert asyncio.run(_call(model)).parsed is not None  # 401 otherwise


@pytest.mark.parametrize(
    ("name", "args", "module"),
    [
        (
            "openai/fake",
            {"transport": "sdk", "api_base": "http://127.0.0.1:9/v1"},
            "openai.resources.chat.completions",
        ),
        (
            "anthropic/claude-test",
            {"transport": "sdk", "api_base": "http://127.0.0.1:9"},
            "anthropic",
        ),
    ],
)
def test_sdk_is_imported_when_the_model_is_built_not_inside_a_request(name, args, module):
    """A lazy SDK import (1–2 s) inside the first request would eat its timeout."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from llmecon.models import get_model\n"
        f"get_model({name!r}, **{args!r})\n"
        f"print({module!r} in sys.modules)\n"
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-x"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout.strip().lower()) is True


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
def test_sampling_settings_reach_the_server(name, server_cls, args, sentinel_keys):
    """``temperature`` and ``top_p`` are sent by every SDK path (the anthropic SDK 2.x
    has no keyword for them: they go in the request body)."""
    with server_cls() as server:
        model = get_model(name, api_base=server.base_url, config=FAST, **args)
        config = GenerateConfig(temperature=0.25, top_p=0.5, max_tokens=40)
        reply = asyncio.run(_call(model, config=config))
        body = server.stats.bodies[-1]
    assert reply.parsed is not None
    assert body["temperature"] == 0.25 and body["top_p"] == 0.5


@pytest.mark.parametrize(
    ("name", "server_cls"),
    [("openai/fake", FakeOpenAIServer), ("anthropic/claude-test", FakeAnthropicServer)],
    ids=["openai", "anthropic"],
)
def test_sdk_transport_rides_the_sdks_aiohttp_backend_and_closes_it(name, server_cls, monkeypatch):
    """The SDK transport uses the SDK's own aiohttp backend (its httpx pool costs several
    times the CPU per call, benchmarks/bench_throughput.py); closing the model closes
    the aiohttp session."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-key")
    with server_cls() as server:
        model = get_model(name, api_base=server.base_url, config=FAST, transport="sdk")

        async def go():
            out = await model.generate(MSGS, WorkerDecision)
            transport = model.provider._clients.get()._client._transport
            session = transport.client
            await model.aclose()
            return out, transport, session

        out, transport, session = asyncio.run(go())
    assert out.parsed is not None
    assert type(transport).__name__ == "AiohttpTransport"
    assert session.closed


def test_sdk_without_an_aiohttp_backend_takes_its_httpx_pool_neither_following_redirects():
    from types import SimpleNamespace

    from llmecon.models._provider import sdk_aiohttp_client

    def missing_extra(**options: object) -> object:
        raise RuntimeError("install the package with the aiohttp extra")

    def client(**options: object) -> object:
        return options

    assert sdk_aiohttp_client(SimpleNamespace()) is None  # an SDK version without either
    assert sdk_aiohttp_client(SimpleNamespace(DefaultAioHttpClient=missing_extra)) is None
    # (the SDKs' own clients follow redirects by default, with the key)
    assert sdk_aiohttp_client(SimpleNamespace(DefaultAioHttpClient=client)) == {
        "follow_redirects": False
    }
    pool = SimpleNamespace(DefaultAioHttpClient=missing_extra, DefaultAsyncHttpxClient=client)
    assert sdk_aiohttp_client(pool) == {"follow_redirects": False}


@pytest.mark.parametrize("transport", ["http", "sdk"])
def test_a_context_length_400_keeps_the_schema_and_a_format_400_drops_it_saying_so(
    transport, sentinel_keys, caplog
):
    """Only a 400 about the structured-output request switches a self-hosted server's
    dialect (with a warning); a prompt beyond the context is an error of its own."""
    with FakeOpenAIServer(faults=["400_context"]) as server:
        model = get_model("openai/fake", api_base=server.base_url, config=FAST, transport=transport)
        with pytest.raises(ProviderError, match="maximum context length"):
            asyncio.run(_call(model))
        assert asyncio.run(_call(model)).parsed is not None
        assert all("response_format" in body for body in server.stats.bodies)
    with caplog.at_level(logging.WARNING), FakeOpenAIServer(faults=["400_format"]) as server:
        model = get_model("openai/fake", api_base=server.base_url, config=FAST, transport=transport)
        assert asyncio.run(_call(model)).parsed is not None
        first, second = list(server.stats.bodies)[:2]
        assert first["response_format"] != second["response_format"]
    assert "refused the structured-output request" in caplog.text


class _NoStructuredOutputServer(FakeOpenAIServer):
    """A server without structured output: any request with a ``response_format`` gets
    400. The refusals of the first ``wave`` requests (all sent in the first dialect) are
    held until the whole wave has arrived, so that they come back to calls racing on the
    shared dialect whatever the scheduling."""

    def __init__(self, wave: int, **options: Any) -> None:
        super().__init__(**options)
        self.wave = wave
        self.refused: list[str] = []  # the dialects refused, in order
        self._arrived: asyncio.Event | None = None

    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes):
        request = json.loads(body or b"{}")
        fmt = request.get("response_format")
        if fmt is None:
            return await super().handle(method, path, headers, body)
        self.stats.bodies.append(request)
        self.refused.append(fmt["type"])
        if self._arrived is None:
            self._arrived = asyncio.Event()
        if len(self.refused) >= self.wave:
            self._arrived.set()
        assert self._stopping is not None
        waits = [asyncio.ensure_future(e.wait()) for e in (self._arrived, self._stopping)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        return self._error(400, "invalid_request_error", "response_format is not supported")


@pytest.mark.parametrize("transport", ["http", "sdk"])
def test_concurrent_format_refusals_move_the_dialect_once_per_step(
    transport, sentinel_keys, caplog
):
    """Concurrent calls refused in a dialect another call has already given up are sent
    again in the current one: every call succeeds, and each step is taken (and said)
    once. Before, every refusal moved the shared dialect on: the 3rd refusal of the
    first wave found it at the last step and failed its call."""
    calls = 8
    with caplog.at_level(logging.WARNING), _NoStructuredOutputServer(calls) as server:
        model = get_model(
            "openai/fake",
            api_base=server.base_url,
            config=FAST.model_copy(update={"timeout_s": 30.0}),
            transport=transport,
            max_concurrency=calls,
        )

        async def go():
            try:
                return await asyncio.gather(
                    *(model.generate(MSGS, WorkerDecision) for _ in range(calls))
                )
            finally:
                await model.aclose()

        outs = asyncio.run(go())
    assert all(isinstance(out.parsed, WorkerDecision) for out in outs)
    assert model.failures == 0
    # the first wave all in json_schema; json_object only after it, never json_schema again
    assert server.refused[:calls] == ["json_schema"] * calls
    assert set(server.refused[calls:]) <= {"json_object"}
    steps = [r.getMessage() for r in caplog.records if "refused the structured" in r.getMessage()]
    assert len(steps) == 2
    assert "'json_object_schema' dialect" in steps[0] and "'prompt' dialect" in steps[1]


@pytest.mark.parametrize(("name", "server_cls", "args"), TARGETS)
def test_a_reply_cut_at_the_token_limit_says_so(name, server_cls, args, sentinel_keys):
    """A reply the provider cut at ``max_tokens`` (``finish_reason`` ``length``,
    ``stop_reason`` ``max_tokens``) names the limit in the re-ask and in the error: a
    bare "Expecting value" told neither the user nor the model why."""
    config = FAST.model_copy(update={"max_tokens": 16, "max_repairs": 1})
    with server_cls(faults=["length", "ok"]) as server:
        model = get_model(name, api_base=server.base_url, config=config, **args)
        assert asyncio.run(_call(model)).parsed is not None
        reask = server.stats.bodies[1]["messages"][-1]["content"]
        assert "the reply was cut off at the 16-token limit (max_tokens)" in str(reask)
    with server_cls(faults=["length", "length"]) as server:
        model = get_model(name, api_base=server.base_url, config=config, **args)
        with pytest.raises(StructuredOutputError, match="cut off at the 16-token limit"):
            asyncio.run(_call(model))
    with server_cls(faults=["truncated_json", "truncated_json"]) as server:  # not said
        model = get_model(name, api_base=server.base_url, config=config, **args)
        with pytest.raises(StructuredOutputError) as info:
            asyncio.run(_call(model))
        assert "cut off" not in str(info.value)


def test_basic_credentials_echoed_by_a_server_are_masked():
    from llmecon.models import redact

    echoed = "Incorrect API key provided: Basic dXNlcjpzay10ZXN0LVNFQ1JFVDEyMw=="  # user:sk-…
    assert redact(echoed) == "Incorrect API key provided: Basic ***"
    assert redact("basic economics, Basic ABCDEFGHIJKL") == "basic economics, Basic ABCDEFGHIJKL"


def test_connection_errors_name_the_server_and_their_cause(sentinel_keys):
    dead = get_model("openai/fake", api_base="http://127.0.0.1:9/v1", config=FAST, transport="http")
    where = r"connection to http://127\.0\.0\.1:9 failed \("
    with pytest.raises(ProviderError, match=where) as info:
        asyncio.run(_call(dead))
    assert "Connect" in str(info.value)  # the cause, not only a class name
    with FakeOpenAIServer() as server:  # https:// to a plain-HTTP server: not retried
        tls = server.base_url.replace("http://", "https://")
        model = get_model("openai/fake", api_base=tls, config=FAST, transport="http")
        with pytest.raises(ProviderError, match="TLS handshake failed") as info:
            asyncio.run(_call(model))
    assert not info.value.retryable


@pytest.mark.parametrize("stdin", ["devnull", "pipe", "socket"])
def test_the_fake_server_from_a_shell_serves_until_stopped(stdin: str) -> None:
    """``python -m llmecon.testing.fake_servers openai &`` (stdin at /dev/null) serves
    until a signal (it exited at once, its stdin read to the end); spawned with a pipe
    or a socket pair as stdin, it exits cleanly when the parent closes its end."""
    import json
    import socket
    import subprocess
    import sys
    import urllib.request

    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmecon.testing.fake_servers", "openai"],
        stdin={"devnull": subprocess.DEVNULL, "pipe": subprocess.PIPE}.get(stdin, theirs),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().removeprefix("READY ")
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        request = urllib.request.Request(
            f"{base}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200 and json.load(reply)["choices"]
        assert proc.poll() is None  # still serving
        theirs.close()
        if stdin == "pipe":
            assert proc.stdin is not None
            proc.stdin.close()
        elif stdin == "socket":
            ours.close()
        else:
            proc.terminate()
        code = proc.wait(timeout=30)
        assert stdin == "devnull" or code == 0  # told by its parent: a clean exit
    finally:
        ours.close()
        theirs.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
