"""Secret redaction's CPU per text, of two copies of llmecon side by side (e.g. before
and after a change to ``llmecon/models/_redact.py``); results go to
benchmarks/results/redact.json.

Every reply, parsed value and error of a model call passes through
``llmecon.models.redact``, so its cost is part of the per-call client CPU that
``bench_http_overhead.py`` measures (there, 300–500 µs a call on 2 cores, and too
noisy on a loaded machine to see a microsecond). Here each arm's ``redact`` is timed
alone, in a fresh process with the arm's copy on ``PYTHONPATH``, with two provider keys
in the environment, on texts a run sends through it: a worker's reply (43 bytes), a
planner's reply with a rationale (~2 KB), and that reply with JSON escapes of non-ASCII
letters (``\\u00e1``, as some servers write them). Arms alternate within every repeat;
the figure is the best of five timings of 20 000–200 000 calls, min and median over
repeats.

Run::

    python benchmarks/bench_redact.py --arm before=/path/to/old/checkout --arm after=. \\
        --repeats 3 --out benchmarks/results/redact.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = '{"hours": 40, "reason": "the rebate helps"}'
PLANNER = (
    '{"rates": [10, 12, 22, 24, 32, 35, 37], "rationale": "'
    + ("Revenue rose while hours held; raise the middle brackets a little. " * 30)
    + '"}'
)
TEXTS = {
    "worker reply": (WORKER, 200_000),
    "planner reply": (PLANNER, 20_000),
    "planner reply, JSON escapes": (PLANNER.replace("little", "l\\u00edttle"), 20_000),
}


def child() -> None:
    import timeit

    os.environ["OPENAI_API_KEY"] = "sk-bench-value-0001-abcdefghijklmnop"
    os.environ["ANTHROPIC_API_KEY"] = "sk-ant-bench-value-0002-abcdefghijklmnop"
    from llmecon.models import redact

    out = {}
    for name, (text, number) in TEXTS.items():
        redact(text)
        best = min(timeit.repeat(lambda t=text: redact(t), number=number, repeat=5))
        out[name] = 1e6 * best / number
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--arm", action="append", default=[], help="NAME=PYTHONPATH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child()
        return
    arms = dict(a.split("=", 1) for a in args.arm) or {"this": "."}
    rows = []
    for repeat in range(args.repeats):
        order = list(arms) if repeat % 2 == 0 else list(reversed(arms))
        for arm in order:
            env = {**os.environ, "PYTHONPATH": str(Path(arms[arm]).resolve())}
            done = subprocess.run(
                [sys.executable, __file__, "--child"],
                env=env, capture_output=True, text=True, check=True, timeout=600,
            )  # fmt: skip
            figures = json.loads(done.stdout)
            rows.append({"arm": arm, "repeat": repeat, "us_per_call": figures})
            print(arm, repeat, {k: round(v, 2) for k, v in figures.items()}, flush=True)
    summary = {
        arm: {
            text: {
                "min_us": min(r["us_per_call"][text] for r in rows if r["arm"] == arm),
                "median_us": statistics.median(
                    r["us_per_call"][text] for r in rows if r["arm"] == arm
                ),
            }
            for text in TEXTS
        }
        for arm in arms
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "machine": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "arms": arms,
                    "rows": rows,
                    "summary": summary,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
