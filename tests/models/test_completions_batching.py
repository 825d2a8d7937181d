"""List-prompt ``/v1/completions`` batching against the fake OpenAI server: the same
parsed decisions as one call per prompt, fewer requests, and a recorded fall back to
the chat path on servers without list support."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest

from llmecon.models import (
    AuthError,
    ChatMessage,
    GenerateConfig,
    Model,
    ModelTimeoutError,
    get_model,
)
from llmecon.models._completions import (
    CHAT_TEMPLATES,
    ChatTemplate,
    CompletionBatcher,
    split_tokens,
)
from llmecon.models._openai import OpenAIProvider
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.models.conftest import FAST, WorkerDecision

CALLS = 40


def _prompt(i: int) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
        ChatMessage(role="user", content=f"Week {i}: how many hours will you work?"),
    ]


def _hours_from_prompt(request: dict, schema: dict | None) -> str:
    """A responder whose answer depends only on the prompt's text (chat or completion)."""
    text = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
    week = int(re.findall(r"Week (\d+)", text)[-1])
    return json.dumps({"hours": (week * 7) % 81})


async def _decide(model, n: int = CALLS, return_exceptions: bool = False) -> list:
    try:
        return await asyncio.gather(
            *[model.generate(_prompt(i), WorkerDecision) for i in range(n)],
            return_exceptions=return_exceptions,
        )
    finally:
        await model.aclose()


def _batcher(model: Model) -> CompletionBatcher:
    provider = model.provider
    assert isinstance(provider, OpenAIProvider) and provider.batcher is not None
    return provider.batcher


def _hours(outs: list) -> list[int]:
    return [o.parsed.hours for o in outs]


def test_batched_completions_match_one_call_per_prompt():
    with FakeOpenAIServer(responder=_hours_from_prompt) as server:
        chat = get_model("openai/fake", api_base=server.base_url, config=FAST)
        per_prompt = _hours(asyncio.run(_decide(chat)))
        chat_requests = server.stats.requests
        batched = get_model(
            "openai/fake", api_base=server.base_url, config=FAST, completions_batch=16
        )
        outs = asyncio.run(_decide(batched))
        batch_requests = server.stats.requests - chat_requests
    assert _hours(outs) == per_prompt == [(i * 7) % 81 for i in range(CALLS)]
    assert chat_requests == CALLS
    assert batch_requests == _batcher(batched).requests <= 4  # ≥ 10 prompts a request
    assert _batcher(batched).fallback_reason is None
    body = server.stats.bodies[-1]
    assert isinstance(body["prompt"], list) and "messages" not in body
    assert body["prompt"][0].startswith("<|im_start|>system\nYou are a nurse")
    assert body["response_format"]["type"] == "json_schema"
    # usage is shared out over the calls of a batch, never lost
    assert all(o.usage.input_tokens > 0 and o.usage.output_tokens >= 0 for o in outs)


def test_batched_replies_equal_single_prompt_completions():
    """With the server's own seeded replies: a batch of prompts answers each prompt as a
    completions request of that prompt alone would."""
    with FakeOpenAIServer() as server:
        one = get_model("openai/fake", api_base=server.base_url, config=FAST, completions_batch=1)
        alone = asyncio.run(_decide(one))
        many = get_model("openai/fake", api_base=server.base_url, config=FAST, completions_batch=64)
        together = asyncio.run(_decide(many))
    assert _batcher(one).requests == CALLS and _batcher(many).requests == 1
    assert _hours(together) == _hours(alone)
    assert len(set(_hours(alone))) > 5  # the replies differ by prompt


@pytest.mark.parametrize("mode", ["single", "none"])
def test_server_without_list_support_falls_back_to_chat(mode, caplog):
    caplog.set_level(logging.WARNING, logger="llmecon.models")
    with FakeOpenAIServer(responder=_hours_from_prompt, completions=mode) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=FAST, completions_batch=16
        )
        outs = asyncio.run(_decide(model))
        chat_calls = sum("messages" in b and "prompt" not in b for b in server.stats.bodies)
    batcher = _batcher(model)
    assert _hours(outs) == [(i * 7) % 81 for i in range(CALLS)]
    reason = batcher.fallback_reason or ""
    assert not batcher.enabled and str(400 if mode == "single" else 404) in reason
    assert chat_calls == CALLS
    assert "completions batching off" in caplog.text
    assert model.failures == 0


def test_once_off_batching_stays_off():
    with FakeOpenAIServer(completions="none") as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=FAST, completions_batch=16
        )
        asyncio.run(_decide(model))
        tried = server.stats.requests - CALLS
        asyncio.run(_decide(model))
        assert server.stats.requests - tried == 2 * CALLS  # the second round: chat only
    assert 1 <= tried <= 3 and _batcher(model).requests == tried


def test_a_failed_batch_retries_each_call():
    with FakeOpenAIServer(faults=["500", "503"]) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=FAST, completions_batch=64
        )
        outs = asyncio.run(_decide(model))
    assert all(o.parsed is not None for o in outs)
    # the first batch failed every call; the retries (batched again, maybe split by the
    # backoff's jitter) met the second failure or none
    assert all(1 <= o.retries <= 2 for o in outs) and outs[0].retries >= 1
    assert _batcher(model).enabled


def test_auth_failure_of_a_batch_fails_every_call_without_retry(sentinel_keys):
    with FakeOpenAIServer(faults=["401"]) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=FAST, completions_batch=64
        )
        results = asyncio.run(_decide(model, 8, return_exceptions=True))
    assert all(isinstance(r, AuthError) for r in results)
    assert server.stats.requests == 1
    assert all(sentinel_keys not in str(r) for r in results)
    assert all("gave up" not in str(r) for r in results)


def test_a_hanging_batch_times_out_then_each_call_retries():
    # the retry is answered, however loaded the machine: only the hang may time out
    config = GenerateConfig(timeout_s=2.0, max_retries=1, backoff_base_s=0.001)
    with FakeOpenAIServer(faults=["hang"]) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=config, completions_batch=64
        )
        outs = asyncio.run(_decide(model, 6))
    assert all(o.parsed is not None and o.retries == 1 for o in outs)
    assert server.stats.faults["hang"] == 1 and server.stats.requests >= 2


def test_a_batch_that_keeps_hanging_ends_in_timeouts():
    config = GenerateConfig(timeout_s=0.2, max_retries=1, backoff_base_s=0.001)
    with FakeOpenAIServer(faults=["hang"] * 20) as server:
        model = get_model(
            "openai/fake", api_base=server.base_url, config=config, completions_batch=64
        )
        results = asyncio.run(_decide(model, 6, return_exceptions=True))
    assert all(isinstance(r, ModelTimeoutError) for r in results)


def test_a_retry_sharing_a_batch_with_first_attempts_keeps_its_longer_time():
    """A retry after a timeout (twice the time) and first attempts that reach the
    batcher in one turn of the loop share a request: it is bounded by the longest
    attempt's time, not by whichever call opened the group."""
    first = GenerateConfig(timeout_s=0.05)
    retry = GenerateConfig(timeout_s=60.0)  # an attempt whose time grew (Model's retries)
    with FakeOpenAIServer(latency_s=0.5) as server:
        model = get_model("openai/fake", api_base=server.base_url, completions_batch=64)
        batcher = _batcher(model)

        async def both() -> list:
            try:
                return await asyncio.gather(
                    batcher.submit(_prompt(1), None, first),  # opens the group
                    batcher.submit(_prompt(2), None, retry),
                    return_exceptions=True,
                )
            finally:
                await model.aclose()

        results = asyncio.run(both())
    assert server.stats.requests == 1  # one shared request
    assert [type(r).__name__ for r in results] == ["ProviderResponse", "ProviderResponse"]


def test_batching_needs_a_self_hosted_server_and_the_lean_transport(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with pytest.raises(ValueError, match="completions_batch needs"):
        get_model("openai/gpt-4o-mini", completions_batch=8)
    with pytest.raises(ValueError, match="completions_batch needs"):
        get_model(
            "openai/fake", api_base="http://127.0.0.1:9/v1", transport="sdk", completions_batch=8
        )


def test_chat_templates(tmp_path):
    messages = [
        ChatMessage(role="system", content="S"),
        ChatMessage(role="user", content="U"),
    ]
    chatml = ChatTemplate("chatml").render(messages)
    assert chatml == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n" + (
        "<|im_start|>assistant\n"
    )
    llama = ChatTemplate("llama3").render(messages)
    assert llama.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": CHAT_TEMPLATES["chatml"]}))
    assert ChatTemplate(str(config)).render(messages) == chatml
    assert (
        ChatTemplate("{{ bos_token }}{{ messages[-1].content }}", bos_token="<s>").render(messages)
        == "<s>U"
    )
    with pytest.raises(ValueError, match="neither a built-in"):
        ChatTemplate("no-such-template")


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        # any file was a template: a config file's text went out as every prompt
        ("config.yaml", "agents: 10\n", "never uses `messages`"),
        ("t.j2", "{{ bos_token }}hello", "never uses `messages`"),
        # a JSON list gave AttributeError's traceback
        ("tokenizer_config.json", "[1, 2]", "is not a tokenizer config (a JSON object)"),
        ("tokenizer_config.json", "{", "is not JSON (line 1)"),
        ("tokenizer_config.json", '{"chat_template": 5}', "its chat_template is not a template"),
        ("t.j2", "{% for m in messages %}{{ m.content }}", "t.j2: line 1: Unexpected end"),
    ],
)
def test_a_file_that_is_no_chat_template_is_refused(tmp_path, name, text, said):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(said)):
        ChatTemplate(str(path))


def test_split_tokens_is_exact_and_proportional():
    assert split_tokens(100, [1, 1, 2]) == [25, 25, 50]
    shares = split_tokens(7, [3, 3, 3])
    assert sum(shares) == 7 and max(shares) - min(shares) <= 1
    assert split_tokens(5, [0, 0]) == [3, 2]
    assert split_tokens(0, []) == []


def test_llm_workers_decide_through_batched_completions():
    """A year of LLM workers over one endpoint: every worker decides, in a few
    list-prompt requests, exactly as it would one chat call per worker."""
    import numpy as np

    from llmecon.agents.base import WorkerDecision as PoolDecision
    from llmecon.agents.base import WorkerRequest
    from llmecon.agents.llm_workers import LLMWorkers
    from llmecon.economy import Economy, TaxSchedule, synthetic_population
    from llmecon.prompts import PromptLibrary

    economy = Economy(synthetic_population(40, np.random.default_rng(5)))
    texts = [f"Worker {i}: you earn $20 per hour." for i in range(economy.size)]
    request = WorkerRequest(
        year=0,
        step=0,
        schedule=TaxSchedule.status_quo(),
        previous_hours=economy.population.usual_weekly_hours,
        last_rebate_usd=0.0,
        history=[],
    )

    def worker_hours(request: dict, schema: dict | None) -> str:
        text = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
        return json.dumps({"hours": 10 + int(re.findall(r"Worker (\d+):", text)[0])})

    decisions: list[PoolDecision] = []
    with FakeOpenAIServer(responder=worker_hours) as server:
        for batch in (None, 16):
            extra: dict[str, Any] = {"completions_batch": batch} if batch else {}
            model = get_model(
                "openai/fake", api_base=server.base_url, config=FAST, max_concurrency=64, **extra
            )
            pool = LLMWorkers(model, economy, texts, PromptLibrary())

            async def decide(pool: LLMWorkers = pool) -> PoolDecision:
                try:
                    return await pool.decide(request)
                finally:
                    await pool.model.aclose()

            decisions.append(asyncio.run(decide()))
        batched = [b for b in server.stats.bodies if isinstance(b.get("prompt"), list)]
    chat, completions = decisions
    assert not chat.fallback_reasons and not completions.fallback_reasons
    np.testing.assert_array_equal(completions.weekly_hours, chat.weekly_hours)
    np.testing.assert_array_equal(chat.weekly_hours, 10 + np.arange(40))
    assert sum(len(b["prompt"]) for b in batched) == 40 and len(batched) <= 5
