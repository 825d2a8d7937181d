"""``llmecon models`` through click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llmecon.cli import main
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.models.conftest import SENTINEL


def test_models_lists_providers_and_keys_without_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    assert "OPENAI_API_KEY set" in result.output and "ANTHROPIC_API_KEY not set" in result.output
    assert "Local model smollm2-135m" in result.output and SENTINEL not in result.output


def test_models_test_mock_prints_parsed_tokens_latency():
    result = CliRunner().invoke(main, ["models", "test", "mock/default"])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output.split("parsed:", 1)[1].splitlines()[0])
    assert 0 <= parsed["weekly_hours"] <= 80
    assert "tokens:" in result.output and "latency:" in result.output


def test_models_test_against_fake_server(monkeypatch):
    monkeypatch.setenv("LLMECON_API_KEY", SENTINEL)
    with FakeOpenAIServer(faults=["401"]) as server:
        failed = CliRunner().invoke(main, ["models", "test", "fake", "--api-base", server.base_url])
        ok = CliRunner().invoke(main, ["models", "test", "fake", "--api-base", server.base_url])
    assert failed.exit_code == 1 and "AuthError" in failed.output and SENTINEL not in failed.output
    assert ok.exit_code == 0 and "parsed:" in ok.output


def test_models_test_missing_key_message(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["models", "test", "gpt-4o"])
    assert result.exit_code == 1
    assert "set OPENAI_API_KEY or use --planner local/smollm2-135m" in result.output
