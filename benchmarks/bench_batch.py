"""Provider batch API (``--batch-api``) benchmark; results go to benchmarks/results/batch.json.

What a batch costs the client, side by side with synchronous calls in one run of this
script: LLM workers × 2 tax years against a fake OpenAI server in its own subprocess
(no latency; a batch ends at once, polled every 0.05 s), planner ``us-federal``, so a
year is one step of N worker calls. Per mode and N: wall seconds and client CPU
seconds of the second year (the first also opens connections), CPU µs per call, and
the batch's upload size. A real batch waits minutes to hours at the provider: the wall
time here is the client's own work plus the fake server's, not a provider's latency.

Run: ``python benchmarks/bench_batch.py [--agents 1000,10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from llmecon.runs import build_config, build_simulation
from llmecon.testing.fake_servers import serve_in_subprocess

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"


def bench(agents: int, batch: bool, url: str, out: Path) -> dict[str, Any]:
    config = build_config(
        overrides=dict(
            planner="us-federal",
            workers="openai/fake",
            workers_api_base=url,
            agents=agents,
            years=2,
            batch_api=batch,
            batch_poll=0.05,
            max_concurrency=256,
            out=str(out),
            run_id=f"{'batch' if batch else 'sync'}-{agents}",
            reference=False,
            price=(1.0, 1.0),
        )
    )
    sim = build_simulation(config)
    stamps, cpu = [time.perf_counter()], [time.process_time()]

    def progress(record: Any, stats: Any) -> None:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())

    result = sim.run(progress)
    wall = stamps[2] - stamps[1]
    cpu_s = cpu[2] - cpu[1]
    return {
        "mode": "batch" if batch else "synchronous (concurrency 256)",
        "agents": agents,
        "status": result.status,
        "year_wall_s": round(wall, 3),
        "year_client_cpu_s": round(cpu_s, 3),
        "client_cpu_us_per_call": round(1e6 * cpu_s / agents, 1),
        "cost_usd": result.summary.get("cost_usd"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="1000,10000")
    ns = parser.parse_args()
    sizes = [int(x) for x in ns.agents.split(",")]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serve_in_subprocess("openai") as url:
        for agents in sizes:
            for batch in (False, True):
                row = bench(agents, batch, url, Path(tmp))
                print(row, flush=True)
                rows.append(row)
    out = {
        "benchmark": "provider batch API vs synchronous calls, client cost",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": rows,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
