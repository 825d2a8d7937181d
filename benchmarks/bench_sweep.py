"""Benchmark the sweep backends (issue 12): a 40-cell sweep (4 planners × 10 seeds,
1 000 rational workers, 20 years) in this process, in a local process pool of 2
(``--jobs 2``) and on a local Ray with 2 CPUs.

For each backend: wall time (backend start-up included), the sum of the cells' own run
times (measured inside each cell), and the overhead per cell: (wall × slots − Σ cell
time) / cells, i.e. core-seconds per cell spent outside the runs themselves (process
start, imports, scheduling, reading results back). Every backend must give the same
per-cell metrics as the sequential one (checked).

Run: ``python benchmarks/bench_sweep.py`` (``--quick``: 2 planners × 3 seeds, 5 years;
``--no-ray`` skips Ray). Results are saved to ``benchmarks/results/sweep.json``.
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

import llmecon

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"
METRICS = ("final_swf", "best_swf", "gain_closed", "mean_weekly_hours", "gini_income")


def one(label: str, out: Path, grid: dict[str, Any], base: dict[str, Any], **kw: Any) -> dict:
    start = time.perf_counter()
    result = llmecon.sweep(grid=grid, out=str(out), **base, **kw)
    wall = time.perf_counter() - start
    assert result.complete, result.cells[["cell_id", "status", "error"]]
    cells = len(result.cells)
    slots = 1 if kw.get("jobs", 1) == 1 else int(kw["jobs"])
    cell_time = float(result.cells["wall_s"].sum())
    row = {
        "backend": label,
        "cells": cells,
        "slots": slots,
        "wall_s": round(wall, 2),
        "sum_cell_s": round(cell_time, 2),
        "mean_cell_s": round(cell_time / cells, 3),
        "overhead_per_cell_s": round((wall * slots - cell_time) / cells, 3),
        "speedup_vs_sequential": None,
        "metrics": {r["cell_id"]: [r[m] for m in METRICS] for r in result.cells.to_dict("records")},
    }
    print(
        f"{label:>12}: wall {wall:7.1f} s  Σ cells {cell_time:7.1f} s  overhead/cell "
        f"{row['overhead_per_cell_s']:.3f} core-s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    if args.quick:
        grid: dict[str, Any] = {"planner": ["saez", "ucb"], "seed": "0-2"}
        base = {"workers": "rational", "agents": 1000, "years": 5}
    else:
        grid = {"planner": ["none", "us-federal", "saez", "ucb"], "seed": "0-9"}
        base = {"workers": "rational", "agents": 1000, "years": 20}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(one("sequential", Path(tmp) / "seq", grid, base, jobs=1))
        rows.append(one("pool --jobs 2", Path(tmp) / "pool", grid, base, jobs=2))
        if not args.no_ray:
            rows.append(one("local Ray (2)", Path(tmp) / "ray", grid, base, ray=True, jobs=2))
    reference = rows[0]["metrics"]
    for row in rows:
        row["identical_to_sequential"] = row.pop("metrics") == reference
        row["speedup_vs_sequential"] = round(rows[0]["wall_s"] / row["wall_s"], 2)
    report = {
        "what": "40-cell sweep: planners none, us-federal, saez, ucb × seeds 0-9, 1 000 "
        "rational workers (default persona bank), 20 years"
        if not args.quick
        else "quick: saez, ucb × seeds 0-2, 1 000 rational workers, 5 years",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"saved to {RESULTS}")
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
