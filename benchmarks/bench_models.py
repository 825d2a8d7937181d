"""Model-layer benchmarks; results go to benchmarks/results/models.json.

1. Throughput against the fake OpenAI server (own process, 100 ms latency), 2 000
   structured requests, at concurrency 64 and 256: achieved / ideal (concurrency ÷
   latency), for the lean ``http`` transport and the official ``sdk`` transport.
2. Framework overhead per call (µs): the Model wrapper around a zero-latency provider.
3. Embedded model (``local/smollm2-135m``): worker decisions per second and prompt /
   generated tokens per second.

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
from llmecon.testing.fake_servers import serve_in_subprocess

RESULTS = Path(__file__).parent / "results" / "models.json"


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)


def prompt(i: int) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
        ChatMessage(role="user", content=f"Week {i}: how many hours will you work? JSON please."),
    ]


async def _throughput(url: str, transport: str, concurrency: int, n: int) -> dict[str, float]:
    model = get_model(
        "openai/fake",
        api_base=url,
        max_concurrency=concurrency,
        transport=transport,
        config=GenerateConfig(max_retries=0, timeout_s=300),
    )
    try:
        await asyncio.gather(
            *[model.generate(prompt(-i), WorkerDecision) for i in range(concurrency)]
        )
        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[model.generate(prompt(i), WorkerDecision) for i in range(n)])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await model.aclose()
    return {"wall_s": wall, "req_per_s": n / wall, "client_cpu_us_per_call": cpu / n * 1e6}


def bench_throughput(n: int, latency_s: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with serve_in_subprocess("openai", latency_s=latency_s) as url:
        # The SDK transport is ~10x slower here: fewer requests keep the run short.
        for transport, count in (("http", n), ("sdk", max(200, n // 4))):
            for concurrency in (64, 256):
                result = asyncio.run(_throughput(url, transport, concurrency, count))
                ideal = concurrency / latency_s
                row = {
                    "transport": transport,
                    "concurrency": concurrency,
                    "requests": count,
                    "latency_s": latency_s,
                    "ideal_req_per_s": ideal,
                    "achieved_over_ideal": result["req_per_s"] / ideal,
                    **result,
                }
                rows.append(row)
                print(
                    f"throughput {transport:4} c={concurrency:3}: {result['req_per_s']:7.0f} req/s"
                    f" / ideal {ideal:5.0f} = {row['achieved_over_ideal']:.3f}"
                    f"  (client CPU {result['client_cpu_us_per_call']:.0f} µs/call)"
                )
    return rows


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
    n = 400 if ns.quick else 2000
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "throughput": bench_throughput(n, 0.1),
        "overhead": bench_overhead(2000 if ns.quick else 20000),
        "embedded": bench_local(5 if ns.quick else 20),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
