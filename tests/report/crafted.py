"""Synthetic run logs for the read-side tests: the golden run re-written with RunLog,
plus hostile model output, fallbacks and (not yet typed) ``vote_round`` events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmecon.runs.dataframes import OtherEvent
from llmecon.runs.events import Fallback, LLMCall, MessageRef, RunCompleted
from llmecon.runs.log import Manifest, RunLog, read_events, read_manifest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_V1 = GOLDEN / "v1" / "tiny-mock-planner"
GOLDEN_V0 = GOLDEN / "v0" / "tiny-mock-planner"

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = (SCRIPT, IMG)


def craft_run(
    directory: Path,
    *,
    run_id: str = "crafted",
    hostile: bool = True,
    votes: bool = True,
    manifest_updates: dict[str, Any] | None = None,
    extra: Sequence[Any] = (),
) -> Path:
    """Write a run folder at ``directory``: the golden v1 run's events, and (before
    ``run_completed``) a hostile planner call, a hostile worker fallback, votes and the
    ``extra`` events."""
    golden_manifest = read_manifest(GOLDEN_V1)
    data = golden_manifest.model_dump()
    data.update(run_id=run_id, **(manifest_updates or {}))
    log = RunLog.create(directory, Manifest.model_validate(data))
    with log:
        for event in read_events(GOLDEN_V1):
            if isinstance(event, RunCompleted):
                if hostile:
                    _hostile_events(log)
                if votes:
                    _vote_events(log)
                for extra_event in extra:
                    log.append(extra_event)
            if event.type == "blob":
                log.blob(event.text)
                continue
            log.append(event)
    return directory


def _hostile_events(log: RunLog) -> None:
    system = log.blob(f"system prompt {SCRIPT}")
    user = log.blob("user prompt")
    log.append(
        LLMCall(
            year=2,
            role="planner",
            model="mock/<b>bold</b>",
            messages=[
                MessageRef(role="system", sha256=system),
                MessageRef(role="user", sha256=user),
            ],
            raw_outputs=[f"first try {SCRIPT}", f"second try {IMG}"],
            parsed={"rationale": IMG},
            input_tokens=120,
            output_tokens=30,
            latency_s=0.25,
            retries=1,
            repairs=1,
            cost_usd=0.001,
            error_type="ParseError",
            error_message=f"bad json {SCRIPT}",
            fallback=True,
        )
    )
    log.append(
        Fallback(year=2, role="worker", agent=IMG, reason=f"unparseable: {SCRIPT}", action="kept")
    )


def _vote_events(log: RunLog) -> None:
    """``vote_round`` events as written by the voting layer; appended generically so
    they load whether or not this release types them."""
    status_quo = [0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]
    for year in (1, 2):
        winner = IMG if year == 1 else "status quo"
        log.append(
            OtherEvent(  # type: ignore[arg-type]
                type="vote_round",
                year=year,
                rule="plurality",
                source="platforms",
                voters="llm",
                candidates=[
                    {"label": "status quo", "rates": status_quo, "origin": "incumbent"},
                    {"label": IMG, "rates": [0.3] * 7, "origin": f"platform of {SCRIPT}"},
                ],
                ballots=[
                    {"agent": "synthetic-000000", "ballot": {"vote": IMG}},
                    {"agent": "synthetic-000001", "abstained": True, "reason": SCRIPT},
                ],
                scores={"status quo": 5.0 * year, IMG: 20.0 - 5.0 * year},
                shares={"status quo": 0.25 * year, IMG: 1 - 0.25 * year},
                turnout=0.9,
                winner=winner,
                candidate_swf={"status quo": 100.0, IMG: 90.0},
                winner_swf=90.0 if year == 1 else 100.0,
                best_candidate="status quo",
                best_candidate_swf=100.0,
            )
        )
