"""LLM Economist's within-year feedback: from the third step of a year a rational-style
LLM worker is also told whether its last change of hours raised or lowered its value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmecon.agents.prompting import StepFeedback
from llmecon.economy import TaxSchedule
from llmecon.models import ChatMessage
from llmecon.runs import build_config, build_simulation
from tests.agents.test_llm_agents import use_responder


def _run(tmp_path: Path, style: str, seen: list[str]) -> None:
    def respond(messages: list[ChatMessage], schema: dict[str, Any] | None) -> str:
        text = messages[-1].content
        if schema is not None and "hours" in schema.get("properties", {}):
            seen.append(text)
            hours = 30 if "Earlier this year you tried 20 hours" in text else 20
            if "Earlier this year you tried 30 hours" in text:
                hours = 30
            return json.dumps({"hours": hours})
        return json.dumps({"rates": [20, 20, 20]})

    cfg = build_config(
        overrides=dict(
            preset="llm-economist-2025",
            planner="fixed:20,20,20",
            workers=use_responder(f"steps-{style}", respond),
            worker_style=style,
            worker_steps=4,
            agents=3,
            years=1,
            out=str(tmp_path),
            run_id=style,
            reference=False,
        )
    )
    build_simulation(cfg).run()


def test_rational_workers_hear_whether_their_last_change_raised_their_value(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    _run(tmp_path, "rational", seen)
    steps = [seen[i : i + 3] for i in range(0, len(seen), 3)]
    assert len(steps) == 4
    assert not any("Changing from" in t for t in steps[0] + steps[1])
    # step 2 (the third): 20 h then 30 h; at $0.0005·l^3.5 the cost rises steeply
    for text in steps[2]:
        assert "Changing from 20 to 30 hours a week" in text
        assert "raised your value" in text or "lowered your value" in text
    # step 3: the hours stayed at 30: no change to report
    assert not any("Changing from" in t for t in steps[3])


def test_persona_workers_see_only_the_numbers(tmp_path: Path) -> None:
    seen: list[str] = []
    _run(tmp_path, "persona", seen)
    assert any("Earlier this year you tried" in t for t in seen)
    assert not any("Changing from" in t or "your value" in t for t in seen)


def test_the_effect_follows_the_value() -> None:
    cfg = build_config(
        overrides=dict(preset="llm-economist-2025", planner="saez", workers="rational", agents=5)
    )
    economy = build_simulation(cfg, write_log=False).economy
    sched = TaxSchedule((0.0, 90_000.0, 159_100.0), (0.2, 0.2, 0.2))
    low = StepFeedback.of(economy, sched, np.full(5, 10.0))
    high = StepFeedback.of(economy, sched, np.full(5, 100.0), before=low)
    back = StepFeedback.of(economy, sched, np.full(5, 10.0), before=high)
    for i in range(5):
        up, down = high.row(i, "rational"), back.row(i, "rational")
        assert up["change"]["from"] == 10 and down["change"]["to"] == 10
        assert {up["change"]["effect"], down["change"]["effect"]} == {"raised", "lowered"}
        assert (up["value"] > down["value"]) == (up["change"]["effect"] == "raised")
        assert high.row(i, "persona")["change"] is None
