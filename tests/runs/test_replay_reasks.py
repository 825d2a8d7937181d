"""Replay and resume of calls that needed re-asks (any number) and transport retries."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmecon.agents.calls import CallContext, call_context
from llmecon.models import (
    ChatMessage,
    GenerateConfig,
    Model,
    ModelError,
    RateLimitError,
    StructuredOutputError,
    current_attempt,
    register_provider,
)
from llmecon.models._mock import MockProvider, request_seed
from llmecon.runs import build_config, build_simulation, read_events, read_manifest
from llmecon.runs.events import LLMCall, MessageRef, YearCompleted
from llmecon.runs.recorded import RecordedCalls, ReplayMismatchError, ReplayProvider, _sha
from llmecon.runs.replay import replay_run
from llmecon.runs.resume import resume_run
from tests.models.conftest import WorkerDecision


class FlakyMock(MockProvider):
    """``mock/<name>`` whose first try of about half the attempts is rate limited: a
    pure function of the request and the attempt, so a resumed run sees the same."""

    provider_name = "flakymock"

    def __init__(self, model_name: str, api_base: str | None = None) -> None:
        super().__init__(model_name, api_base)
        self._refused: set[tuple[int, int]] = set()

    async def generate(self, messages, spec, config):
        attempt = (request_seed(messages, None, None), current_attempt())
        if attempt[0] % 2 == 0 and attempt not in self._refused:
            self._refused.add(attempt)
            raise RateLimitError("busy", retry_after_s=0.001)
        return await super().generate(messages, spec, config)


register_provider("flakymock", FlakyMock)


def _run(tmp_path: Path, run_id: str, model: str = "mock/reask-2", years: int = 3) -> Path:
    config = dict(planner=model, agents=8, years=years, out=str(tmp_path), run_id=run_id)
    build_simulation(build_config(overrides={**config, "reference": False})).run()
    return tmp_path / run_id


def _calls(run_dir: Path) -> list[LLMCall]:
    return [e for e in read_events(run_dir) if isinstance(e, LLMCall)]


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    return [e.metrics for e in read_events(run_dir) if isinstance(e, YearCompleted)]


def _outcome(call: LLMCall) -> tuple:
    parsed = json.dumps(call.parsed, sort_keys=True)
    return (call.year, call.step, call.role, call.agent or "", call.raw_outputs, parsed)


@pytest.mark.parametrize("model", ["mock/reask-2", "flakymock/reask-2"])
def test_calls_with_two_re_asks_replay_exactly(tmp_path: Path, model: str) -> None:
    run_dir = _run(tmp_path, "r", model)
    calls = _calls(run_dir)
    twice = [c for c in calls if c.repairs == 2]
    assert twice and all(len(c.raw_outputs) == 3 and c.parsed is not None for c in twice)
    assert any(c.repairs == 0 for c in calls)  # only some calls are re-asked
    if model.startswith("flakymock"):  # transport retries on top of the re-asks
        assert any(c.retries > 0 and c.repairs == 2 for c in calls)
    report = replay_run(run_dir)
    assert report.ok, report.differences
    assert report.calls_replayed == len(calls)


def test_a_re_asked_call_lists_repair_j2_and_replay_checks_its_copy(tmp_path: Path) -> None:
    # The re-ask text (repair.j2) was in no call's templates, and a copy of it rewritten
    # after the run replayed as "matches".
    run_dir = _run(tmp_path, "r")
    calls = _calls(run_dir)
    for call in calls:
        assert ("repair.j2" in call.templates) == (call.repairs > 0), call
    recorded = read_manifest(run_dir).prompts["repair.j2"]
    assert all(c.templates["repair.j2"] == recorded for c in calls if c.repairs)
    repair = run_dir / "prompts" / "repair.j2"
    assert replay_run(run_dir).ok
    repair.write_text("Wrong again: {{ error }}\n")
    report = replay_run(run_dir)
    (row,) = report.differences
    assert row["what"] == "templates" and "repair.j2" in row["replayed"], row


def test_resume_mid_year_reuses_calls_with_re_asks(tmp_path: Path) -> None:
    full = _run(tmp_path, "full", "flakymock/reask-2")
    cut = _run(tmp_path, "cut", "flakymock/reask-2")
    lines = (cut / "events.jsonl").read_text().splitlines()
    year1 = next(i for i, ln in enumerate(lines) if '"year_started"' in ln and '"year":1' in ln)
    # Cut just after a call of year 1 that needed two re-asks, so resuming reuses it.
    reused = next(
        i
        for i, ln in enumerate(lines)
        if i > year1 and '"llm_call"' in ln and json.loads(ln)["repairs"] == 2
    )
    (cut / "events.jsonl").write_text("\n".join(lines[: reused + 1]) + "\n")
    sim = resume_run(cut)
    assert sim.models.recorded is not None and sim.models.recorded.total > 0
    sim.run()
    assert sim.models.recorded.remaining == 0  # every recorded call was reused
    assert _metrics(cut) == _metrics(full)
    # Concurrent workers finish in any order: compare the calls by who made them.
    resumed_calls = sorted(_outcome(c) for c in _calls(cut))
    assert resumed_calls == sorted(_outcome(c) for c in _calls(full))
    assert replay_run(cut).ok


def _tamper(run_dir: Path, attempt: int) -> None:
    """Give a twice re-asked worker call of the last year other hours at ``attempt``."""
    path = run_dir / "events.jsonl"
    lines = path.read_text().splitlines()
    last_year = max(e.year for e in read_events(run_dir) if isinstance(e, YearCompleted))
    for i, line in enumerate(lines):
        event = json.loads(line)
        if (
            event["type"] == "llm_call"
            and event["role"] == "worker"
            and event["year"] == last_year
            and event["repairs"] == 2
        ):
            hours = 79 if event["parsed"]["hours"] != 79 else 1
            event["raw_outputs"][attempt] = json.dumps({"hours": hours})
            lines[i] = json.dumps(event)
            break
    else:
        raise AssertionError("no twice re-asked worker call in the last year")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("attempt", [2, 1])
def test_replay_reports_a_changed_raw_output_of_a_re_asked_call(
    tmp_path: Path, attempt: int
) -> None:
    run_dir = _run(tmp_path, "r")
    assert replay_run(run_dir).ok
    _tamper(run_dir, attempt)
    report = replay_run(run_dir)
    assert not report.ok
    assert any(d["what"] == "mean_weekly_hours" for d in report.differences)


def _recorded(raw_outputs: list[str], messages, **fields) -> RecordedCalls:
    refs = [MessageRef(role=m.role, sha256=_sha(m.content)) for m in messages]
    call = LLMCall(year=0, role="worker", agent="p1", model="mock/x", messages=refs, **fields)
    return RecordedCalls([call.model_copy(update={"raw_outputs": raw_outputs})])


def _replay(recorded: RecordedCalls, messages, config: GenerateConfig | None = None):
    provider = ReplayProvider("mock/x", recorded)
    model = Model(provider, config=config)

    async def call():
        with call_context(CallContext(role="worker", year=0, agent="p1")):
            return await model.generate(messages, WorkerDecision)

    try:
        return asyncio.run(call()), provider
    except ModelError as exc:
        return exc, provider


def test_replay_serves_the_kth_reply_for_the_kth_attempt() -> None:
    msgs = [ChatMessage(role="user", content="Hours?")]
    raw = ["no", "still no", "nope", '{"hours": 33}']
    out, provider = _replay(_recorded(raw, msgs), msgs, GenerateConfig(max_repairs=3))
    assert out.parsed.hours == 33 and out.repairs == 3 and out.raw_outputs == raw
    assert not provider.mismatches


def test_replay_fails_a_call_where_the_recording_failed_without_a_reply() -> None:
    msgs = [ChatMessage(role="user", content="Hours?")]
    recorded = _recorded(
        ["no"], msgs, retries=6, error_type="RateLimitError", error_message="gave up"
    )
    error, provider = _replay(recorded, msgs)
    assert "replayed failure: RateLimitError" in str(error) and not provider.mismatches


def test_replay_flags_a_settled_call_that_no_longer_validates() -> None:
    msgs = [ChatMessage(role="user", content="Hours?")]
    error, provider = _replay(_recorded(['{"hours": 500}'], msgs), msgs)
    assert isinstance(error, ModelError) and not isinstance(error, StructuredOutputError)
    (mismatch,) = provider.mismatches
    assert isinstance(mismatch, ReplayMismatchError) and "schema" in str(mismatch)


def test_a_reused_call_costs_what_it_cost_when_it_was_made() -> None:
    # A resume reuses the calls of the unfinished year (their first copy set aside): a
    # call priced from the cost map was counted at $0, so the run's total lost what it
    # had paid for them.
    msgs = [ChatMessage(role="user", content="Hours?")]
    recorded = _recorded(['{"hours": 30}'], msgs, input_tokens=100, output_tokens=5,
                         cost_usd=0.0125)  # fmt: skip
    out, _ = _replay(recorded, msgs)
    assert out.cost_usd == pytest.approx(0.0125)
