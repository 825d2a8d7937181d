"""Benchmark the oracle on small populations: the optimum it finds and its CPU time.

With a handful of workers the welfare is lumpy (it jumps where a worker changes
bracket), and the oracle's local climbs can stop far below the optimum: a planner's
share of the gain then reads above 100 %. Cells: random draws (seeds 0–4, without
replacement) of 4, 8, 16, 32, 64 and 100 personas of the shipped bank, with their
survey weights; inverse-income SWF, ε = 0.4, federal brackets; quasi-linear utility,
and CRRA η = 2 up to 32 personas, where this checkout is also measured with the pair
grids it leaves off under CRRA turned on (``grids under CRRA``: what they would cost and
find). Each version and cell runs in a fresh process;
``--baseline DIR`` (a directory holding another version's ``llmecon`` package, e.g. a
``git worktree`` of an earlier commit) is measured side by side with this checkout,
alternating. Saved per draw: CPU seconds, schedules scored, the oracle's SWF, the SWF
``evaluate`` gives its schedule and no tax's SWF; per cell, how far this checkout's
optimum is above the baseline's as a share of the none → oracle gain.

Run: ``python benchmarks/bench_oracle_small.py [--baseline DIR] [--baseline-label
TEXT]``. Results go to ``benchmarks/results/oracle_small.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or imported
from bench_crra_oracle import ROOT, baseline_parser, run_child, versions_of

RESULTS = ROOT / "benchmarks" / "results" / "oracle_small.json"
SIZES = (4, 8, 16, 32, 64, 100)
DRAWS = 5
CRRA_UP_TO = 32  # personas: CRRA cells above it take minutes and found nothing new

# Runs in a child process whose import path puts the measured version first.
_CHILD = """
import json, sys, time
import numpy as np
from llmecon.economy import Economy, TaxSchedule, UtilityConfig
from llmecon.personas import load_bank, population_from_personas
from llmecon.planners import optimal_rates, oracle
bank = load_bank(sys.argv[1])
n, eta, draws = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
oracle._PAIR_GRIDS_UNDER_CRRA = sys.argv[5] == "1"
edges = TaxSchedule.status_quo().edges
out = []
for seed in range(draws):
    picked = np.random.default_rng(seed).choice(len(bank), size=n, replace=False)
    population = population_from_personas([bank[int(i)] for i in picked], source="draw")
    utility = UtilityConfig(elasticity=0.4, crra=eta or None)
    economy = Economy(population, utility, swf="inverse_income")
    none = economy.evaluate(TaxSchedule(edges, (0.0,) * len(edges)))[1].swf
    cpu = time.process_time()
    result = optimal_rates(economy, edges)
    cpu = time.process_time() - cpu
    enacted = economy.evaluate(TaxSchedule(edges, tuple(result.rates)))[1].swf
    out.append({"seed": seed, "cpu_s": cpu, "oracle_swf": result.swf, "none_swf": none,
                "enacted_swf": enacted, "evaluations": result.evaluations,
                "rates": [round(float(r), 6) for r in result.rates]})
print(json.dumps(out))
"""


def _run(version: Path, n: int, eta: float, crra_grids: bool = False) -> list[dict[str, Any]]:
    bank = ROOT / "personas" / "default.jsonl"
    return list(run_child(version, _CHILD, bank, n, eta, DRAWS, int(crra_grids)))


#: (version, the version it is compared with): the optimum above the other's and the
#: CPU ratio, per cell.
_PAIRS = (("current", "baseline"), ("grids under CRRA", "current"))


def main() -> None:
    parser = baseline_parser(__doc__)
    args = parser.parse_args()
    versions = versions_of(parser, args)
    load_before = os.getloadavg()
    cells: list[dict[str, Any]] = []
    for eta in (0.0, 2.0):
        for n in SIZES:
            if eta and n > CRRA_UP_TO:
                continue
            found = {name: _run(path, n, eta) for name, path in versions.items()}
            if eta:
                found["grids under CRRA"] = _run(ROOT, n, eta, crra_grids=True)
            cell: dict[str, Any] = {"personas": n, "crra": eta, "draws": found}
            cell |= _compare(found)
            cells.append(cell)
            print(_line(cell), flush=True)
    data = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
            "load_average_1_5_15_min_after": [round(x, 2) for x in os.getloadavg()],
        },
        "baseline": args.baseline_label or (str(args.baseline) if args.baseline else None),
        "cells": cells,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"saved {RESULTS}")


def _compare(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """CPU per draw of each version; with a baseline, this checkout's optimum above the
    baseline's as a share of the baseline's none → oracle gain, per draw."""
    row: dict[str, Any] = {
        f"{name}_mean_cpu_s": sum(d["cpu_s"] for d in draws) / len(draws)
        for name, draws in found.items()
    }
    row["claims_equal_evaluate"] = all(
        abs(d["oracle_swf"] - d["enacted_swf"]) <= 1e-9 * max(1.0, abs(d["enacted_swf"]))
        for draws in found.values()
        for d in draws
    )
    for name, other in _PAIRS:
        if name in found and other in found:
            row[f"{name} above {other}, share of the gain"] = [
                (c["oracle_swf"] - b["oracle_swf"]) / (b["oracle_swf"] - b["none_swf"])
                for b, c in zip(found[other], found[name], strict=True)
            ]
            row[f"{name} over {other}, CPU"] = (
                row[f"{name}_mean_cpu_s"] / row[f"{other}_mean_cpu_s"]
            )
    return row


def _line(cell: dict[str, Any]) -> str:
    cpu = ", ".join(
        f"{k[: -len('_mean_cpu_s')]} {v:.2f} s"
        for k, v in cell.items()
        if k.endswith("_mean_cpu_s")
    )
    text = f"{cell['personas']:>4} personas, eta {cell['crra']:g}: mean CPU {cpu}"
    for name, other in _PAIRS:
        if (key := f"{name} above {other}, share of the gain") in cell:
            shares = " ".join(f"{100 * s:+.2f}%" for s in cell[key])
            ratio = cell[f"{name} over {other}, CPU"]
            text += f"; {name} above {other} (share of the gain): {shares}, CPU × {ratio:.1f}"
    return text + ("" if cell["claims_equal_evaluate"] else "; A CLAIM DIFFERS FROM EVALUATE")


if __name__ == "__main__":
    main()
