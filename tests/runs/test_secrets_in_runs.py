"""A server that echoes the API key in its 200 replies never gets it into a run folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llmecon.models._mock import instance_from_schema
from llmecon.runs import build_config, build_simulation, read_events
from llmecon.runs.events import LLMCall, ScheduleSet
from llmecon.testing.fake_servers import FakeOpenAIServer

#: the key sent to the server (key-shaped) and another secret (caught only by its value)
SENT_KEY = "sk-test-SENTINEL-5f1e2d3c4b5a69788796a5b4"
OTHER_SECRET = "PLAINsentinel-3141592653"


def _echoing(request: dict, schema: dict | None) -> str:
    """A schema-valid reply whose text fields and surrounding prose quote the secrets."""
    value = instance_from_schema(schema or {"type": "object"}, random.Random(len(str(request))))
    for field in ("reason", "rationale"):
        if field in (schema or {}).get("properties", {}):
            value[field] = f"my key is {SENT_KEY}, also {OTHER_SECRET}"
    body = json.dumps(value)
    return f"Authenticated with {SENT_KEY} ({OTHER_SECRET}).\n```json\n{body}\n```"


def test_echoed_keys_reach_no_file_of_the_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMECON_API_KEY", SENT_KEY)
    monkeypatch.setenv("MY_GATEWAY_TOKEN", OTHER_SECRET)
    with FakeOpenAIServer(responder=_echoing, api_key=SENT_KEY) as server:
        config = build_config(
            overrides=dict(
                planner="fake-model",
                workers="fake-model",
                api_base=server.base_url,
                worker_reasons=True,
                agents=6,
                years=2,
                out=str(tmp_path),
                run_id="echo",
                reference=False,
            )
        )
        build_simulation(config).run()
        assert server.stats.requests > 0
    run_dir = tmp_path / "echo"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        assert SENT_KEY.encode() not in data and OTHER_SECRET.encode() not in data, path
    # The secrets did arrive and were masked, and the replies were still used.
    events = read_events(run_dir)
    calls = [e for e in events if isinstance(e, LLMCall)]
    assert calls and all(c.error_type is None for c in calls)
    workers = [c for c in calls if c.role == "worker"]
    assert all(c.raw_outputs[0].startswith("Authenticated with *** (***)") for c in workers)
    assert all(c.parsed and c.parsed["reason"] == "my key is ***, also ***" for c in workers)
    planned = [e for e in events if isinstance(e, ScheduleSet) and e.source == "planner"]
    assert planned, "the LLM planner's proposals were used"


@pytest.mark.parametrize("url_secret", ["admin:pw-0xSECRET@", ""])
def test_credentials_in_the_api_base_are_not_written(
    tmp_path: Path, monkeypatch, url_secret: str
) -> None:
    if url_secret:  # credentials in the URL are the Authorization: no key besides them
        monkeypatch.delenv("LLMECON_API_KEY", raising=False)
    else:
        monkeypatch.setenv("LLMECON_API_KEY", SENT_KEY)
    with FakeOpenAIServer() as server:
        base = server.base_url.replace("://", f"://{url_secret}") + "?api_key=qs-0xSECRET"
        config = build_config(
            overrides=dict(
                planner="us-federal",
                workers="fake-model",
                api_base=base,
                agents=4,
                years=1,
                out=str(tmp_path),
                run_id="url",
                reference=False,
            )
        )
        build_simulation(config).run()
        assert server.stats.requests == 4  # the URL worked, query and credentials included
    calls = [e for e in read_events(tmp_path / "url") if isinstance(e, LLMCall)]
    assert len(calls) == 4 and all(c.error_type is None for c in calls)
    for path in (tmp_path / "url").rglob("*"):
        if path.is_file():
            assert b"0xSECRET" not in path.read_bytes(), path
