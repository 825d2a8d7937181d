"""Client CPU per call of the ``http`` transports (OpenAI and Anthropic) of two copies
of llmecon side by side (e.g. before and after a change), beside a bare aiohttp client,
against the fake servers in a process of their own (100 ms latency).

Each cell (arm, transport, concurrency) runs in a fresh child process with the arm's
copy of llmecon on ``PYTHONPATH``, under a run's collector settings (``run_gc``), as the
``transports`` part of ``bench_throughput.py`` does: ``concurrency`` warm-up calls,
then three waves of ``max(400, 4 · concurrency)`` calls at once (the cell's figure is
the median wave) and, with ``--sustained S``, S seconds of calls at the ideal rate
started at once (as that part's sustained measurement). Arms alternate within every
repeat (their order reversed on odd repeats), so the machine's noise falls on both
alike; the summary gives the min and median over repeats.

Run::

    python benchmarks/bench_http_overhead.py --arm before=/path/to/old/checkout \\
        --arm after=. --repeats 3 --out benchmarks/results/http_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LATENCY_S = 0.1
CONCURRENCIES = (16, 64, 256, 1024)
SERVERS = {"openai": "openai/fake", "anthropic": "anthropic/claude-bench"}


# -- child: one cell -------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _prompt(i: int) -> Any:
    from llmecon.models import ChatMessage

    return [
        ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
        ChatMessage(role="user", content=f"Week {i}: how many hours will you work? JSON please."),
    ]


#: Timed waves per cell (after the warm-up), in one session: a cell's figure is the
#: median wave.
WAVES = 3


async def _timed(
    call: Any, concurrency: int, n: int, pid: int, waves_n: int = WAVES
) -> dict[str, Any]:
    await asyncio.gather(*[call(-i) for i in range(concurrency)])
    waves = []
    for _ in range(waves_n):
        t0, cpu0, server0 = time.perf_counter(), time.process_time(), process_cpu_s(pid)
        await asyncio.gather(*[call(i) for i in range(n)])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        waves.append((cpu / n * 1e6, n / wall / (concurrency / LATENCY_S), wall))
        waves[-1] += ((process_cpu_s(pid) - server0) / n * 1e6,)
    cpu_us = statistics.median(w[0] for w in waves)
    return {
        "calls": n,
        "waves": len(waves),
        "client_cpu_us_per_call": cpu_us,
        "achieved_over_ideal": statistics.median(w[1] for w in waves),
        "wall_s": statistics.median(w[2] for w in waves),
        "server_cpu_us_per_call": statistics.median(w[3] for w in waves),
        "per_wave": waves,
    }


async def _llmecon_cell(
    kind: str, url: str, pid: int, concurrency: int, n: int, waves: int = WAVES
) -> Any:
    from pydantic import BaseModel, Field

    from llmecon.models import GenerateConfig, get_model

    class WorkerDecision(BaseModel):
        hours: int = Field(ge=0, le=80)

    config = GenerateConfig(max_retries=0, timeout_s=300)
    model = get_model(
        SERVERS[kind], api_base=url, max_concurrency=concurrency, config=config, transport="http"
    )
    outs: list[Any] = []

    async def call(i: int) -> None:
        out = await model.generate(_prompt(i), WorkerDecision)
        outs.append(out.parsed)

    try:
        result = await _timed(call, concurrency, n, pid, waves)
    finally:
        await model.aclose()
    assert all(o is not None for o in outs)
    return result


async def _bare_cell(
    kind: str, url: str, pid: int, concurrency: int, n: int, waves: int = WAVES
) -> Any:
    """A bare aiohttp session posting the same body (no llmecon code on the path)."""
    import aiohttp

    messages = [m.model_dump() for m in _prompt(0)]
    if kind == "openai":
        path = "/chat/completions"
        payload: dict[str, Any] = {"model": "fake", "messages": messages, "max_tokens": 16}
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    else:
        path = "/v1/messages"
        payload = {
            "model": "claude-bench",
            "system": messages[0]["content"],
            "messages": messages[1:],
            "max_tokens": 16,
        }
        headers = {
            "Content-Type": "application/json",
            "x-api-key": "sk-bench",
            "anthropic-version": "2023-06-01",
        }
    body = json.dumps(payload).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def call(_: int) -> object:
            async with session.post(url + path, data=body, headers=headers) as r:
                return json.loads(await r.read())

        return await _timed(call, concurrency, n, pid, waves)


def child(ns: argparse.Namespace) -> None:
    import llmecon
    from llmecon._gc import run_gc

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
    cell = _bare_cell if ns.bare else _llmecon_cell
    out: dict[str, Any] = {"llmecon": llmecon.__file__}
    n = max(400, 4 * ns.concurrency)
    with run_gc():
        out["wave"] = asyncio.run(cell(ns.kind, ns.url, ns.pid, ns.concurrency, n))
        if ns.sustained:
            n = int(ns.sustained * ns.concurrency / LATENCY_S)
            out["sustained"] = asyncio.run(cell(ns.kind, ns.url, ns.pid, ns.concurrency, n, 1))
    print(json.dumps(out))


# -- driver ------------------------------------------------------------------------------


def run_cell(
    arm: str, path: str, kind: str, url: str, pid: int, concurrency: int, sustained: float
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--kind", kind, "--url", url]
    cmd += ["--pid", str(pid), "--concurrency", str(concurrency), "--sustained", str(sustained)]
    if arm == "bare aiohttp":
        cmd.append("--bare")
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{arm} {kind} c={concurrency} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if arm != "bare aiohttp":
        expected = str(Path(path).resolve())
        assert result["llmecon"].startswith(expected), (result["llmecon"], expected)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--kind")
    parser.add_argument("--url")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--sustained", type=float, default=0.0)
    parser.add_argument("--arm", action="append", default=[], help="NAME=PYTHONPATH")
    parser.add_argument("--no-bare", action="store_true")
    parser.add_argument("--kinds", default="openai,anthropic")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    ns = parser.parse_args()
    if ns.child:
        ns.concurrency = ns.concurrency[0]
        child(ns)
        return
    from bench_throughput import fake_server  # the parent only: children stay lean

    arms = dict(a.split("=", 1) for a in ns.arm)
    arms = {name: str(Path(p).resolve()) for name, p in arms.items()}
    if not ns.no_bare:
        arms["bare aiohttp"] = next(iter(arms.values()))
    concurrencies = ns.concurrency or list(CONCURRENCIES)
    server_path = next(iter(arms.values()))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    for kind in ns.kinds.split(","):
        with fake_server(kind, server_path) as (url, pid):
            for repeat in range(ns.repeats):
                for concurrency in concurrencies:
                    order = list(arms) if repeat % 2 == 0 else list(reversed(arms))
                    for arm in order:
                        result = run_cell(arm, arms[arm], kind, url, pid, concurrency, ns.sustained)
                        row = {"arm": arm, "kind": kind, "concurrency": concurrency}
                        row |= {"repeat": repeat, **result}
                        rows.append(row)
                        line = f"{kind:9} c={concurrency:4} {arm:14} r{repeat}:"
                        for mode in ("wave", "sustained"):
                            if mode in result:
                                r = result[mode]
                                line += (
                                    f"  {mode} {r['client_cpu_us_per_call']:5.0f} µs/call"
                                    f" {r['achieved_over_ideal']:.2f} of ideal"
                                )
                        print(line, flush=True)
    summary = []
    print("\nsummary (min / median over repeats)")
    for kind in ns.kinds.split(","):
        for concurrency in concurrencies:
            for arm in arms:
                cell = [
                    r
                    for r in rows
                    if (r["arm"], r["kind"], r["concurrency"]) == (arm, kind, concurrency)
                ]
                entry: dict[str, Any] = {"arm": arm, "kind": kind, "concurrency": concurrency}
                line = f"{kind:9} c={concurrency:4} {arm:14}"
                for mode in ("wave", "sustained"):
                    if mode not in cell[0]:
                        continue
                    cpu = [r[mode]["client_cpu_us_per_call"] for r in cell]
                    ratio = [r[mode]["achieved_over_ideal"] for r in cell]
                    entry[mode] = {
                        "client_cpu_us_min": min(cpu),
                        "client_cpu_us_median": statistics.median(cpu),
                        "achieved_over_ideal_max": max(ratio),
                        "achieved_over_ideal_median": statistics.median(ratio),
                    }
                    line += (
                        f"  {mode}: {min(cpu):5.0f} / {statistics.median(cpu):5.0f} µs,"
                        f" {statistics.median(ratio):.2f} of ideal (best {max(ratio):.2f})"
                    )
                summary.append(entry)
                print(line, flush=True)
    if ns.out:
        out = {
            "load_start": load,
            "load_end": os.getloadavg(),
            "arms": arms,
            "rows": rows,
            "summary": summary,
        }
        Path(ns.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
