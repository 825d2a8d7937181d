"""10 000 fuzzed malformed outputs: never a crash; repaired by re-ask or a typed error."""

from __future__ import annotations

import asyncio
import json
import random

from llmecon.models import ChatMessage, GenerateConfig, StructuredOutputError, get_model
from tests.models.conftest import PlannerProposal, WorkerDecision

VALID = [json.dumps({"hours": 40, "reason": "ok"})]


def _fuzz(rng: random.Random) -> str:
    good = json.dumps({"hours": rng.randint(0, 80), "reason": "fine"})
    kind = rng.randrange(12)
    if kind == 0:
        return good[: rng.randrange(len(good))]  # truncated
    if kind == 1:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(40)))
    if kind == 2:
        return "[" * rng.randrange(1, 20000)  # deep nesting
    if kind == 3:
        return json.dumps({"hours": rng.choice([-1, 81, 1e308, "40", None, [], True, 40.5])})
    if kind == 4:
        return f"```json\n{good}\n```" if rng.random() < 0.5 else f"Sure! {good} Hope it helps"
    if kind == 5:
        return json.dumps({"hours": 10, "reason": "x" * rng.randrange(100, 400)})
    if kind == 6:
        return good.replace('"', "'")
    if kind == 7:
        return "NaN" if rng.random() < 0.5 else '{"hours": NaN}'
    if kind == 8:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(60))).decode("latin-1")
    if kind == 9:
        return "{" + "".join(rng.choice('{}[]":,0123456789abc ') for _ in range(rng.randrange(80)))
    if kind == 10:
        return good  # valid ones mixed in
    return json.dumps([good, good])


def test_ten_thousand_fuzzed_outputs():
    rng = random.Random(1234)
    cases = [[_fuzz(rng) for _ in range(rng.randint(1, 3))] for _ in range(10_000)]
    config = GenerateConfig(max_repairs=1)

    async def main() -> tuple[int, int]:
        repaired = failed = 0
        msgs = [ChatMessage(role="user", content="hours?")]
        for script in cases:
            model = get_model("mock/fuzz", outputs=script, responder=lambda m, s: "still wrong")
            try:
                out = await model.generate(msgs, WorkerDecision, config)
            except StructuredOutputError as exc:
                failed += 1
                assert len(exc.raw_outputs) == 2 and len(exc.errors) == 2
                continue
            # Anything accepted is genuinely valid and came from the script.
            assert isinstance(out.parsed, WorkerDecision) and 0 <= out.parsed.hours <= 80
            assert out.raw_outputs[-1] in script and out.repairs <= 1
            repaired += out.repairs
        return repaired, failed

    repaired, failed = asyncio.run(main())
    assert failed > 1000 and repaired > 100  # both paths were exercised


def test_fuzzed_planner_schema_never_crashes():
    rng = random.Random(99)

    async def main() -> None:
        msgs = [ChatMessage(role="user", content="rates?")]
        for _ in range(500):
            raw = json.dumps(
                {"rates": [rng.choice([1, "x", None, 2.5]) for _ in range(rng.randrange(10))]}
            )
            model = get_model("mock/fuzz", outputs=[raw], responder=lambda m, s, raw=raw: raw)
            try:
                out = await model.generate(msgs, PlannerProposal)
                assert len(out.parsed.rates) == 7
            except StructuredOutputError:
                pass

    asyncio.run(main())
