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
    # `models list`, the name a user tries first, lists the same (it was "No such command")
    listed = CliRunner().invoke(main, ["models", "list"])
    assert listed.exit_code == 0 and listed.output == result.output


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
    assert failed.exit_code == 1 and SENTINEL not in failed.output
    assert failed.output.startswith("Error: ") and "AuthError" not in failed.output
    assert "check LLMECON_API_KEY" in " ".join(failed.output.split())  # the key it sent
    assert ok.exit_code == 0 and "parsed:" in ok.output


def test_models_test_missing_key_message(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["models", "test", "gpt-4o"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert said.startswith("Error: OPENAI_API_KEY is not set: set it, or give this role the")
    assert "MissingKeyError" not in said


def test_models_test_an_unknown_model_is_a_plain_line_with_did_you_mean():
    """A trial found ``Error: UnknownModelError: …`` and no hint, where ``run --planner
    smollm`` suggests 'smollm2-135m'."""
    result = CliRunner().invoke(main, ["models", "test", "smollm"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    said = " ".join(result.output.split())
    assert said.startswith("Error: unknown model 'smollm'") and "UnknownModelError" not in said
    assert said.endswith("did you mean 'smollm2-135m'?")
    assert "baseline planners" not in said  # a model, not a planner
    assert len(result.output.strip().splitlines()) == 1


def test_a_run_names_the_role_whose_key_is_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["run", "--planner", "saez", "--workers", "gpt-4o-mini", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert "workers: OPENAI_API_KEY is not set" in said and "--planner" not in said
    assert not any(tmp_path.iterdir())


def test_a_base_url_without_a_scheme_is_refused_before_the_run(tmp_path):
    args = ["run", "--planner", "my-model", "--api-base", "127.0.0.1:8000/v1"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not an http(s) URL" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_models_test_says_when_the_server_sent_no_token_counts(monkeypatch):
    # A reply without `usage` printed "tokens: 0 in, 0 out", as if it had cost nothing.
    monkeypatch.setenv("LLMECON_API_KEY", SENTINEL)
    with FakeOpenAIServer(faults=["no_usage"]) as server:
        result = CliRunner().invoke(main, ["models", "test", "fake", "--api-base", server.base_url])
    assert result.exit_code == 0, result.output
    assert "tokens:   not reported by the server" in result.output
    assert "0 in, 0 out" not in result.output


def test_models_test_counts_a_re_ask_as_a_repair_not_a_retry(monkeypatch):
    # A re-ask after an off-format reply read "retries 1, repairs 1" with --max-retries 0
    # and no transport fault at all: retries are transport retries (docs/models.md).
    monkeypatch.setenv("LLMECON_API_KEY", SENTINEL)
    with FakeOpenAIServer(faults=["wrong_schema"]) as server:
        args = ["models", "test", "fake", "--api-base", server.base_url, "--max-retries", "0"]
        result = CliRunner().invoke(main, args)
        asked = server.stats.requests
    assert result.exit_code == 0, result.output
    assert "(retries 0, repairs 1)" in result.output and asked == 2


def test_models_test_refuses_a_timeout_that_is_not_a_number_or_too_long():
    # nan passed every range check and ended in a traceback; inf waited for ever on a
    # server that never answers.
    for value, said in (("nan", "not a number"), ("inf", "not in the range"), ("4000", "range")):
        result = CliRunner().invoke(main, ["models", "test", "mock/default", "--timeout", value])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--timeout'" in result.output and said in result.output
        assert "Traceback" not in result.output


def test_a_base_url_with_a_port_out_of_range_is_refused_before_any_request(tmp_path):
    url = "http://127.0.0.1:99999/v1"
    tested = CliRunner().invoke(main, ["models", "test", "fake", "--api-base", url])
    assert tested.exit_code == 2 and "no valid port" in tested.output, tested.output
    args = ["run", "--workers", "openai/x", "--api-base", url, "--agents", "3", "--years", "1"]
    ran = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert ran.exit_code != 0 and "no valid port" in ran.output, ran.output
    assert not list(tmp_path.iterdir())
