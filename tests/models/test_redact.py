"""Secrets never leave the model layer: URLs, replies, parsed values, records, errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

import llmecon.models
from llmecon.models import (
    CallRecord,
    ChatMessage,
    GenerateConfig,
    MissingKeyError,
    ModelError,
    ProviderError,
    StructuredOutputError,
    get_model,
    redact,
    redact_url,
)
from llmecon.models._mock import MockProvider
from llmecon.models._model import Model
from llmecon.models._openai import OpenAIProvider
from llmecon.testing.fake_servers import FakeOpenAIServer, _Reply
from tests.models.conftest import WorkerDecision, generate_once

MSGS = [ChatMessage(role="user", content="Hours?")]
#: key-shaped (caught by shape too) and plain (caught only as an environment value)
SHAPED = "sk-test-SENTINEL-0123456789abcdef"
PLAIN = "PLAINsentinel-987654321"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("OPENAI_API_KEY", SHAPED)
    monkeypatch.setenv("MY_GATEWAY_TOKEN", PLAIN)
    return SHAPED, PLAIN


@pytest.mark.parametrize(
    ("url", "want"),
    [
        (
            "https://bob:hunter2@gw.example/v1?api_key=abc&model=x",
            "https://gw.example/v1?api_key=***&model=x",
        ),
        ("http://user@127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        (
            # ?code= is an Azure Functions key; ?deployment= tells fleet members apart
            "https://h/api?api-version=2024-06-01&code=abc&session=s&deployment=east&flag",
            "https://h/api?api-version=2024-06-01&code=***&session=***&deployment=east&flag",
        ),
        ("https://h/cb#access_token=zz&state=1", "https://h/cb#access_token=***&state=1"),
        ("https://u:p@[::1]:8080/v1?token=t", "https://[::1]:8080/v1?token=***"),
    ],
)
def test_redact_url_removes_userinfo_and_masks_secret_params(url, want):
    assert redact_url(url) == want


@pytest.mark.parametrize(
    ("url", "want"),
    [
        (
            "https://h/p?KEY=1&Token=2&access_token=3&sig=4&SECRET=5&password=6&apiKey=7",
            "https://h/p?KEY=***&Token=***&access_token=***&sig=***&SECRET=***&password=***"
            "&apiKey=***",
        ),
        (
            "https://h/p?x-api-key=1&client_secret=2&monkey=3&keys=4&a=&flag",
            "https://h/p?x-api-key=***&client_secret=***&monkey=3&keys=4&a=&flag",
        ),
        (
            "https://h/p?code=1&authorization=2&jwt=3&session=4&sessionid=5&pw=6&key1=7",
            "https://h/p?code=***&authorization=***&jwt=***&session=***&sessionid=***&pw=***"
            "&key1=***",
        ),
        (
            "https://h/p?userkey=1&api_key%5B%5D=2&page=3",
            "https://h/p?userkey=***&api_key%5B%5D=***&page=3",
        ),
    ],
)
def test_urls_in_free_text_lose_their_secret_looking_params(url, want):
    # in a server's reply or an error, only credential-looking names are masked
    assert redact(f"see {url} now") == f"see {want} now"


def test_redact_url_keeps_clean_urls_byte_for_byte():
    for url in (
        "http://127.0.0.1:8000/v1",
        "HTTP://Host.example/v1/?q=a%20b&model=gpt-4o#frag",
        "https://h/p?",
        "not a url at all",
    ):
        assert redact_url(url) == url
    assert llmecon.models.redact_url is redact_url


def test_the_parameters_of_a_server_url_are_masked_wherever_they_come_back(monkeypatch):
    # an echo of ?code=… in an error or a reply came out whole (only ?api_key= and a
    # few other names were masked)
    from llmecon.models import _redact

    monkeypatch.setattr(_redact, "_REGISTERED", set())
    base = "http://127.0.0.1:9/v1?code=AZFUNCKEY123&deployment=gpt-4o-mini"
    get_model("openai/m", api_base=base)
    encoded = base64.b64encode(b"AZFUNCKEY123").decode()
    said = redact(f"404: no such function (code AZFUNCKEY123, {encoded}) for gpt-4o-mini")
    # the key, not the other values (masked everywhere, they garbled replies)
    assert said == "404: no such function (code ***, ***) for gpt-4o-mini"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VERTEXAI_CREDENTIALS", "vertex-creds-0123456"),
        ("SNOWFLAKE_JWT", "snowflake-jwt-0123456"),
        ("CLARIFAI_PAT", "clarifai-pat-0123456"),
        ("HTTPS_PROXY", "http://puser:proxy-pw-0123456@127.0.0.1:3128"),
    ],
)
def test_credentials_litellm_and_proxies_read_are_masked(monkeypatch, name, value):
    # neither the names litellm reads them from nor a proxy's password were masked
    monkeypatch.setenv(name, value)
    if "@" not in value:
        assert redact(f"bad credentials: {value}") == "bad credentials: ***"
        return
    secret = "proxy-pw-0123456"
    pair = base64.b64encode(f"puser:{secret}".encode()).decode()
    said = redact(f"407 Proxy Authentication Required: {secret}, puser:{secret}; {pair}")
    assert secret not in said and pair not in said and "puser" not in said


def test_a_key_written_with_json_escapes_is_masked(secrets):
    # valid JSON, and json.loads gives the key back: the raw reply kept it
    escaped = "".join(f"\\u{ord(c):04X}" if c.isalpha() else c for c in PLAIN)
    reply = '{"hours": 40, "rationale": "my key is ' + escaped + '"}'
    assert json.loads(reply)["rationale"] == f"my key is {PLAIN}"
    said = redact(reply)
    assert PLAIN not in json.loads(said)["rationale"] and "***" in said


def test_redact_url_masks_environment_secrets_too(secrets):
    assert redact_url(f"https://h/{PLAIN}/v1") == "https://h/***/v1"


def test_urls_in_error_text_lose_their_credentials():
    message = "cannot reach https://me:pw@h.example/v1?token=abc, retrying (see http://x.y/ok)."
    clean = redact(message)
    assert "pw" not in clean and "abc" not in clean
    assert clean == "cannot reach https://h.example/v1?token=***, retrying (see http://x.y/ok)."
    error = ProviderError("connection to http://u:secretpw@10.0.0.1/v1 failed")
    assert "secretpw" not in str(error) and "secretpw" not in repr(error)


def test_query_strings_echoed_without_their_url_are_masked():
    echoed = "HTTP 404: no route POST /v1/chat?api_key=qs-123&x=1 (see ?a=b#token=zz)."
    want = "HTTP 404: no route POST /v1/chat?api_key=***&x=1 (see ?a=b#token=***)."
    assert redact(echoed) == want


def test_url_credentials_and_a_key_together_are_refused(monkeypatch):
    monkeypatch.setenv("LLMECON_API_KEY", "sk-some-other-key-123456")
    base = "http://bob:pw-0xSECRET@127.0.0.1:9/v1"
    with pytest.raises(ModelError, match="carries a user name") as info:
        get_model("openai/m", api_base=base)
    assert "0xSECRET" not in str(info.value)
    monkeypatch.delenv("LLMECON_API_KEY")
    assert get_model("openai/m", api_base=base).provider.api_base == base


def test_url_credentials_are_refused_for_the_sdk_transport(monkeypatch):
    """The SDK sends a Bearer key (a placeholder without one), which its aiohttp backend
    refuses beside credentials in the URL: every call failed before any request, as a
    "connection failed (APIConnectionError)" that was retried."""
    monkeypatch.delenv("LLMECON_API_KEY", raising=False)
    base = "http://bob:pw-0xSECRET@127.0.0.1:9/v1"
    with pytest.raises(ModelError) as info:
        get_model("openai/m", api_base=base, transport="sdk")
    said = str(info.value)
    assert "carries credentials (user:password@), which the sdk transport cannot send" in said
    assert "use the http transport" in said and "0xSECRET" not in said and "bob" not in said
    assert get_model("openai/m", api_base=base).provider.transport == "http"


@pytest.mark.parametrize(
    ("name", "env", "api_base"),
    [
        ("openai/m", "LLMECON_API_KEY", "http://127.0.0.1:9/v1"),
        ("gpt-4o", "OPENAI_API_KEY", None),
        ("anthropic/claude-x", "ANTHROPIC_API_KEY", None),
        ("litellm/openai/m", "LLMECON_API_KEY", "http://127.0.0.1:9/v1"),
        # without a base, the key litellm reads for its provider (it was not checked)
        ("litellm/gpt-4o", "OPENAI_API_KEY", None),
        ("litellm/groq/llama-3.1-8b-instant", "GROQ_API_KEY", None),
    ],
)
@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("sk-key-with-a-cr-0123\r", "ends with a line break (\\r)"),
        ("sk-key-with-crlf-0123\r\n", "ends with a line break (\\r, \\n)"),
        ("sk-key\x07bell-0123", "holds a control character (\\x07) at character 7 of 16"),
    ],
)
def test_a_key_holding_a_line_break_is_refused_naming_its_variable(
    monkeypatch, name, env, api_base, value, said
):
    """A key with a trailing CR (a .env file with Windows line endings) failed every
    request with "unexpected ValueError: Forbidden control character detected in
    headers. Potential header injection attack", naming neither the key nor its
    variable, until the failure-share rule stopped the run."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ModelError) as info:
        get_model(name, api_base=api_base)
    assert isinstance(info.value, MissingKeyError)
    message = str(info.value)
    assert message.startswith(f"{env} {said}") and f"set {env} to the key alone" in message
    assert value.strip() not in message and "bell" not in message


def test_endpoints_and_reprs_never_show_credentials():
    base = "http://admin:pa55w0rd@127.0.0.1:9/v1?api_key=qwerty123"
    provider = OpenAIProvider("m", api_base=base)
    model = Model(provider)
    for text in (provider.endpoint, repr(provider), repr(model)):
        assert "pa55w0rd" not in text and "qwerty123" not in text and "admin" not in text
        assert "127.0.0.1:9/v1" in text
    assert provider.api_base == base  # the request still goes to the real URL


def _echo(messages, schema) -> str:
    body = json.dumps({"hours": 12, "reason": f"key {SHAPED} and {PLAIN}"})
    return f"Using {SHAPED} / {PLAIN}:\n```json\n{body}\n```"


def test_replies_echoing_keys_are_redacted_everywhere(secrets):
    records: list[CallRecord] = []
    model = get_model("mock/default", responder=_echo, on_call=records.append)
    out = asyncio.run(model.generate(MSGS, WorkerDecision))
    assert out.parsed.reason == "key *** and ***"
    dumped = json.dumps([out.text, out.raw_outputs, records[0].model_dump(mode="json")])
    assert SHAPED not in dumped and PLAIN not in dumped
    assert records[0].parsed == {"hours": 12, "reason": "key *** and ***"}
    assert records[0].raw_outputs[0].startswith("Using *** / ***:")


def test_a_re_ask_never_sends_the_key_back_and_failures_are_redacted(secrets):
    records: list[CallRecord] = []
    bad = f"I cannot answer; my key is {PLAIN}"
    model = get_model(
        "mock/default",
        outputs=[bad, bad],
        on_call=records.append,
        config=GenerateConfig(max_repairs=1),
    )
    with pytest.raises(StructuredOutputError) as info:
        asyncio.run(model.generate(MSGS, WorkerDecision))
    provider = model.provider
    assert isinstance(provider, MockProvider) and len(provider.requests) == 2
    assert all(PLAIN not in m.content for r in provider.requests for m in r)
    assert PLAIN not in json.dumps(info.value.raw_outputs)
    (record,) = records
    assert record.raw_outputs == ["I cannot answer; my key is ***"] * 2
    assert PLAIN not in record.model_dump_json()


def test_cache_entries_are_redacted_when_read(secrets, tmp_path):
    model = get_model("mock/default", cache_dir=str(tmp_path), responder=_echo)
    key = model._cache_key(MSGS, None, False, model.config)
    old = f"old entry with {PLAIN}"
    model.cache.put(key, {"text": old, "raw_outputs": [old]})
    records: list[CallRecord] = []
    model.on_call = records.append
    out = asyncio.run(model.generate(MSGS))
    assert out.cached and out.text == "old entry with ***"
    assert out.raw_outputs == ["old entry with ***"]
    assert PLAIN not in records[0].model_dump_json()


def test_a_secret_set_during_a_call_is_masked_in_its_record(monkeypatch):
    """Replies are redacted as they arrive; the record redacts them again when the
    secrets changed since (here: a key set between a reply and its re-ask)."""
    late = "LATEsecret-24681357"
    monkeypatch.delenv("MY_LATE_TOKEN", raising=False)
    replies = iter([f"not JSON, but {late}", '{"hours": 7}'])

    def respond(messages, schema) -> str:
        if len(messages) > 1:  # the re-ask: the secret appears in the environment now
            monkeypatch.setenv("MY_LATE_TOKEN", late)
        return next(replies)

    records: list[CallRecord] = []
    model = get_model("mock/default", responder=respond, on_call=records.append)
    out = asyncio.run(model.generate(MSGS, WorkerDecision))
    assert out.parsed.hours == 7 and out.raw_outputs[0] == f"not JSON, but {late}"
    (record,) = records
    assert record.raw_outputs == ["not JSON, but ***", '{"hours": 7}']
    assert late not in record.model_dump_json()


def test_records_of_an_unchanged_environment_keep_the_replies_as_redacted(secrets):
    records: list[CallRecord] = []
    model = get_model("mock/default", responder=_echo, on_call=records.append)
    for _ in range(2):
        out = asyncio.run(model.generate(MSGS, WorkerDecision))
        assert records[-1].raw_outputs == out.raw_outputs and records[-1].text == out.text
        assert records[-1].usage == out.usage and records[-1].latency_s > 0
    assert model.usage_total.input_tokens == sum(r.usage.input_tokens for r in records)


class _EchoingServer(FakeOpenAIServer):
    """Answers with the Authorization header it got: bare, as base64, and decoded."""

    def received_key(self, headers: dict[str, str]) -> str:
        self.authorization = headers.get("authorization", "")
        return super().received_key(headers)

    def completion(self, request: dict[str, Any], fault: str) -> _Reply:
        reply = super().completion(request, fault)
        payload = json.loads(reply.body)
        token = self.authorization.split(" ", 1)[-1]
        pair = base64.b64decode(token).decode()
        echo = f"key {token} and header {self.authorization}; {pair}, {pair.split(':', 1)[1]}"
        payload["choices"][0]["message"]["content"] = echo
        return _Reply(reply.status, json.dumps(payload).encode(), reply.headers)


def test_a_server_echoing_url_credentials_never_gets_them_into_a_record(monkeypatch):
    """A base URL's ``user:pass`` went out as ``Basic <base64>``; a server echoing the
    token bare put it (or the password, or the pair) into raw_outputs, calls.csv and the
    report: only ``Basic <base64>`` and ``user:pass@`` in a URL were masked."""
    monkeypatch.delenv("LLMECON_API_KEY", raising=False)
    user, password = "auditUSER", "AUDITpass-4711"
    pair = f"{user}:{password}"
    token = base64.b64encode(pair.encode()).decode()
    records: list[CallRecord] = []
    with _EchoingServer() as server:
        base = server.base_url.replace("http://", f"http://{user}:{password}@")
        model = get_model("openai/fake", api_base=base, on_call=records.append)
        out = asyncio.run(generate_once(model, MSGS, None))
        assert server.authorization == f"Basic {token}"  # the credentials were sent
    (record,) = records
    logged = record.model_dump_json()
    for text in (out.text, logged, redact(f"{password} {pair} {token}")):
        assert password not in text and pair not in text and token not in text
    assert "key *** and header Basic ***" in out.text


def test_a_key_echoed_upper_cased_or_in_base64_is_masked(secrets):
    # exact matching missed a key a server sent back altered (not shaped like sk-…)
    encoded = base64.b64encode(PLAIN.encode()).decode()
    said = redact(f"401: key {PLAIN.upper()} ({PLAIN.lower()}; {encoded}) refused")
    assert said == "401: key *** (***; ***) refused"


def test_endpoints_told_apart_by_a_plain_parameter_stay_apart(monkeypatch):
    # masking every parameter of a server URL made a fleet of ?deployment=east and
    # ?deployment=west "an endpoint listed twice", and two models share one limit
    from llmecon.models import _redact

    monkeypatch.setattr(_redact, "_REGISTERED", set())
    east, west = "http://127.0.0.1:9/v1?deployment=east", "http://127.0.0.1:9/v1?deployment=west"
    fleet = get_model("openai/x", api_base=[east, west])
    assert [m.label for m in fleet.provider.members] == [east, west]
    a, b = get_model("openai/x", api_base=east), get_model("openai/x", api_base=west)
    assert a.provider.endpoint != b.provider.endpoint and a.limiter is not b.limiter
    assert redact("OpenAI's gpt-4o-mini, in east") == "OpenAI's gpt-4o-mini, in east"
