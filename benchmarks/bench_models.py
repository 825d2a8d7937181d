"""Model-layer benchmarks; results go to benchmarks/results/models.json.

1. Framework overhead per call (µs): the Model wrapper around a zero-latency provider.
2. Embedded model (``local/smollm2-135m``): worker decisions per second and prompt /
   generated tokens per second.

Client throughput against the fake servers (every transport, concurrency 16 to 1 024,
client and server CPU per call, seconds per round) is measured by
``benchmarks/bench_throughput.py``.

Run: ``python benchmarks/bench_models.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path

from pydantic import BaseModel, Field

from llmecon.models import ChatMessage, GenerateConfig, get_model

RESULTS = Path(__file__).parent / "results" / "models.json"


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)


def prompt(i: int) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
        ChatMessage(role="user", content=f"Week {i}: how many hours will you work? JSON please."),
    ]


def bench_overhead(n: int) -> dict[str, float]:
    reply = json.dumps({"hours": 40})
    model = get_model("mock/overhead", responder=lambda messages, schema: reply)
    msgs = prompt(0)

    async def loop(schema: type[BaseModel] | None) -> float:
        await model.generate(msgs, schema)
        t0 = time.perf_counter()
        for _ in range(n):
            await model.generate(msgs, schema)
        return (time.perf_counter() - t0) / n * 1e6

    structured = asyncio.run(loop(WorkerDecision))
    text = asyncio.run(loop(None))
    print(f"overhead per call: {structured:.0f} µs structured, {text:.0f} µs text")
    return {"structured_us_per_call": structured, "text_us_per_call": text, "calls": n}


def bench_local(n: int) -> dict[str, float] | None:
    try:
        model = get_model("local/smollm2-135m", config=GenerateConfig(max_tokens=16, seed=0))
    except Exception as exc:  # the [local] extra is not installed
        print(f"embedded model skipped: {exc}")
        return None
    asyncio.run(model.generate(prompt(-1), WorkerDecision))  # load the model once

    async def decide() -> list[object]:
        return await asyncio.gather(*[model.generate(prompt(i), WorkerDecision) for i in range(n)])

    t0 = time.perf_counter()
    outs = asyncio.run(decide())
    wall = time.perf_counter() - t0
    tokens_in = sum(o.usage.input_tokens for o in outs)  # type: ignore[attr-defined]
    tokens_out = sum(o.usage.output_tokens for o in outs)  # type: ignore[attr-defined]
    valid = sum(o.parsed is not None for o in outs)  # type: ignore[attr-defined]
    result = {
        "decisions": n,
        "valid": valid,
        "decisions_per_s": n / wall,
        "prompt_tokens_per_call": tokens_in / n,
        "prompt_plus_generated_tokens_per_s": (tokens_in + tokens_out) / wall,
        "generated_tokens_per_s_upper_bound": tokens_out / wall,
        "wall_s": wall,
        "threads": os.cpu_count() or 0,
        "n_batch": int(os.environ.get("LLMECON_LOCAL_N_BATCH", "1")),
    }
    print(
        f"embedded: {result['decisions_per_s']:.2f} decisions/s, {valid}/{n} valid, "
        f"{result['prompt_plus_generated_tokens_per_s']:.0f} tok/s processed "
        f"({tokens_in / n:.0f} prompt + {tokens_out / n:.1f} generated tokens per decision)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    ns = parser.parse_args()
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_at_start": list(os.getloadavg()),
        "overhead": bench_overhead(2000 if ns.quick else 20000),
        "embedded": bench_local(5 if ns.quick else 20),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
