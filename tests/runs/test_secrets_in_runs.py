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


def test_a_sweep_writes_no_credentials_of_its_servers(tmp_path: Path, monkeypatch) -> None:
    # sweep.json kept the raw URL of its base settings ("http://bob:pw@…?api_key=sk-…")
    # while every cell's manifest masked it; a grid of servers was kept raw too.
    from click.testing import CliRunner

    from llmecon.cli import main

    monkeypatch.delenv("LLMECON_API_KEY", raising=False)
    with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        urls = [
            s.base_url.replace("://", f"://bob:pw{i}-0xSECRET@") + "?api_key=qs-0xSECRET"
            for i, s in enumerate((one, two))
        ]
        common = ["sweep", "--planners", "us-federal", "--workers", "fake-model",
                  "--agents", "3", "--years", "1", "--seeds", "0", "--jobs", "1",
                  "--out", str(tmp_path)]  # fmt: skip
        based = CliRunner().invoke(main, [*common, "--api-base", urls[0], "--name", "base"])
        assert based.exit_code == 0, based.output
        grid = CliRunner().invoke(main, [*common, "--workers-api-base", ",".join(urls),
                                         "--name", "grid"])  # fmt: skip
        assert grid.exit_code == 0, grid.output
        assert one.stats.requests == 6 and two.stats.requests == 3  # the URLs worked
    assert "0xSECRET" not in based.output + grid.output
    folders = [tmp_path / "base", tmp_path / "grid"]
    assert all((f / "sweep.json").is_file() for f in folders)
    for path in (p for f in folders for p in f.rglob("*") if p.is_file()):
        assert b"0xSECRET" not in path.read_bytes(), path


def test_the_run_wide_api_base_gets_no_other_providers_model_or_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--api-base`` is an OpenAI-compatible server (vLLM) for the roles it serves: a
    Claude planner beside its workers stays with Anthropic (its key was sent to the
    server before), and goes to a gateway only when given one of its own."""
    from llmecon.testing.fake_servers import FakeAnthropicServer

    anthropic_key = "sk-ant-test-SENTINEL-0a1b2c3d4e5f"
    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic_key)
    with FakeOpenAIServer() as server, FakeAnthropicServer(api_key=anthropic_key) as gateway:
        settings = dict(planner="anthropic/fake", workers="fake-model", agents=4, years=2,
                        api_base=server.base_url, out=str(tmp_path), reference=False)  # fmt: skip
        with pytest.warns(UserWarning, match="not used for the planner's model anthropic/fake"):
            built = build_simulation(build_config(overrides={**settings, "run_id": "shared"}))
        roles = built.models.roles
        assert roles["planner"] == ("anthropic/fake", "anthropic default endpoint")
        assert roles["workers"][1] == server.base_url
        built.log.close()  # built to see where its roles go, not run (no internet)

        own = {**settings, "planner_api_base": gateway.base_url, "run_id": "gateway"}
        result = build_simulation(build_config(overrides=own)).run()
        assert result.status == "completed"
        assert gateway.stats.requests == 1  # the planner's call (year 2), with its key
        assert server.stats.requests == 8  # the workers' calls only
    calls = [e for e in read_events(tmp_path / "gateway") if isinstance(e, LLMCall)]
    assert {(c.role, c.endpoint) for c in calls} == {
        ("planner", gateway.base_url),
        ("worker", server.base_url),
    }


def test_which_models_take_the_run_wide_api_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only Anthropic's speaks its own API there with its own key: litellm (which sends
    LLMECON_API_KEY to a given base) and plug-in providers keep the run-wide base."""
    from llmecon.models import ModelProvider
    from llmecon.models import _registry as registry
    from llmecon.runs.wiring import _role_base

    class Plugin(ModelProvider):
        provider_name = "plugprov"

    class OwnApi(ModelProvider):
        provider_name = "ownapi"
        takes_run_wide_base = False

    monkeypatch.setitem(registry._PROVIDERS, "plugprov", Plugin)
    monkeypatch.setitem(registry._PROVIDERS, "ownapi", OwnApi)
    url, gateway = "http://127.0.0.1:8000/v1", "http://127.0.0.1:9000"
    for name in ("my-model", "openai/m", "gpt-4o", "litellm/hosted_vllm/q", "plugprov/m"):
        assert _role_base(name, None, url) == url, name
    for name in ("claude-sonnet-4-5", "anthropic/m", "ownapi/m"):
        assert _role_base(name, None, url) is None, name
        assert _role_base(name, gateway, url) == gateway, name  # its own base: a gateway
    for name in ("mock/default", "scripted/reference", "local/smollm2-135m"):
        assert _role_base(name, gateway, url) is None, name  # in-process


def test_a_resume_or_fork_asks_again_for_the_credentials_its_manifest_left_out(
    tmp_path: Path, monkeypatch
) -> None:
    # The manifest drops the URL's credentials; a resume took the URL without them and
    # failed with HTTP 401 "check LLMECON_API_KEY", saying nothing of --api-base.
    import base64

    from click.testing import CliRunner

    from llmecon.cli import main
    from llmecon.runs import RunLogError
    from llmecon.runs.replay import replay_run
    from llmecon.runs.resume import fork_run, resume_run

    monkeypatch.delenv("LLMECON_API_KEY", raising=False)
    login = "Basic " + base64.b64encode(b"admin:pw-0xSECRET").decode()
    with FakeOpenAIServer(api_key=login) as server:  # answers the URL's login only
        base = server.base_url.replace("://", "://admin:pw-0xSECRET@")
        settings = dict(planner="us-federal", workers="fake-model", api_base=base, agents=3,
                        years=2, out=str(tmp_path), run_id="r", reference=False)  # fmt: skip
        build_simulation(build_config(overrides=settings)).run()
        run_dir = tmp_path / "r"
        recorded = json.loads((run_dir / "manifest.json").read_text())["config"]["api_base"]
        assert recorded == server.base_url.replace("://", "://***@")
        lines = (run_dir / "events.jsonl").read_text().splitlines()
        first = next(i for i, ln in enumerate(lines) if '"type":"year_completed"' in ln)
        (run_dir / "events.jsonl").write_text("\n".join(lines[: first + 1]) + "\n")  # killed
        said = "the run's --api-base held credentials, which its manifest does not keep"
        with pytest.raises(RunLogError, match=said):
            resume_run(run_dir)
        with pytest.raises(RunLogError, match=said):
            fork_run(run_dir, 1, {"years": 3, "out": str(tmp_path), "run_id": "f"})
        told = " ".join(CliRunner().invoke(main, ["resume", "--help"]).output.split())
        assert "with a login (user:password@) must be given again" in told
        resumed = resume_run(run_dir, {"api_base": base}).run()
    assert resumed.status == "completed" and resumed.fallbacks == 0  # logged in again
    assert server.stats.faults["ok"] == 9  # 6 calls, then tax year 2's 3 asked again
    assert replay_run(run_dir).ok  # offline: the masked URL is never called
