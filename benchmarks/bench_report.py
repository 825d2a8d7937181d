"""Benchmark ``llmecon report``: the committed example and a 300-agent Saez run.

Times, per run, ``llmecon report RUN --out TMP`` end to end in a fresh process (what a
user waits for: imports, loading, references, rendering, writing) and, in this
process, the phases: ``load_run``, the references (Saez fixed point, status-quo
evaluation) and rendering. Best of 3. With ``--before SRC`` (a checkout of an older
llmecon, e.g. ``git archive HEAD | tar -x -C /tmp/before``) the end-to-end time of that
version is measured alternately with this one, under the same load. Saves
``benchmarks/results/report.json`` with the load average.

Run: ``python benchmarks/bench_report.py [--before /tmp/before]`` (from the repository
root).
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "report.json"
EXAMPLE = ROOT / "runs" / "examples" / "smollm2-tiny"
REPEAT = 3


def _saez_300(folder: Path, source: Path) -> Path:
    """A 300-agent Saez run (rational workers, 10 years), written by the llmecon in
    ``source``: the older version when comparing, since newer versions read older
    logs but not the other way round."""
    code = (
        "import sys; from llmecon.runs import RunConfig, build_simulation; "
        "build_simulation(RunConfig(planner='saez', workers='rational', agents=300, "
        "years=10, out=sys.argv[1], run_id='saez300')).run()"
    )
    env = dict(os.environ, PYTHONPATH=str(source))
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(folder)],
        check=True,
        env=env,
        cwd=source,
        capture_output=True,
    )
    return folder / "saez300"


def _cli_seconds(run: Path, out: Path, source: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(source))
    code = "import sys; from llmecon.cli import main; sys.exit(main())"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, "report", str(run), "--out", str(out)],
        check=True,
        env=env,
        cwd=source,
        capture_output=True,
    )
    return time.perf_counter() - t0


def _phases(run: Path) -> dict[str, float]:
    from llmecon.report import render_report
    from llmecon.report._references import references
    from llmecon.runs.dataframes import load_run

    best = {"load_s": float("inf"), "references_s": float("inf"), "render_s": float("inf")}
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        data = load_run(run)
        t1 = time.perf_counter()
        references(data)
        t2 = time.perf_counter()
        render_report([data])  # computes the references again, as the CLI does
        t3 = time.perf_counter()
        for key, value in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            best[key] = min(best[key], value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="source tree of the version to compare")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = _saez_300(folder, args.before or ROOT)
        for name, run in (("committed example", EXAMPLE), ("saez, 300 agents", big)):
            after: list[float] = []
            before: list[float] = []
            for i in range(REPEAT):
                after.append(_cli_seconds(run, folder / f"after-{i}.html", ROOT))
                if args.before is not None:
                    before.append(_cli_seconds(run, folder / f"before-{i}.html", args.before))
            row: dict[str, Any] = {
                "run": name,
                "cli_seconds": min(after),
                "cli_seconds_before": min(before) if before else None,
                **_phases(run),
                "html_bytes": (folder / "after-0.html").stat().st_size,
            }
            if before:
                row["html_bytes_before"] = (folder / "before-0.html").stat().st_size
            rows.append(row)
    load = os.getloadavg()
    for row in rows:
        was = row["cli_seconds_before"]
        was_text = f" (before {was:.2f} s)" if was is not None else ""
        print(
            f"{row['run']:>20}: {row['cli_seconds']:.2f} s end to end{was_text}; load "
            f"{row['load_s']:.2f} s, references {row['references_s']:.2f} s, render "
            f"{row['render_s']:.2f} s; {row['html_bytes'] / 1000:.0f} kB"
        )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": list(load),
        "results": rows,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
