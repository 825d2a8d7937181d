"""Benchmark reading runs as tables: ``load_run`` and what its tidy tables add (the
personas table, persona attributes joined onto ``agents``, ``run_id``/``seed`` columns,
1-based years, the long ``rates``), ``incidence``, ``welfare_decomposition`` and
``load_runs``.

A rational run of 1 000 Census personas over 100 tax years (an ``agents`` table of
100 000 rows) is written once to a temporary folder; each step is timed best of 3.
Saves ``benchmarks/results/tables.json`` with the machine's load average.

Run: ``python benchmarks/bench_tables.py`` (from the repository root).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llmecon
from llmecon.runs.dataframes import _agents_table
from llmecon.runs.personas_table import personas_table
from llmecon.runs.restore import restore_run
from llmecon.runs.tidy import join_personas, tidy

RESULTS = Path(__file__).resolve().parent / "results" / "tables.json"
AGENTS, YEARS = 1_000, 100


def _best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (0, 1, 2):
            llmecon.run(
                planner="flat:30",
                workers="rational",
                agents=AGENTS,
                years=YEARS,
                seed=seed,
                reference=False,
                out=tmp,
                run_id=f"bench-{seed}",
            )
        path = Path(tmp) / "bench-0"
        data = llmecon.load_run(path)
        run = restore_run(path, tolerant=True)
        economy = data.economy
        assert economy is not None
        events = run.events
        agents = _agents_table(events, economy)
        personas = personas_table(path, data.manifest.config, economy, AGENTS)
        rows = [
            ("load_run (everything)", lambda: llmecon.load_run(path)),
            ("  of which: _agents_table (as before)", lambda: _agents_table(events, economy)),
            (
                "  of which: personas table (new)",
                lambda: personas_table(path, data.manifest.config, economy, AGENTS),
            ),
            (
                "  of which: join personas + run_id/seed + 1-based years on agents (new)",
                lambda: tidy(join_personas(agents.copy(), personas), "r", 0),
            ),
            ("incidence('decile'), last year", lambda: data.incidence("decile")),
            (
                "incidence('occupation_group'), last year",
                lambda: data.incidence("occupation_group"),
            ),
            ("welfare_decomposition(), last year", lambda: data.welfare_decomposition()),
            ("load_runs of 3 such runs", lambda: llmecon.load_runs(tmp)),
        ]
        results = [{"task": name, "seconds": _best_of(fn)} for name, fn in rows]
    load = os.getloadavg()
    out = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "run": {"agents": AGENTS, "years": YEARS, "agents_rows": AGENTS * YEARS},
        "results": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for r in results:
        print(f"{r['seconds']:8.3f} s  {r['task']}")


if __name__ == "__main__":
    main()
