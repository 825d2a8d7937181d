"""Run-log benchmark: worker calls in ``events.jsonl`` (format 2 layout) vs in columnar
files (format 3), side by side in one run; results go to benchmarks/results/logs.json.

One run of ``--agents`` × ``--years`` (default 10 000 × 20) with the in-process mock
model as planner and workers (every worker decision is a real model call through the
agent and model layers, logged as in any LLM run) is written once per layout. For each:

- bytes on disk (``events.jsonl`` + ``calls/``) and bytes per worker call;
- write overhead: seconds spent in the log writer (``RunLog.append``, ``sync``) per year;
- ``read_log``, ``llmecon.load_run`` and ``llmecon replay``: wall seconds, CPU seconds
  (imports included) and peak RSS, each in a fresh process (so one's memory does not
  count for the next);
- columnar only, ``replay_per_call``: the replay with every worker call answered one by
  one through the model layer (``ReplayProvider.answers_in_bulk`` off), as replays did
  before a step's plain recorded calls were settled at once: the two side by side.

Then a 1 000 000-worker year on disk, without running one (1M mock calls would take
~20 min here): the last year's worker calls of the columnar run, tiled to 1M rows with
unique agent ids, written as the writer does (files of ``MAX_ROWS`` calls), plus that
year's ``worker_step`` with 1M hours. Tiles lie 10 000 rows (~12 MB of prompt text)
apart, further than a Parquet page (~1 MB), so compression gains nothing from the
repetition.

The layout is chosen through ``llmecon.runs.columnar.COLUMNAR_MIN_WORKERS`` (a run's
size decides it; the benchmark forces each). Run: ``python benchmarks/bench_logs.py
[--agents N --years Y]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "logs.json"
LAYOUTS = {"jsonl": 10**12, "columnar": 1}


def _write(out: str, run_id: str, agents: int, years: int, threshold: int) -> dict[str, Any]:
    from llmecon.runs import build_config, build_simulation, columnar
    from llmecon.runs.log import RunLog

    columnar.COLUMNAR_MIN_WORKERS = threshold
    spent = [0.0]

    def timed(method: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kw)
            finally:
                spent[0] += time.perf_counter() - t0

        return wrapper

    RunLog.append = timed(RunLog.append)  # type: ignore[method-assign]
    RunLog.sync = timed(RunLog.sync)  # type: ignore[method-assign]
    overrides = dict(planner="mock/default", agents=agents, years=years, out=out, run_id=run_id)
    config = build_config(overrides={**overrides, "reference": False})
    t0 = time.perf_counter()
    build_simulation(config).run()
    return {"run_s": time.perf_counter() - t0, "log_write_s": spent[0]}


def _read(path: str, what: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    if what == "read_log":
        from llmecon.runs.log import read_log

        read_log(path)
    elif what == "load_run":
        import llmecon

        run = llmecon.load_run(path)
        assert len(run.calls) > 0
    else:
        from llmecon.runs.recorded import ReplayProvider
        from llmecon.runs.replay import replay_run

        if what == "replay_per_call":
            ReplayProvider.answers_in_bulk = lambda self: False  # type: ignore[method-assign]
        report = replay_run(path)
        assert report.ok, report.differences[:3]
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds too: on a shared machine the wall time says as much about the load
    return {
        "s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def _million(run: Path, out: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from llmecon.runs.columnar import MAX_ROWS, ZSTD_LEVEL
    from llmecon.runs.events import WorkerStep
    from llmecon.runs.log import read_events

    events = read_events(run)
    last_year = max(e.year for e in events if isinstance(e, WorkerStep))
    files = sorted((run / "calls").glob(f"y{last_year:04d}-*.parquet"))
    year = pa.concat_tables([pq.read_table(f) for f in files])
    n = 1_000_000
    big = pa.concat_tables([year] * -(-n // year.num_rows)).slice(0, n)
    ids = pa.array([f"persona-{i:07d}" for i in range(n)])
    big = big.set_column(big.column_names.index("agent"), "agent", ids)
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for start in range(0, n, MAX_ROWS):
        chunk = big.slice(start, MAX_ROWS)
        path = out / f"y0000-s000-{start:09d}.parquet"
        pq.write_table(chunk, path, compression="zstd", compression_level=ZSTD_LEVEL)
    write_s = time.perf_counter() - t0
    calls = sum(f.stat().st_size for f in out.glob("*.parquet"))
    hours = [e for e in events if isinstance(e, WorkerStep)][-1].weekly_hours
    step = WorkerStep(year=0, step=0, weekly_hours=(hours * (-(-n // len(hours))))[:n])
    hours_bytes = len(step.model_dump_json()) + 1
    new_blobs = pc.sum(pc.list_value_length(big.column("new_blobs"))).as_py()
    return {
        "calls_bytes": calls,
        "worker_step_bytes": hours_bytes,
        "total_mb": (calls + hours_bytes) / 1e6,
        "write_s": write_s,
        "prompt_texts_stored": new_blobs,
    }


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _bytes(run: Path) -> dict[str, int]:
    calls = (
        sum(f.stat().st_size for f in (run / "calls").glob("*")) if (run / "calls").is_dir() else 0
    )
    return {"events_jsonl": (run / "events.jsonl").stat().st_size, "calls_dir": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--out", default="/tmp/llmecon-bench-logs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "write":
            out, run_id, agents, years, threshold = rest
            result = _write(out, run_id, int(agents), int(years), int(threshold))
        else:
            result = _read(rest[0], kind)
        print(json.dumps(result))
        return
    out = Path(args.out) / f"{args.agents}x{args.years}-{int(time.time())}"
    out.mkdir(parents=True)
    results: dict[str, Any] = {
        "agents": args.agents,
        "years": args.years,
        "worker_calls": args.agents * args.years,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_before": os.getloadavg(),
        "layouts": {},
    }
    for layout, threshold in LAYOUTS.items():
        print(f"{layout}: writing …", flush=True)
        w = _child("write", str(out), layout, str(args.agents), str(args.years), str(threshold))
        run = out / layout
        size = _bytes(run)
        total = sum(size.values())
        row: dict[str, Any] = {
            **size,
            "total_bytes": total,
            "bytes_per_worker_call": total / (args.agents * args.years),
            "run_s": w["run_s"],
            "log_write_s_per_year": w["log_write_s"] / args.years,
        }
        kinds = ["read_log", "load_run", "replay"]
        if layout == "columnar":
            kinds.append("replay_per_call")
        for what in kinds:
            print(f"{layout}: {what} …", flush=True)
            r = _child(what, str(run))
            row[f"{what}_s"], row[f"{what}_peak_rss_mb"] = r["s"], r["peak_rss_mb"]
            row[f"{what}_cpu_s"] = r["cpu_s"]
        results["layouts"][layout] = row
        print(json.dumps({layout: row}, indent=1), flush=True)
    print("a 1 000 000-worker year …", flush=True)
    results["million_worker_year"] = _million(out / "columnar", out / "million")
    print(json.dumps(results["million_worker_year"]), flush=True)
    results["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
