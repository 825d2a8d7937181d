"""Benchmark the economy core and the oracle (issue: foundation).

1. Best response + metrics for 1e3 … 1e6 agents on the 7 federal brackets: cold (first
   call, includes allocation) and warm (median of repeats) seconds, ns per agent, and the
   per-agent cost relative to 1e3 (≈ 1 means linear). Target: < 1 s at 1e6.
2. The oracle for 1 000 agents (target < 10 s) next to scipy's differential evolution
   with a long budget; the gap in SWF (target < 0.1 %).

Run: ``python benchmarks/bench_economy.py`` (``--quick`` for a shorter DE budget).
Results are saved to ``benchmarks/results/economy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.optimize import differential_evolution

from llmecon.economy import Economy, TaxSchedule, synthetic_population
from llmecon.planners import optimal_rates

RESULTS = Path(__file__).resolve().parent / "results" / "economy.json"


def bench_best_response(sizes: list[int], repeats: int) -> list[dict[str, float]]:
    schedule = TaxSchedule.status_quo()
    shifted = schedule.with_rates([0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45])
    rows = []
    for n in sizes:
        economy = Economy(synthetic_population(n, np.random.default_rng(n)))
        start = time.perf_counter()
        economy.evaluate(shifted)
        cold = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            economy.evaluate(schedule)
            times.append(time.perf_counter() - start)
        warm = statistics.median(times)
        rows.append({"agents": n, "cold_s": cold, "warm_s": warm, "ns_per_agent": 1e9 * warm / n})
    base = rows[0]["ns_per_agent"]
    for row in rows:
        row["cost_per_agent_vs_1e3"] = row["ns_per_agent"] / base
    return rows


def bench_oracle(de_maxiter: int) -> dict[str, float]:
    economy = Economy(synthetic_population(1_000, np.random.default_rng(0)))
    edges = TaxSchedule.status_quo().edges
    start = time.perf_counter()
    oracle = optimal_rates(economy, edges)
    oracle_s = time.perf_counter() - start

    start = time.perf_counter()
    de = differential_evolution(
        lambda x: -economy.welfare_of_rates(edges, x.T),
        [(0.0, 1.0)] * len(edges),
        vectorized=True,
        updating="deferred",
        maxiter=de_maxiter,
        popsize=20,
        tol=0,
        seed=1,
        polish=False,
    )
    de_s = time.perf_counter() - start
    de_swf = -float(de.fun)
    return {
        "oracle_s": oracle_s,
        "oracle_swf": oracle.swf,
        "oracle_evaluations": oracle.evaluations,
        "oracle_evaluations_per_s": oracle.evaluations / oracle_s,
        "de_s": de_s,
        "de_swf": de_swf,
        # With vectorized=True scipy counts one call per generation; count schedules.
        "de_evaluations": 20 * len(edges) * (int(de.nit) + 1),
        "gap_pct": 100.0 * (de_swf - oracle.swf) / abs(de_swf),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short DE budget")
    args = parser.parse_args()

    rows = bench_best_response([1_000, 10_000, 100_000, 1_000_000], repeats=5)
    print("Best response + metrics, 7 brackets")
    print(f"{'agents':>10} {'cold s':>9} {'warm s':>9} {'ns/agent':>9} {'vs 1e3':>7}")
    for r in rows:
        print(
            f"{r['agents']:>10,} {r['cold_s']:>9.4f} {r['warm_s']:>9.4f} "
            f"{r['ns_per_agent']:>9.1f} {r['cost_per_agent_vs_1e3']:>7.2f}"
        )
    print(f"target: < 1 s at 1e6 -> {'PASS' if rows[-1]['warm_s'] < 1 else 'FAIL'}")

    oracle = bench_oracle(de_maxiter=200 if args.quick else 1_000)
    print("\nOracle vs differential evolution, 1 000 agents, 7 brackets")
    print(f"{'':<22} {'seconds':>9} {'SWF':>14} {'evaluations':>12}")
    print(
        f"{'oracle':<22} {oracle['oracle_s']:>9.2f} {oracle['oracle_swf']:>14.4f} "
        f"{oracle['oracle_evaluations']:>12,}"
    )
    print(
        f"{'differential evol.':<22} {oracle['de_s']:>9.2f} {oracle['de_swf']:>14.4f} "
        f"{oracle['de_evaluations']:>12,}"
    )
    print(
        f"oracle speed-up x{oracle['de_s'] / oracle['oracle_s']:.1f}; "
        f"DE better by {oracle['gap_pct']:.4f} % (target < 0.1 %); "
        f"oracle {oracle['oracle_evaluations_per_s']:,.0f} schedule evaluations/s"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
                "best_response": rows,
                "oracle": oracle,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nsaved {RESULTS}")


if __name__ == "__main__":
    main()
