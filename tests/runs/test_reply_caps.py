"""The caps on LLM replies (``max_tokens``) are run settings, sent to the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.testing.fake_servers import FakeOpenAIServer


def _sent_caps(tmp_path: Path, run_id: str, *options: str) -> dict[str, set[int]]:
    """``max_tokens`` of the requests of a short run, by role (planner or workers)."""
    with FakeOpenAIServer() as server:
        result = CliRunner().invoke(
            main,
            ["run", "--planner", "openai/fake", "--workers", "openai/fake",
             "--api-base", server.base_url, "--agents", "2", "--years", "2",
             "--no-reference", "--out", str(tmp_path), "--run-id", run_id, *options],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        caps: dict[str, set[int]] = {"planner": set(), "workers": set()}
        for body in server.stats.bodies:
            name = body["response_format"]["json_schema"]["name"]
            role = "workers" if name == "WorkerDecision" else "planner"
            caps[role].add(body["max_tokens"])
    return caps


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), {"planner": {160}, "workers": {16}}),
        (("--worker-reasons",), {"planner": {160}, "workers": {60}}),
        (
            ("--worker-max-tokens", "200", "--planner-max-tokens", "400"),
            {"planner": {400}, "workers": {200}},
        ),
    ],
)
def test_the_reply_caps_are_settings(tmp_path: Path, options, expected) -> None:
    assert _sent_caps(tmp_path, "r", *options) == expected
