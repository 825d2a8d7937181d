"""Benchmark the oracle under CRRA on the slowest cells of the welfare grid.

The cells (the first 1 000 or 100 personas of the shipped bank, federal 2025 brackets):
the four that took longest in ``benchmarks/results/welfare_grid.json`` before the
oracle's CRRA speed-up (inverse income ε 1 η 2, Rawlsian ε 0.2 η 1, inverse income ε 0.4
η 1, equality × productivity ε 1 η 2), at 1 000 personas; at 100 (a run's common size)
inverse income ε 0.4 η 2 (the slowest a run met), Rawlsian ε 0.2 η 1, the AI Economist's
equality × productivity ε 1 η 0.23, and a quasi-linear inverse-income cell. Each run is
a fresh process, so ``--baseline DIR`` (a directory holding another version's ``llmecon``
package, e.g. a ``git worktree`` of an earlier commit) is measured side by side with this
checkout, alternating, ``--repeats`` times each. Saved per run: CPU and wall seconds,
schedules scored (``evaluations``), the oracle's claimed SWF, the SWF ``evaluate`` gives
its schedule and no tax's SWF (so that versions' optima compare as shares of the
none → oracle gain); the load average before and after. CPU seconds are the figure to
compare: less sensitive than wall time to other jobs on a shared machine (not immune:
they share caches and cores).

Run: ``python benchmarks/bench_crra_oracle.py [--baseline DIR] [--baseline-label TEXT]
[--repeats 2]``. Results go to ``benchmarks/results/crra_oracle.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "crra_oracle.json"
CELLS = (  # (agents, SWF, ε, η; 0 = quasi-linear)
    (1000, "inverse_income", 1.0, 2.0),
    (1000, "rawlsian", 0.2, 1.0),
    (1000, "inverse_income", 0.4, 1.0),
    (1000, "equality_times_productivity", 1.0, 2.0),
    (100, "inverse_income", 0.4, 2.0),
    (100, "rawlsian", 0.2, 1.0),
    (100, "equality_times_productivity", 1.0, 0.23),
    (100, "inverse_income", 0.4, 0.0),
)

# Runs in a child process whose import path puts the measured version first.
_CHILD = """
import json, sys, time
from llmecon.economy import Economy, TaxSchedule, UtilityConfig
from llmecon.personas import load_bank, population_from_personas
from llmecon.planners import optimal_rates
bank_path, swf = sys.argv[1], sys.argv[2]
eps, eta, n = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
population = population_from_personas(load_bank(bank_path)[:n], source="default bank")
economy = Economy(population, UtilityConfig(elasticity=eps, crra=eta or None), swf=swf)
edges = TaxSchedule.status_quo().edges
none = economy.evaluate(TaxSchedule(edges, (0.0,) * len(edges)))[1].swf
wall, cpu = time.perf_counter(), time.process_time()
result = optimal_rates(economy, edges)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
enacted = economy.evaluate(TaxSchedule(edges, tuple(result.rates)))[1].swf
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "oracle_swf": result.swf, "none_swf": none,
                  "enacted_swf": enacted, "evaluations": result.evaluations,
                  "converged": result.converged}))
"""


def run_child(version: Path, code: str, *argv: object) -> Any:
    """Run ``code`` in a fresh interpreter whose import path puts ``version``'s llmecon
    first (it runs in that directory: `python -c` puts it first on the path); the JSON
    of its last line of output."""
    env = {**os.environ, "PYTHONPATH": str(version)}
    args = [sys.executable, "-c", code, *map(str, argv)]
    out = subprocess.run(args, env=env, cwd=version, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run(version: Path, agents: int, swf: str, eps: float, eta: float) -> dict[str, Any]:
    bank = ROOT / "personas" / "default.jsonl"
    return dict(run_child(version, _CHILD, bank, swf, eps, eta, agents))


def baseline_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that measures a ``--baseline`` beside this
    checkout."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="directory with another llmecon")
    parser.add_argument("--baseline-label", default="", help="what the baseline is (saved)")
    return parser


def versions_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Path]:
    """``{"baseline": DIR, "current": this checkout}`` (without a baseline, the latter)."""
    versions = {"current": ROOT}
    if args.baseline is not None:
        if not (args.baseline / "llmecon").is_dir():
            parser.error(f"{args.baseline} holds no llmecon package")
        versions = {"baseline": args.baseline.resolve(), **versions}
    return versions


def main() -> None:
    parser = baseline_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell and version")
    args = parser.parse_args()
    versions = versions_of(parser, args)
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for agents, swf, eps, eta in CELLS:
        for repeat in range(args.repeats):
            for name, path in versions.items():
                run = {"version": name, "agents": agents, "swf": swf, "elasticity": eps}
                run |= {"crra": eta, "repeat": repeat, **_run(path, agents, swf, eps, eta)}
                runs.append(run)
                print(
                    f"{name:<9} {agents:>5} {swf[:14]:<14} eps {eps:g} eta {eta:g}: "
                    f"cpu {run['cpu_s']:.1f} s, wall {run['wall_s']:.1f} s, "
                    f"{run['evaluations']} schedules, "
                    f"swf {run['oracle_swf']:.12g} (evaluate {run['enacted_swf']:.12g})",
                    flush=True,
                )
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_min_after": [round(x, 2) for x in os.getloadavg()],
    }
    data = {
        "machine": machine,
        "baseline": args.baseline_label or (str(args.baseline) if args.baseline else None),
        "summary": _summary(runs),
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"saved {RESULTS}")


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell and version: the fastest CPU and wall seconds of the repeats, the
    schedules scored and the SWF found (the same in every repeat), and the optimum's
    SWF above the baseline's as a share of the none → oracle gain (when both ran)."""
    cells: dict[tuple[int, str, float, float, str], list[dict[str, Any]]] = {}
    for run in runs:
        key = (run["agents"], run["swf"], run["elasticity"], run["crra"], run["version"])
        cells.setdefault(key, []).append(run)
    rows = [
        {
            "agents": agents,
            "swf": swf,
            "elasticity": eps,
            "crra": eta,
            "version": version,
            "min_cpu_s": min(r["cpu_s"] for r in group),
            "min_wall_s": min(r["wall_s"] for r in group),
            "evaluations": group[0]["evaluations"],
            "oracle_swf": group[0]["oracle_swf"],
            "none_swf": group[0]["none_swf"],
        }
        for (agents, swf, eps, eta, version), group in cells.items()
    ]
    baseline = {tuple(r[k] for k in _CELL): r for r in rows if r["version"] == "baseline"}
    for row in rows:
        base = baseline.get(tuple(row[k] for k in _CELL))
        if base is not None and row is not base:
            gain = base["oracle_swf"] - base["none_swf"]
            row["oracle_above_baseline_share_of_gain"] = (
                (row["oracle_swf"] - base["oracle_swf"]) / gain if gain else None
            )
            row["cpu_ratio_to_baseline"] = row["min_cpu_s"] / base["min_cpu_s"]
    return rows


_CELL = ("agents", "swf", "elasticity", "crra")


if __name__ == "__main__":
    main()
