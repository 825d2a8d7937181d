"""``--completions-batch`` in a run: worker prompts go out as list-prompt
``/v1/completions`` requests and decide exactly as chat calls do; a provider without
completions batching is refused when the run is built."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from llmecon.runs.config import ConfigError, RunConfig
from llmecon.runs.wiring import build_simulation
from llmecon.testing.fake_servers import FakeOpenAIServer


def _hours(request: dict[str, Any], schema: dict[str, Any] | None) -> str:
    """Answers from the persona's wage in the prompt (chat or completion alike)."""
    text = request.get("prompt") or " ".join(
        str(m.get("content", "")) for m in request.get("messages", [])
    )
    wage = re.findall(r"\$(\d+(?:\.\d+)?) (?:per|an|/) ?hour", str(text))
    return json.dumps({"hours": int(float(wage[0])) % 61 + 10 if wage else 35})


def _config(tmp_path: Path, base: str, **extra: Any) -> RunConfig:
    return RunConfig(
        planner="us-federal",
        workers="openai/fake",
        workers_api_base=base,
        agents=12,
        years=2,
        out=str(tmp_path),
        reference=False,
        price=(0.0, 0.0),
        timeout=10.0,
        **extra,
    )


def test_batched_completions_decide_as_chat_calls(tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=_hours) as server:
        base = server.base_url
        batched = build_simulation(
            _config(tmp_path, base, run_id="batched", completions_batch=8)
        ).run()
        list_requests = [b for b in server.stats.bodies if isinstance(b.get("prompt"), list)]
        chat = build_simulation(_config(tmp_path, base, run_id="chat")).run()
    assert batched.status == chat.status == "completed"
    assert list_requests and max(len(b["prompt"]) for b in list_requests) > 1
    assert sum(len(b["prompt"]) for b in list_requests) == 12 * 2  # every worker decision
    for b_year, c_year in zip(batched.records, chat.records, strict=True):
        assert list(b_year.weekly_hours) == list(c_year.weekly_hours)
    assert len({h for r in chat.records for h in r.weekly_hours}) > 1  # answers differ


def test_workers_sharing_the_planners_model_batch_their_completions(tmp_path: Path) -> None:
    # The planner's model was built first, without the workers' batching, and the
    # workers took it: every decision went out as a chat call, without a word.
    def answer(request: dict[str, Any], schema: dict[str, Any] | None) -> str:
        if "rates" in json.dumps(schema or {}):  # the planner: the status quo's rates
            return json.dumps({"rates": [10, 12, 22, 24, 32, 35, 37]})
        return _hours(request, schema)

    with FakeOpenAIServer(responder=answer) as server:
        shared = {"planner": "openai/fake", "workers": None, "workers_api_base": None}
        config = _config(tmp_path, server.base_url, completions_batch=8).model_copy(
            update={**shared, "api_base": server.base_url}
        )
        result = build_simulation(config).run()
        lists = [b for b in server.stats.bodies if isinstance(b.get("prompt"), list)]
        chats = [b for b in server.stats.bodies if "messages" in b]
    assert result.status == "completed"
    assert sum(len(b["prompt"]) for b in lists) == 12 * 2  # every worker decision
    assert len(chats) == 1  # the planner's, in tax year 2


def test_completions_batch_needs_an_openai_compatible_worker_model(tmp_path: Path) -> None:
    config = RunConfig(
        planner="us-federal", workers="mock/default", agents=4, years=1, out=str(tmp_path),
        completions_batch=8,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="completions_batch"):
        build_simulation(config)
