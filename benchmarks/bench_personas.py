"""Benchmark the persona sampler and the persona text rendering.

Targets (issue 3): sampling 1e6 personas (without text) < 10 s; rendering 1 000 persona
texts < 1 s. Prints a table with the ratio time / target and saves
``benchmarks/results/personas.json``.

Run: ``python benchmarks/bench_personas.py`` (from the repository root).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from llmecon.personas import load_tables, persona_text, sample_personas
from llmecon.prompts import PromptLibrary

RESULTS = Path(__file__).resolve().parent / "results" / "personas.json"
TARGETS_S = {1_000_000: 10.0}
RENDER_N, RENDER_TARGET_S = 1_000, 1.0


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    load_tables()  # table loading is a one-off cost, measured separately
    rows = []
    for n in (1_000, 10_000, 100_000, 1_000_000):
        seconds = _best_of(
            lambda n=n: sample_personas(n, np.random.default_rng(0)), 3 if n < 10**6 else 2
        )
        target = TARGETS_S.get(n)
        rows.append(
            {"task": f"sample {n:,} personas", "n": n, "seconds": seconds, "target_s": target}
        )
    gb2 = _best_of(lambda: sample_personas(1_000_000, np.random.default_rng(0), mode="gb2"), 2)
    rows.append(
        {"task": "sample 1,000,000 personas (gb2)", "n": 10**6, "seconds": gb2, "target_s": 10.0}
    )
    personas = sample_personas(RENDER_N, np.random.default_rng(0)).to_personas()
    library = PromptLibrary()
    persona_text(personas[0], library)  # template compile, once
    seconds = _best_of(lambda: [persona_text(p, library) for p in personas], 3)
    rows.append(
        {
            "task": f"render {RENDER_N:,} persona texts",
            "n": RENDER_N,
            "seconds": seconds,
            "target_s": RENDER_TARGET_S,
        }
    )
    convert = _best_of(lambda: sample_personas(RENDER_N, np.random.default_rng(0)).to_personas(), 3)
    rows.append(
        {
            "task": f"sample + to_personas {RENDER_N:,}",
            "n": RENDER_N,
            "seconds": convert,
            "target_s": None,
        }
    )

    print(f"{'task':<38} {'seconds':>9} {'target':>8} {'ratio':>7}")
    for r in rows:
        target = r["target_s"]
        ratio = f"{r['seconds'] / target:.3f}" if target else "-"
        tgt = f"{target:.1f}" if target else "-"
        print(f"{r['task']:<38} {r['seconds']:>9.4f} {tgt:>8} {ratio:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": platform.platform(), "python": platform.python_version(), "results": rows}
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
