"""Benchmark planner quality over a grid of economies (issue: welfare objective fixes).

For each SWF × ε ∈ {0.2, 0.4, 1} × {quasi-linear, CRRA η = 1, CRRA η = 2}: the share
of the welfare gain from no tax to the oracle that each baseline planner closes,
``(W − W_none) / (W_oracle − W_none)``, in its final year with rational workers
(``n/a`` when no tax is already optimal), and the oracle's time.

Planners: none, us-federal, flat:30, saez, saez-empirical, ucb, thompson, egreedy and
the oracle. Economies: the first 1 000 personas of the shipped bank (under CRRA too,
where every scored schedule needs its within-year rebate equilibrium), federal 2025
brackets, everything rebated. The machine's load average is saved with the results:
the machine may be shared, and timings only compare within one run; the oracle's CPU
time is saved next to its wall time.

Run: ``python benchmarks/bench_welfare_grid.py [--years 20] [--agents 1000]
[--crra-agents 1000]``. Results are saved to ``benchmarks/results/welfare_grid.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from llmecon.economy import Economy, Population, TaxSchedule, UtilityConfig, gain_closed
from llmecon.personas import default_bank_path, load_bank, population_from_personas
from llmecon.planners import (
    PlannerContext,
    SaezConvergenceWarning,
    YearRecord,
    make_planner,
    optimal_rates,
)

RESULTS = Path(__file__).resolve().parent / "results" / "welfare_grid.json"
SWFS = ("inverse_income", "utilitarian", "rawlsian", "equality_times_productivity")
ELASTICITIES = (0.2, 0.4, 1.0)
UTILITIES: tuple[tuple[str, float | None], ...] = (("QL", None), ("CRRA1", 1.0), ("CRRA2", 2.0))
PLANNERS = (
    "none",
    "us-federal",
    "flat:30",
    "saez",
    "saez-empirical",
    "ucb",
    "thompson",
    "egreedy",
)


def final_swf(economy: Economy, spec: str, years: int, seed: int) -> tuple[float, dict[str, Any]]:
    """Final-year SWF of a planner with rational workers, and its last ``last_detail``."""
    edges = TaxSchedule.status_quo().edges
    ctx = PlannerContext(economy, edges, np.random.default_rng(seed))
    planner = make_planner(spec, ctx)
    history: list[YearRecord] = []
    for year in range(years):
        schedule = planner.propose(history)
        assert isinstance(schedule, TaxSchedule)
        out, metrics = economy.evaluate(schedule)
        history.append(YearRecord(year, schedule, metrics, out.weekly_hours, out.income_usd))
    return history[-1].metrics.swf, dict(getattr(planner, "last_detail", {}) or {})


def bench_cell(
    population: Population, swf: str, elasticity: float, crra: float | None, years: int
) -> dict[str, Any]:
    economy = Economy(population, UtilityConfig(elasticity=elasticity, crra=crra), swf=swf)
    edges = TaxSchedule.status_quo().edges
    start, start_cpu = time.perf_counter(), time.process_time()
    oracle = optimal_rates(economy, edges)
    oracle_s = time.perf_counter() - start
    # CPU seconds of this process: less sensitive than wall time to other jobs on a
    # shared machine (still not immune: they share caches and cores).
    oracle_cpu_s = time.process_time() - start_cpu
    none_swf = economy.evaluate(TaxSchedule(edges, (0.0,) * len(edges)))[1].swf
    enacted = economy.evaluate(TaxSchedule(edges, tuple(oracle.rates)))[1].swf
    gains: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    start = time.perf_counter()
    for spec in PLANNERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SaezConvergenceWarning)  # reported below
            value, detail = final_swf(economy, spec, years, seed=0)
        gains[spec] = gain_closed(value, none_swf, oracle.swf)
        if spec == "saez":
            details = detail
    gains["oracle"] = gain_closed(enacted, none_swf, oracle.swf)
    return {
        "utility": "quasi-linear" if crra is None else f"CRRA eta={crra:g}",
        "crra": crra,
        "elasticity": elasticity,
        "swf": swf,
        "agents": population.size,
        "oracle_s": oracle_s,
        "oracle_cpu_s": oracle_cpu_s,
        "oracle_evaluations": oracle.evaluations,
        "oracle_converged": oracle.converged,
        "oracle_swf": oracle.swf,
        "oracle_rates": [round(float(r), 4) for r in oracle.rates],
        "none_swf": none_swf,
        "planners_s": time.perf_counter() - start,
        "saez_converged": details.get("saez_converged"),
        "saez_iterations": details.get("saez_iterations"),
        "gain_closed": gains,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=20, help="tax years per planner run")
    parser.add_argument("--agents", type=int, default=1000, help="personas, quasi-linear")
    parser.add_argument("--crra-agents", type=int, default=1000, help="personas under CRRA")
    args = parser.parse_args()

    bank = load_bank(default_bank_path())
    load_before = os.getloadavg()
    cells = []
    started = time.perf_counter()
    labels = [*PLANNERS, "oracle"]
    short = {"us-federal": "us-fed", "saez-empirical": "saez-emp", "flat:30": "flat30"}
    header = f"{'utility':<6} {'eps':>4} {'swf':<11} " + " ".join(
        f"{short.get(p, p):>8}" for p in labels
    )
    print("Share of the none → oracle welfare gain closed (%), final year, rational workers")
    print(header + f" {'oracle s':>9} {'cpu s':>6}")
    settings = {
        "years": args.years,
        "agents_quasi_linear": args.agents,
        "agents_crra": args.crra_agents,
        "personas": "first N of personas/default.jsonl",
        "brackets": "us-federal-2025",
        "rebate_share": 1.0,
        "metric": "gain_closed = (W_final - W_none) / (W_oracle - W_none)",
    }
    total = len(UTILITIES) * len(ELASTICITIES) * len(SWFS)
    for name, crra in UTILITIES:
        n = args.agents if crra is None else args.crra_agents
        population = population_from_personas(bank[:n], source="default bank")
        for eps in ELASTICITIES:
            for swf in SWFS:
                cell = bench_cell(population, swf, eps, crra, args.years)
                cells.append(cell)
                print(
                    f"{name:<6} {eps:>4.1f} {swf[:11]:<11} "
                    + " ".join(f"{_fmt(cell['gain_closed'][p]):>8}" for p in labels)
                    + f" {cell['oracle_s']:>9.1f} {cell['oracle_cpu_s']:>6.1f}",
                    flush=True,
                )
                # Saved after every cell, so an interrupted run keeps what it measured.
                _save(settings, cells, load_before, time.perf_counter() - started, total)
    print(f"total {time.perf_counter() - started:.0f} s")
    print(f"saved {RESULTS}")


def _save(
    settings: dict[str, Any],
    cells: list[dict[str, Any]],
    load_before: tuple[float, float, float],
    total_s: float,
    expected_cells: int,
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_min_after": [round(x, 2) for x in os.getloadavg()],
    }
    data = {
        "machine": machine,
        "settings": settings,
        "complete": len(cells) == expected_cells,
        "total_s": total_s,
        "cells": cells,
    }
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
