"""The Model wrapper with the in-package mock provider: no network, fast."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from llmecon.models import (
    BudgetExceededError,
    CallRecord,
    ChatMessage,
    GenerateConfig,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    StructuredOutputError,
    UnknownModelError,
    get_model,
    register_provider,
    resolve_model_name,
)
from llmecon.models._mock import MockProvider
from llmecon.models._pricing import price_of
from llmecon.models._types import Usage
from tests.models.conftest import FAST, PlannerProposal, WorkerDecision

MSGS = [ChatMessage(role="user", content="How many hours?")]


def run(coro):  # one async style: asyncio.run inside sync tests
    return asyncio.run(coro)


def test_mock_default_is_deterministic_and_schema_valid():
    model = get_model("mock/default")
    a = run(model.generate(MSGS, PlannerProposal))
    b = run(model.generate(MSGS, PlannerProposal))
    c = run(model.generate([ChatMessage(role="user", content="other")], PlannerProposal))
    assert a.text == b.text and a.parsed == b.parsed
    assert isinstance(a.parsed, PlannerProposal) and len(a.parsed.rates) == 7
    assert c.text != a.text
    seeded = run(model.generate(MSGS, PlannerProposal, GenerateConfig(seed=7)))
    assert seeded.text != a.text


def test_mock_honours_bounds_enums_and_lengths_over_many_requests():
    from typing import Literal

    from pydantic import BaseModel, Field

    class Ballot(BaseModel):
        choice: Literal["incumbent", "challenger"]
        score: float = Field(gt=0.5, le=0.75)
        hours: int = Field(ge=35, le=45)
        notes: list[str] = Field(min_length=2, max_length=3)
        extra: WorkerDecision | None = None

    model = get_model("mock/default")
    for i in range(300):
        out = run(model.generate([ChatMessage(role="user", content=str(i))], Ballot))
        assert 35 <= out.parsed.hours <= 45 and 0.5 < out.parsed.score <= 0.75
        assert 2 <= len(out.parsed.notes) <= 3


def test_scripted_outputs_repair_and_typed_failure():
    good = json.dumps({"hours": 40, "reason": "ok"})
    model = get_model("mock/default", outputs=["not json", '{"hours": 400}', good])
    out = run(model.generate(MSGS, WorkerDecision))
    # re-asks are repairs, not transport retries (each one also counted as a retry)
    assert out.parsed.hours == 40 and out.repairs == 2 and out.retries == 0
    assert out.raw_outputs == ["not json", '{"hours": 400}', good]
    # the re-ask showed the model its validation error
    provider = model.provider
    assert isinstance(provider, MockProvider)
    assert "less than or equal to 80" in provider.requests[-1][-1].content

    bad = get_model("mock/default", outputs=["nope"] * 3, config=GenerateConfig(max_repairs=2))
    with pytest.raises(StructuredOutputError) as info:
        run(bad.generate(MSGS, WorkerDecision))
    assert info.value.raw_outputs == ["nope"] * 3 and len(info.value.errors) == 3
    assert bad.failures == 1 and bad.calls == 1


def test_callable_responder_gets_messages_and_schema():
    seen = {}

    def responder(messages, schema):
        seen["schema"] = schema
        return json.dumps({"hours": len(messages[-1].content)})

    model = get_model("mock/x", responder=responder)
    out = run(model.generate(MSGS, WorkerDecision))
    assert out.parsed.hours == len(MSGS[-1].content)
    assert seen["schema"]["properties"]["hours"]["maximum"] == 80


def test_transient_errors_are_retried_then_typed_error():
    model = get_model(
        "mock/default",
        outputs=[
            RateLimitError("slow down", retry_after_s=0.05),
            ProviderError("boom", retryable=True),
        ],
        config=FAST,
    )
    t0 = time.perf_counter()
    out = run(model.generate(MSGS, WorkerDecision))
    assert time.perf_counter() - t0 >= 0.05  # Retry-After honoured
    assert out.retries == 2 and out.parsed is not None

    failing = get_model(
        "mock/default", outputs=[ProviderError("down", retryable=True)] * 10, config=FAST
    )
    with pytest.raises(ProviderError, match="gave up after 3 retries"):
        run(failing.generate(MSGS))
    assert failing.provider.remaining == 6  # 1 try + 3 retries, no more

    fatal = get_model(
        "mock/default", outputs=[ProviderError("bad request", status=400)] * 3, config=FAST
    )
    with pytest.raises(ProviderError):
        run(fatal.generate(MSGS))
    assert fatal.provider.remaining == 2  # not retried


def test_backoff_grows_and_is_jittered():
    model = get_model("mock/default")
    cfg = GenerateConfig(backoff_base_s=0.1, backoff_max_s=1.0)
    err = ProviderError("x", retryable=True)
    delays = [[model._backoff(k, err, cfg) for _ in range(50)] for k in range(5)]
    for k, ds in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**k)
        assert all(ceiling / 2 <= d <= ceiling for d in ds)
        assert len(set(ds)) > 40  # jittered
    assert model._backoff(0, RateLimitError("x", retry_after_s=120), cfg) <= 60 * 1.1 + 0.01
    # a short Retry-After does not stop the backoff's growth: callers a server at
    # capacity turned away together came back together, each time, until their retries
    # were spent (5 retries in a third of a second)
    short = RateLimitError("x", retry_after_s=0.05)
    for k in range(5):
        ceiling = min(1.0, 0.1 * 2**k)
        assert all(model._backoff(k, short, cfg) >= max(ceiling / 2, 0.05) for _ in range(50))


def test_callers_beyond_a_servers_capacity_are_all_answered_in_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmecon.testing.fake_servers import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with FakeOpenAIServer(latency_s=0.1, max_concurrency=2) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=GenerateConfig(max_retries=5)
        )

        async def ask_all() -> list[object]:
            try:
                return await asyncio.gather(
                    *(model.generate(MSGS, WorkerDecision) for _ in range(20)),
                    return_exceptions=True,
                )
            finally:
                await model.aclose()

        outs = run(ask_all())
    assert all(not isinstance(o, Exception) for o in outs), outs
    assert server.stats.faults["over_concurrency"] > 0  # the server turned callers away


def test_timeout_is_bounded_and_caller_keeps_going():
    slow = get_model(
        "mock/default",
        latency_s=5.0,
        config=GenerateConfig(timeout_s=0.1, max_retries=2, backoff_base_s=0.01),
    )
    t0 = time.perf_counter()
    with pytest.raises(ModelTimeoutError):
        run(slow.generate(MSGS, WorkerDecision))
    # 3 attempts × 0.1 s + backoff, with room for a loaded machine: well short of one
    # reply's 5 s
    assert time.perf_counter() - t0 < 4.5
    slow.provider.latency_s = 0.0
    assert run(slow.generate(MSGS, WorkerDecision)).parsed is not None
    assert slow.calls == 2 and slow.failures == 1


class _HangsThenAnswers(MockProvider):
    """Hangs (until cancelled) on its first ``hangs`` requests, then answers; records the
    timeout each attempt was given."""

    def __init__(self, hangs: int) -> None:
        super().__init__("default")
        self.hangs = hangs
        self.timeouts: list[float] = []

    async def generate(self, messages, spec, config):
        self.timeouts.append(config.timeout_s)
        if len(self.timeouts) <= self.hangs:
            await asyncio.Event().wait()  # never set: only the timeout ends it
        return await super().generate(messages, spec, config)


@pytest.mark.parametrize(
    ("growth_max", "expected"),
    [(4.0, [0.05, 0.1, 0.2, 0.2, 0.2]), (1.0, [0.05] * 5), (3.0, [0.05, 0.1, 0.15, 0.15, 0.15])],
)
def test_a_retry_after_a_timeout_gets_twice_the_time_up_to_the_cap(
    growth_max: float, expected: list[float]
) -> None:
    """A slow machine needs longer, not the same try again: each attempt after a
    timed-out one doubles its timeout, up to ``timeout_growth_max · timeout_s``; the
    provider gets the attempt's timeout (an SDK bounds its own request with it)."""
    from llmecon.models import Model

    provider = _HangsThenAnswers(hangs=4)
    cfg = GenerateConfig(
        timeout_s=0.05, max_retries=4, backoff_base_s=0.0, timeout_growth_max=growth_max
    )
    output = run(Model(provider, config=cfg).generate(MSGS, WorkerDecision))
    assert output.parsed is not None and output.retries == 4
    assert provider.timeouts == pytest.approx(expected)


def test_the_last_timeout_message_names_the_grown_time() -> None:
    from llmecon.models import Model

    provider = _HangsThenAnswers(hangs=10)
    cfg = GenerateConfig(timeout_s=0.05, max_retries=2, backoff_base_s=0.0)
    grown = r"no reply within 0\.2 s \(the timeout of 0\.05 s, doubled for each retry\)"
    with pytest.raises(ModelTimeoutError, match=grown):
        run(Model(provider, config=cfg).generate(MSGS, WorkerDecision))
    assert provider.timeouts == pytest.approx([0.05, 0.1, 0.2])


def test_other_failures_do_not_lengthen_the_timeout() -> None:
    provider = MockProvider("default")
    seen: list[float] = []
    original = provider.generate

    async def recording(messages, spec, config):
        seen.append(config.timeout_s)
        return await original(messages, spec, config)

    provider.generate = recording  # type: ignore[method-assign]
    provider.push(ProviderError("HTTP 503", status=503, retryable=True))
    provider.push(ProviderError("HTTP 503", status=503, retryable=True))
    from llmecon.models import Model

    cfg = GenerateConfig(timeout_s=0.5, max_retries=3, backoff_base_s=0.0)
    output = run(Model(provider, config=cfg).generate(MSGS, WorkerDecision))
    assert output.retries == 2 and seen == [0.5, 0.5, 0.5]


def test_on_call_records_every_call_as_json():
    records: list[CallRecord] = []
    model = get_model("mock/default", outputs=["bad", "bad", "bad"], on_call=records.append)
    with pytest.raises(StructuredOutputError):
        run(model.generate(MSGS, WorkerDecision))
    run(model.generate(MSGS, WorkerDecision))
    assert [r.ok for r in records] == [False, True]
    fail, ok = (json.loads(r.model_dump_json()) for r in records)
    assert fail["error_type"] == "StructuredOutputError" and fail["raw_outputs"] == ["bad"] * 3
    assert (
        ok["parsed"]["hours"] == json.loads(ok["text"])["hours"]
        and ok["schema_name"] == "WorkerDecision"
    )
    assert model.usage_total.input_tokens == sum(r.usage.input_tokens for r in records)


def test_budget_soft_and_hard_limits():
    model = get_model("mock/default")
    model.provider.model_name = "gpt-4o"  # priced like gpt-4o; mock reports 0, override below

    async def priced(messages, spec, config):
        from llmecon.models import ProviderResponse

        return ProviderResponse(
            text='{"hours": 1}', usage=Usage(input_tokens=1_000_000, output_tokens=0)
        )

    model.provider.generate = priced  # type: ignore[method-assign]
    per_call = price_of("gpt-4o")[0]  # USD per 1M input tokens, from litellm's map
    model.set_budget(1.6 * per_call, hard_limit_usd=2 * per_call)
    run(model.generate(MSGS, WorkerDecision))
    assert model.cost_total == pytest.approx(per_call) and not model.budget_exceeded
    run(model.generate(MSGS, WorkerDecision))
    assert model.budget_exceeded
    with pytest.raises(BudgetExceededError):
        run(model.generate(MSGS, WorkerDecision))


def test_cache_hits_return_the_same_output(tmp_path):
    a = get_model("mock/default", cache_dir=str(tmp_path))
    first = run(a.generate(MSGS, WorkerDecision))
    b = get_model("mock/default", cache_dir=str(tmp_path), responder=lambda m, s: '{"hours": 1}')
    second = run(b.generate(MSGS, WorkerDecision))
    assert second.cached and second.parsed == first.parsed and second.cost_usd == 0.0
    other = run(b.generate(MSGS, WorkerDecision, GenerateConfig(temperature=0.5)))
    assert not other.cached and other.parsed.hours == 1  # the settings are part of the key


def test_a_cache_that_cannot_be_written_warns_once_and_the_calls_go_on(tmp_path):
    from llmecon.models._cache import CacheWriteWarning

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache's folder would be")
    calls = []
    model = get_model("mock/default", cache_dir=str(blocked))
    model.on_call = calls.append
    with pytest.warns(CacheWriteWarning, match="is a file, not a folder") as caught:
        outputs = [
            run(model.generate(MSGS, WorkerDecision, GenerateConfig(temperature=t)))
            for t in (0.1, 0.2)
        ]
    (warning,) = [w for w in caught if w.category is CacheWriteWarning]
    assert str(warning.message).count(str(blocked)) == 1  # the file in the way, once
    assert all(not out.cached and out.parsed is not None for out in outputs)
    assert len(calls) == 2 and model.calls == 2  # recorded and counted
    assert blocked.read_text().startswith("a file")


def test_registry_resolution_and_extension():
    assert resolve_model_name("gpt-4o") == ("openai", "gpt-4o")
    assert resolve_model_name("claude-3-5-haiku-latest") == ("anthropic", "claude-3-5-haiku-latest")
    assert resolve_model_name("litellm/groq/llama3") == ("litellm", "groq/llama3")
    assert resolve_model_name("qwen2.5:0.5b", api_base="http://127.0.0.1:1/v1") == (
        "openai",
        "qwen2.5:0.5b",
    )
    assert resolve_model_name("local") == ("local", "smollm2-135m")
    with pytest.raises(UnknownModelError):
        resolve_model_name("qwen2.5:0.5b")
    register_provider(
        "replaytest", lambda name, api_base, **kw: MockProvider(name, outputs=["fixed"])
    )
    assert run(get_model("replaytest/run-1").generate(MSGS)).text == "fixed"


def test_generate_config_rejects_unknown_fields_and_merges():
    with pytest.raises(ValueError):
        GenerateConfig(temprature=0.1)  # type: ignore[call-arg]
    merged = GenerateConfig(max_retries=1, timeout_s=5).merged(GenerateConfig(timeout_s=2))
    assert merged.max_retries == 1 and merged.timeout_s == 2


def test_concurrency_limit_is_respected():
    model = get_model("mock/conc", latency_s=0.02, max_concurrency=5)
    in_flight = peak = 0
    original = model.provider.generate

    async def counting(*args):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await original(*args)
        finally:
            in_flight -= 1

    model.provider.generate = counting  # type: ignore[method-assign]

    async def many():
        return await asyncio.gather(*[model.generate(MSGS) for _ in range(40)])

    assert len(run(many())) == 40 and peak == 5


def test_import_is_lazy():
    code = (
        "import sys, llmecon.models, llmecon.cli.models; "
        "sdks = ('openai', 'anthropic', 'litellm', 'llama_cpp', 'aiohttp'); "
        "bad = [m for m in sdks if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_call_in_prompt_mode_records_the_instruction_it_appended():
    # structured_output "prompt" appends the schema to the system message; the record
    # named only the messages before it, so a log never showed what was sent.
    from llmecon.models._schema import schema_instruction, spec_for

    records: list[CallRecord] = []
    msgs = [ChatMessage(role="system", content="You work."), *MSGS]
    good = json.dumps({"hours": 40, "reason": "ok"})
    model = get_model("mock/default", outputs=[good, good, good], on_call=records.append)
    run(model.generate(msgs, WorkerDecision, GenerateConfig(structured_output="prompt")))
    run(model.generate(msgs, WorkerDecision))  # natively: nothing appended
    run(model.generate(msgs))  # no schema
    sent = model.provider.requests[0][0].content
    instruction = schema_instruction(spec_for(WorkerDecision))
    assert sent == "You work.\n\n" + instruction
    assert [r.schema_instruction for r in records] == [instruction, None, None]
    assert records[0].messages == msgs  # the rendered messages, as before
