"""Endpoint-fleet benchmark; results go to benchmarks/results/fleet.json.

1 000 LLM workers × 5 tax years over a fleet of 1, 2 and 4 fake OpenAI-compatible
endpoints, each in its own subprocess (100 ms latency, capacity 64: the server answers
429 beyond 64 requests in flight and the client sends each endpoint at most 64). The
planner is the fixed ``us-federal`` baseline, so a year is one round of 1 000 worker
calls. Reported per fleet size k: seconds per year (from the second year on: the first
one also opens the connections) next to the ideal ``1000 / (64·k) · 0.1 s`` (the
endpoints' total throughput) and the ideal in whole rounds of 64·k calls, the calls
each endpoint served, retries and failures, and the client's CPU time per call.

On 2 cores the client process (rendering 1 000 prompts, the HTTP round trips, parsing,
logging every call) and the k server processes share the machine, so larger fleets
fall short of the ideal by the client's CPU time per year: the measured CPU seconds
per year are reported next to the wall time to show it.

Run: ``python benchmarks/bench_fleet.py [--agents N] [--years N] [--sizes 1,2,4]``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import resource
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmecon.runs import build_config, build_simulation, read_events
from llmecon.runs.events import LLMCall
from llmecon.testing.fake_servers import serve_in_subprocess

RESULTS = Path(__file__).resolve().parent / "results" / "fleet.json"
LATENCY_S = 0.1
CAPACITY = 64


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_fleet(size: int, agents: int, years: int, out: Path) -> dict[str, Any]:
    servers_cpu0 = _children_cpu_s()
    with contextlib.ExitStack() as stack:
        urls = [
            stack.enter_context(
                serve_in_subprocess("openai", latency_s=LATENCY_S, max_concurrency=CAPACITY)
            )
            for _ in range(size)
        ]
        config = build_config(
            overrides=dict(
                planner="us-federal",
                workers="fake-model",
                api_base=urls if size > 1 else urls[0],
                agents=agents,
                years=years,
                max_concurrency=CAPACITY,
                out=str(out),
                run_id=f"fleet-{size}",
                reference=False,
            )
        )
        sim = build_simulation(config)
        stamps, cpu = [time.perf_counter()], [time.process_time()]

        def progress(record: Any, stats: Any) -> None:
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())

        sim.run(progress)
    # The servers have exited: their CPU time (start-up included) is the children's.
    servers_cpu = _children_cpu_s() - servers_cpu0
    per_year = [b - a for a, b in itertools.pairwise(stamps)]
    cpu_per_year = [b - a for a, b in itertools.pairwise(cpu)]
    ideal = agents / (CAPACITY * size) * LATENCY_S
    ideal_rounds = math.ceil(agents / (CAPACITY * size)) * LATENCY_S
    calls = [e for e in read_events(out / f"fleet-{size}") if isinstance(e, LLMCall)]
    steady = per_year[1:] or per_year
    mean = statistics.mean(steady)
    row = {
        "endpoints": size,
        "agents": agents,
        "years": years,
        "latency_s": LATENCY_S,
        "capacity_per_endpoint": CAPACITY,
        "seconds_per_year": per_year,
        "mean_seconds_per_year_after_first": mean,
        "ideal_seconds_per_year": ideal,
        "ideal_seconds_per_year_whole_rounds": ideal_rounds,
        "ideal_over_actual": ideal / mean,
        "client_cpu_seconds_per_year": cpu_per_year,
        "client_cpu_ms_per_call": 1000 * sum(cpu_per_year) / max(1, len(calls)),
        "servers_cpu_ms_per_call": 1000 * servers_cpu / max(1, len(calls)),
        "calls": len(calls),
        "calls_per_endpoint": dict(Counter(str(c.endpoint) for c in calls)),
        "retries": sum(c.retries for c in calls),
        "failures": sum(c.error_type is not None for c in calls),
    }
    print(
        f"{size} endpoint(s): {mean:.2f} s/year (years 2+; all: "
        f"{', '.join(f'{s:.2f}' for s in per_year)}), ideal {ideal:.3f} s "
        f"({ideal_rounds:.1f} s in whole rounds), ideal/actual {ideal / mean:.2f}, "
        f"client CPU {statistics.mean(cpu_per_year[1:] or cpu_per_year):.2f} s/year, "
        f"servers' CPU {row['servers_cpu_ms_per_call']:.2f} ms/call, "
        f"{row['retries']} retries, {row['failures']} failures"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--sizes", default="1,2,4")
    ns = parser.parse_args()
    os.environ.pop("LLMECON_API_KEY", None)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in ns.sizes.split(",")):
            rows.append(bench_fleet(size, ns.agents, ns.years, Path(tmp)))
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # other work on the machine competes for its cores: note how busy it was
            "load_average_1_5_15_min_before": load_before,
            "load_average_1_5_15_min_after": os.getloadavg(),
        },
        "fleet": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
