"""Benchmark the main job (issue: LLM workers and the in-context-RL planner).

1. Throughput: 100 LLM workers × 10 years (+ the LLM planner) against the fake
   OpenAI-compatible server (own process) with 100 ms latency: wall time per year next
   to the ideal (one planner round trip + one round of concurrent worker calls), tokens
   per worker decision and per planner call, and the share of each worker prompt that is
   a static prefix shared with every other worker prompt of the year (characters).
2. Planner quality on the default economy with rational workers: % of the oracle's SWF
   by year for the embedded-model planner (with and without --planner-hints), next to
   the UCB bandit and Saez baselines.

Run: ``python benchmarks/bench_main_job.py [--skip-local] [--years-quality N]``.
Results are saved to ``benchmarks/results/main_job.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llmecon.planners import optimal_rates
from llmecon.runs import build_config, build_simulation, read_events
from llmecon.runs.events import Blob, LLMCall
from llmecon.testing.fake_servers import serve_in_subprocess

RESULTS = Path(__file__).resolve().parent / "results" / "main_job.json"
LATENCY_S = 0.1


def _prefix_share(texts: list[str]) -> float:
    """Mean share of each text that is the prefix common to all of them."""
    common = os.path.commonprefix(texts)  # noqa: RUF071 - a text prefix, not paths
    return statistics.mean(len(common) / len(t) for t in texts)


def bench_throughput(out: Path, agents: int = 100, years: int = 10) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "sk-fake-benchmark-key")
    with serve_in_subprocess("openai", latency_s=LATENCY_S) as url:
        config = build_config(
            overrides=dict(
                planner="openai/fake-model",
                workers="openai/fake-model",
                api_base=url,
                agents=agents,
                years=years,
                max_concurrency=256,
                out=str(out),
                run_id="throughput",
                reference=False,
            )
        )
        sim = build_simulation(config)
        stamps = [time.perf_counter()]
        sim.run(lambda record, stats: stamps.append(time.perf_counter()))
    per_year = [b - a for a, b in itertools.pairwise(stamps)]
    # Ideal: year 0 has no planner call (status quo); later years one planner round trip
    # then one round of concurrent worker calls.
    ideal = [LATENCY_S] + [2 * LATENCY_S] * (years - 1)
    events = read_events(out / "throughput")
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    calls = [e for e in events if isinstance(e, LLMCall)]
    workers = [c for c in calls if c.role == "worker"]
    planners = [c for c in calls if c.role == "planner"]
    shares = []
    for year in range(years):
        texts = ["\n".join(blobs[m.sha256] for m in c.messages) for c in workers if c.year == year]
        shares.append(_prefix_share(texts))
    return {
        "agents": agents,
        "years": years,
        "latency_s": LATENCY_S,
        "seconds_per_year": per_year,
        "ideal_seconds_per_year": ideal,
        "mean_ideal_over_actual": statistics.mean(
            i / a for i, a in zip(ideal, per_year, strict=True)
        ),
        "worker_input_tokens": statistics.mean(c.input_tokens for c in workers),
        "worker_output_tokens": statistics.mean(c.output_tokens for c in workers),
        "planner_input_tokens": statistics.mean(c.input_tokens for c in planners),
        "planner_output_tokens": statistics.mean(c.output_tokens for c in planners),
        "worker_static_prefix_share": statistics.mean(shares),
        "failures": sum(c.error_type is not None for c in calls),
    }


def bench_quality(out: Path, years: int, skip_local: bool) -> dict[str, Any]:
    planners = {"saez": "saez", "ucb": "ucb"}
    if not skip_local:
        planners["local"] = "local/smollm2-135m"
        planners["local+hints"] = "local/smollm2-135m"
    rows: dict[str, Any] = {}
    oracle = None
    for label, planner in planners.items():
        config = build_config(
            overrides=dict(
                planner=planner,
                workers="rational",
                years=years,
                planner_hints=label.endswith("hints"),
                out=str(out),
                run_id=f"quality-{label.replace('+', '-')}",
                reference=False,
            )
        )
        sim = build_simulation(config)
        if oracle is None:
            oracle = optimal_rates(sim.economy, sim.edges).swf
        start = time.perf_counter()
        result = sim.run()
        rows[label] = {
            "pct_of_oracle_by_year": [100 * r.metrics.swf / oracle for r in result.records],
            "seconds": time.perf_counter() - start,
            "fallbacks": result.fallbacks,
        }
    return {"agents": config.agents, "years": years, "oracle_swf": oracle, "planners": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-local", action="store_true", help="no embedded-model planner")
    parser.add_argument("--years-quality", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        throughput = bench_throughput(Path(tmp))
        print("Throughput: 100 LLM workers + LLM planner, fake OpenAI server, 100 ms latency")
        print(f"{'year':>5} {'seconds':>9} {'ideal':>7} {'ideal/actual':>13}")
        for y, (a, i) in enumerate(
            zip(throughput["seconds_per_year"], throughput["ideal_seconds_per_year"], strict=True)
        ):
            print(f"{y:>5} {a:>9.3f} {i:>7.3f} {i / a:>13.2f}")
        print(
            f"mean ideal/actual {throughput['mean_ideal_over_actual']:.2f}; tokens per worker "
            f"decision {throughput['worker_input_tokens']:.0f} in / "
            f"{throughput['worker_output_tokens']:.0f} out; per planner call "
            f"{throughput['planner_input_tokens']:.0f} in / "
            f"{throughput['planner_output_tokens']:.0f} out; static prefix "
            f"{100 * throughput['worker_static_prefix_share']:.0f} % of each worker prompt; "
            f"failures {throughput['failures']}"
        )
        quality = bench_quality(Path(tmp), args.years_quality, args.skip_local)
    print(f"\nPlanner quality, rational workers, {quality['agents']} personas: % of oracle SWF")
    labels = list(quality["planners"])
    print(f"{'year':>5} " + " ".join(f"{label:>12}" for label in labels))
    for y in range(quality["years"]):
        cells = " ".join(
            f"{quality['planners'][label]['pct_of_oracle_by_year'][y]:>12.2f}" for label in labels
        )
        print(f"{y:>5} {cells}")
    for label in labels:
        row = quality["planners"][label]
        print(f"{label}: {row['seconds']:.1f} s, fallbacks {row['fallbacks']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"throughput": throughput, "quality": quality}, indent=2) + "\n")
    print(f"\nsaved {RESULTS}")


if __name__ == "__main__":
    main()
