"""Benchmark archetype workers (issue 13): the million-persona year and the error.

1. **A million-persona year**: ``llmecon run`` with 1 000 000 personas × 1 year in
   archetype mode (K = 1 000) against the fake OpenAI server in its own process, the
   run itself in a child process: whole-process wall time (imports included), peak RSS
   (``wait4``), bytes written to the run folder. Targets: < 60 s, < 4 GB.
2. **Where the time and memory go** at 1 M: the run's stages one by one in a fresh
   child process (persona draw, population, economy, clustering, representative texts,
   one settled year, the worker-step event), wall time and peak RSS after each.
3. **Error against per-agent calls**: 100 000 personas, one year, the scripted
   reference model with 2 h noise (rational best response + noise, behind the model
   interface), K = 1 000 archetypes vs one call per persona, on three schedules:
   relative differences of welfare (the objective and utilitarian), revenue and mean
   hours. Target: within 1 %.

Run: ``python benchmarks/bench_archetypes.py`` (``--quick``: 100 000 personas in part 1
and 20 000 in part 3, a smoke test). Saves ``benchmarks/results/archetypes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "archetypes.json"
SCHEDULES = {
    "flat 30 %": "flat:0.3",
    "progressive 10–50 %": "fixed:10,15,25,30,40,45,50",
    "steep 0–70 %": "fixed:0,5,10,20,30,50,70",
}

_STAGES = r"""
import json, resource, sys, time
import numpy as np
n, k = int(sys.argv[1]), int(sys.argv[2])
rows = []
t0 = time.perf_counter()
def mark(stage):
    global t0
    now = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append({"stage": stage, "seconds": now - t0, "peak_rss_mb": rss})
    t0 = time.perf_counter()
from llmecon.runs import build_config
from llmecon.runs.wiring import build_population, build_economy, build_archetypes, RunStreams
from llmecon.agents.archetypes import ArchetypeWorkers
from llmecon.personas import persona_text
from llmecon.prompts import PromptLibrary
from llmecon.runs.events import WorkerStep
mark("imports")
config = build_config(overrides=dict(planner="flat:0.3", workers="scripted/reference",
    agents=n, years=1, workers_mode="archetypes", archetypes=k, reference=False))
streams = RunStreams.from_seed(config.seed)
source = build_population(config, streams.population)
mark("persona draw + population (columnar)")
economy = build_economy(config, source.population)
mark("economy (calibration)")
archetypes = build_archetypes(config, source)
mark("clustering (features, k-means, assignment)")
reps = ArchetypeWorkers.representative_economy(economy, archetypes)
library = PromptLibrary()
texts = [persona_text(p, library) for p in source.personas_at(archetypes.representatives)]
mark("representatives: economy + persona texts")
from llmecon.economy.economy import CALIBRATION_SCHEDULE as sq
hours = np.clip(source.population.usual_weekly_hours * 0.97, 0, 80)
metrics = economy.metrics(economy.outcome(sq, hours))
mark("settle one year (outcome + every SWF)")
line = WorkerStep(year=0, step=0, weekly_hours=[float(h) for h in hours]).model_dump_json()
mark(f"worker_step event as JSON ({len(line) / 1e6:.1f} MB)")
print(json.dumps(rows))
"""


def _child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``args`` to the end: (wall s, that process's own peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, not all children's
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode()[-3000:]
            raise RuntimeError(f"{args[:4]} failed ({proc.returncode}):\n{tail}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def bench_million(n: int, k: int) -> dict[str, Any]:
    """Part 1: the whole ``llmecon run`` process against the fake server."""
    from llmecon.testing.fake_servers import serve_in_subprocess

    env = {**os.environ, "LLMECON_API_KEY": "sk-fake-benchmark-key"}
    with tempfile.TemporaryDirectory() as out, serve_in_subprocess("openai") as url:
        args = [
            sys.executable,
            "-m",
            "llmecon",
            "run",
            "--planner",
            "flat:0.3",
            "--workers",
            "openai/fake",
            "--workers-api-base",
            url,
            "--price",
            "0,0",
            "--agents",
            str(n),
            "--years",
            "1",
            "--workers-mode",
            "archetypes",
            "--archetypes",
            str(k),
            "--no-reference",
            "--out",
            out,
            "--run-id",
            "million",
        ]
        wall, peak, _ = _child(args, env)
        folder = Path(out) / "million"
        files = {
            str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()
        }
    result = {
        "personas": n,
        "archetypes": k,
        "wall_s": wall,
        "peak_rss_mb": peak,
        "bytes_written": sum(files.values()),
        "files": dict(sorted(files.items(), key=lambda kv: -kv[1])[:8]),
        "target_wall_s": 60.0,
        "target_rss_mb": 4096.0,
    }
    print(
        f"{n:,} personas × 1 year, K = {k}: {wall:.1f} s wall, peak RSS {peak:.0f} MB, "
        f"{result['bytes_written'] / 1e6:.1f} MB written"
    )
    return result


def bench_stages(n: int, k: int) -> list[dict[str, Any]]:
    """Part 2: each stage of the million-persona path, in a fresh process."""
    _, _, out = _child([sys.executable, "-c", _STAGES, str(n), str(k)])
    rows: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    for row in rows:
        print(
            f"  {row['stage']:48} {row['seconds']:6.2f} s   peak RSS {row['peak_rss_mb']:6.0f} MB"
        )
    return rows


def bench_error(n: int, k: int) -> list[dict[str, Any]]:
    """Part 3: archetype runs against per-agent runs with known answers."""
    from llmecon.api import run

    rows = []
    for label, planner in SCHEDULES.items():
        common: dict[str, Any] = dict(
            planner=planner,
            workers="scripted/reference-noise2",
            agents=n,
            years=1,
            reference=False,
        )
        t0 = time.perf_counter()
        exact = run(**common, workers_mode="agents", write_log=False)
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        approx = run(**common, workers_mode="archetypes", archetypes=k, write_log=False)
        t_approx = time.perf_counter() - t0
        a, b = approx.records[-1].metrics, exact.records[-1].metrics
        errors = {
            name: (getattr(a, name) - getattr(b, name)) / abs(getattr(b, name))
            for name in ("swf", "utilitarian", "revenue_usd", "mean_weekly_hours")
        }
        row = {
            "schedule": label,
            "planner": planner,
            "personas": n,
            "archetypes": k,
            "relative_error": errors,
            "calls_per_agent_run": exact.summary.get("calls"),
            "calls_archetype_run": approx.summary.get("calls"),
            "seconds_per_agent_run": t_exact,
            "seconds_archetype_run": t_approx,
        }
        rows.append(row)
        shown = ", ".join(f"{name} {100 * e:+.3f} %" for name, e in errors.items())
        print(f"  {label:22} {shown}  ({t_exact:.0f} s vs {t_approx:.1f} s)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    ns = parser.parse_args()
    big, error_n = (100_000, 20_000) if ns.quick else (1_000_000, 100_000)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load,
        },
    }
    print("1. the million-persona year (whole process, fake OpenAI server in its own process)")
    results["million_year"] = bench_million(big, 1000)
    print("2. where time and memory go (stages, fresh process)")
    results["stages"] = bench_stages(big, 1000)
    print(f"3. error against per-agent calls ({error_n:,} personas, K = 1 000)")
    results["error"] = bench_error(error_n, 1000)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    if not ns.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
