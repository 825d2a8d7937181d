"""Client throughput per transport, and seconds per round of LLM workers; results go to
benchmarks/results/throughput.json.

Against the fake servers in a process of their own (100 ms latency):

1. ``transports``: achieved / ideal calls per second (ideal = concurrency ÷ latency) at
   concurrency 16 / 64 / 256 / 1 024, in four waves of calls started at once (as a round
   of workers) and, for the transports costing well under a millisecond a call,
   sustained over 4 s of calls; with the collector settings of a run, the client's
   CPU per call (process CPU time of this process only) and the server's (its process's
   CPU time, from /proc), per transport: the ``http`` client (tuned aiohttp; openai and
   anthropic), the SDK transports, list-prompt completions batching, and litellm (at
   16 / 64 only: it imports for ~4 s).
2. ``rounds``: seconds per round of ``LLMWorkers.decide`` (with a run's collector
   settings) for 100 and 1 000 workers against the ideal, and how late the first reply
   comes, with the calls started in chunks (``gather_streaming``) and, as the baseline,
   all gathered at once; each on the machine as it is ("quiet") and then, right after,
   with ``--busy N`` CPU-bound processes running beside it ("busy", default 1). Beside
   them, the design of LLM Economist v1's threaded mode (the synchronous OpenAI SDK in
   a pool of 256 threads; a stand-in written here, not that project's code). Six
   rounds per arm: the steady round is the median of rounds 2–6.
3. ``floor``: client CPU per call of bare clients (no llmecon code: aiohttp, on asyncio
   and on uvloop, and the Rust-based rnet and pyreqwest when installed) beside the
   ``http`` transport, with Python's default collector settings and with a run's
   (``llmecon._gc.run_gc``), alternating, at concurrency 256 and 1 024.
4. ``startup``: wall seconds of a minimal ``llmecon run`` and of importing the CLI.
5. ``process``: the whole process, interleaved (min / median of 3), of 100 workers ×
   4 rounds against the fake server: ``llmecon run`` (a baseline planner, so only the
   workers call the model; with its defaults: concurrency 64, the end-of-run
   references; and with ``--max-concurrency 256 --no-reference``) beside the stand-in
   of LLM Economist v1's threaded design in a fresh interpreter of its own (importing
   only the openai SDK and pydantic). The stand-in's process does less than LLM
   Economist's own (no simulation, no log), so it is a floor on that project's time.

Run: ``python benchmarks/bench_throughput.py [--quick]``. Note the machine's load
(``uptime``) with the figures: wall-clock ratios depend on it, CPU per call much less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from llmecon.models import ChatMessage, GenerateConfig, Model, get_model

RESULTS = Path(__file__).parent / "results" / "throughput.json"
LATENCY_S = 0.1
#: Rounds per arm of the ``rounds`` part (the first opens the connections).
ROUNDS, ROUNDS_QUICK = 6, 2
CONCURRENCIES = (16, 64, 256, 1024)


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)


def prompt(i: int) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
        ChatMessage(role="user", content=f"Week {i}: how many hours will you work? JSON please."),
    ]


@contextlib.contextmanager
def fake_server(kind: str, pythonpath: str | None = None) -> Iterator[tuple[str, int]]:
    """A fake server in a child process: (base URL, pid); ``pythonpath``: the copy of
    llmecon it runs (this one when ``None``)."""
    args = [sys.executable, "-m", "llmecon.testing.fake_servers", kind, "--latency-s"]
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen(
        [*args, str(LATENCY_S)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.removeprefix("READY "), proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TRANSPORTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name -> (server, model, provider args)
    "openai-http": ("openai", "openai/fake", {"transport": "http"}),
    "openai-sdk": ("openai", "openai/fake", {"transport": "sdk"}),
    "openai-completions-batch-64": ("openai", "openai/fake", {"completions_batch": 64}),
    "anthropic-http": ("anthropic", "anthropic/claude-bench", {"transport": "http"}),
    "anthropic-sdk": ("anthropic", "anthropic/claude-bench", {"transport": "sdk"}),
    "litellm": ("openai", "litellm/openai/fake", {}),
}
#: transports whose calls cost a millisecond of CPU or more: fewer calls per cell, and
#: litellm (which imports for ~4 s) only up to 64 in flight
SLOW = {"openai-sdk": 1024, "anthropic-sdk": 1024, "litellm": 64}


def build(url: str, model: str, args: dict[str, Any], concurrency: int) -> Model:
    config = GenerateConfig(max_retries=0, timeout_s=300)
    return get_model(model, api_base=url, max_concurrency=concurrency, config=config, **args)


async def _timed(
    call: Callable[[int], Awaitable[Any]], concurrency: int, n: int, server_pid: int
) -> tuple[list[Any], dict[str, float]]:
    """``concurrency`` warm-up calls (opening the connections), then ``n`` calls at
    once: their results, and wall time, client and server CPU per call."""
    await asyncio.gather(*[call(-i) for i in range(concurrency)])
    t0, cpu0, server0 = time.perf_counter(), time.process_time(), process_cpu_s(server_pid)
    outs = await asyncio.gather(*[call(i) for i in range(n)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server_cpu = process_cpu_s(server_pid) - server0
    return outs, {
        "calls": n,
        "wall_s": wall,
        "calls_per_s": n / wall,
        "client_cpu_us_per_call": cpu / n * 1e6,
        "server_cpu_us_per_call": server_cpu / n * 1e6,
        "server_cpu_share": server_cpu / wall,
    }


async def _measure(model: Model, concurrency: int, n: int, server_pid: int) -> dict[str, float]:
    try:
        outs, result = await _timed(
            lambda i: model.generate(prompt(i), WorkerDecision), concurrency, n, server_pid
        )
    finally:
        await model.aclose()
    assert all(o.parsed is not None for o in outs)
    return result


def bench_transports(quick: bool) -> list[dict[str, Any]]:
    from llmecon._gc import run_gc

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
    rows: list[dict[str, Any]] = []
    for kind in ("openai", "anthropic"):
        with fake_server(kind) as (url, pid):
            for name, (server, model, args) in TRANSPORTS.items():
                if server != kind:
                    continue
                for concurrency in CONCURRENCIES:
                    if concurrency > SLOW.get(name, 10**9):
                        continue
                    slow = name in SLOW
                    n = max(200 if slow else 400, (1 if slow else 4) * concurrency)
                    if quick:
                        n = max(concurrency, n // 4)
                    m = build(url, model, args, concurrency)
                    with run_gc():  # the collector settings of a run, which these calls serve
                        result = asyncio.run(_measure(m, concurrency, n, pid))
                    ideal = concurrency / LATENCY_S
                    row = {
                        "transport": name,
                        "concurrency": concurrency,
                        "ideal_calls_per_s": ideal,
                        "achieved_over_ideal": result["calls_per_s"] / ideal,
                        **result,
                    }
                    batcher = getattr(m.provider, "batcher", None)
                    if batcher is not None:
                        row["http_requests"] = batcher.requests
                    print(
                        f"{name:28} c={concurrency:4}: {result['calls_per_s']:6.0f} calls/s"
                        f" = {row['achieved_over_ideal']:.2f} of ideal; client CPU"
                        f" {result['client_cpu_us_per_call']:5.0f} µs/call, server"
                        f" {result['server_cpu_us_per_call']:5.0f} µs/call"
                        f" ({result['server_cpu_share']:.0%} of a core)",
                        flush=True,
                    )
                    if not slow:
                        row["sustained"] = _sustained(url, model, args, concurrency, pid, quick)
                    rows.append(row)
    return rows


#: Seconds of calls (at the ideal rate) in a sustained measurement.
SUSTAINED_S = 4.0


def _sustained(
    url: str, model: str, args: dict[str, Any], concurrency: int, pid: int, quick: bool
) -> dict[str, float]:
    """Achieved / ideal over ``SUSTAINED_S`` seconds of calls (1 s with ``--quick``) at
    ``concurrency`` in flight: throughput once the calls have spread out, where the
    four-wave measurement above is dominated by every call of the first wave leaving at
    once and waiting behind the client's and the server's work for the others."""
    ideal = concurrency / LATENCY_S
    n = int((1.0 if quick else SUSTAINED_S) * ideal)
    from llmecon._gc import run_gc

    m = build(url, model, args, concurrency)
    with run_gc():
        result = asyncio.run(_measure(m, concurrency, n, pid))
    out = {**result, "achieved_over_ideal": result["calls_per_s"] / ideal}
    print(
        f"{'':28} sustained, {n} calls: {out['achieved_over_ideal']:.2f} of ideal; client"
        f" CPU {result['client_cpu_us_per_call']:5.0f} µs/call, server"
        f" {result['server_cpu_us_per_call']:5.0f} µs/call",
        flush=True,
    )
    return out


def _pool(url: str, n: int, concurrency: int, batch: int | None) -> Any:
    from llmecon.agents.llm_workers import LLMWorkers
    from llmecon.economy import Economy, synthetic_population
    from llmecon.prompts import PromptLibrary

    economy = Economy(synthetic_population(n, np.random.default_rng(0)))
    pop = economy.population
    texts = [
        f"You earn ${w:.2f} per hour and usually work {h:.0f} hours a week."
        for w, h in zip(pop.hourly_wage_usd, pop.usual_weekly_hours, strict=True)
    ]
    extra: dict[str, Any] = {"completions_batch": batch} if batch else {}
    model = get_model(
        "openai/fake",
        api_base=url,
        max_concurrency=concurrency,
        config=GenerateConfig(max_retries=0, timeout_s=120),
        **extra,
    )
    return LLMWorkers(model, economy, texts, PromptLibrary())


async def _rounds(pool: Any, rounds: int) -> dict[str, Any]:
    from llmecon._gc import run_gc
    from llmecon.agents.base import WorkerRequest
    from llmecon.economy import TaxSchedule

    first: list[float] = []
    pool.model.on_call = lambda record: first.append(time.perf_counter()) if not first else None
    request = WorkerRequest(
        year=0,
        step=0,
        schedule=TaxSchedule.status_quo(),
        previous_hours=pool.economy.population.usual_weekly_hours,
        last_rebate_usd=0.0,
        history=[],
    )
    seconds, first_reply = [], []
    try:
        with run_gc():  # the collector settings of a run
            for _ in range(rounds):
                first.clear()
                t0, cpu0 = time.perf_counter(), time.process_time()
                decision = await pool.decide(request)
                seconds.append(time.perf_counter() - t0)
                first_reply.append(first[0] - t0)
                assert not decision.fallback_reasons, decision.fallback_reasons
        cpu = time.process_time() - cpu0
    finally:
        await pool.model.aclose()
    return {
        **_round_times(seconds, first_reply),
        "client_cpu_us_per_call_last_round": cpu / pool.economy.size * 1e6,
    }


def _round_times(seconds: list[float], first_reply: list[float]) -> dict[str, Any]:
    """Seconds per round; the steady round (the median of the rounds after the first,
    which opens the connections) and the fastest of them; how late each round's first
    reply came."""
    steady = seconds[1:] or seconds
    return {
        "seconds_per_round": seconds,
        "steady_s": float(np.median(steady)),
        "fastest_s": min(steady),
        "first_reply_s": first_reply,
    }


@contextlib.contextmanager
def cpu_burners(n: int) -> Iterator[None]:
    """``n`` CPU-bound processes (a busy machine) for as long as the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        if procs:
            time.sleep(0.5)  # let them take their share of the cores
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(30)


def _threaded_rounds(url: str, n: int, threads: int, rounds: int) -> dict[str, Any]:
    """The design of LLM Economist v1's threaded mode, as a stand-in measured beside
    ours (it is not that code): the official synchronous OpenAI client called from a
    thread pool, one request per worker and round, the round waiting for every reply."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0, timeout=120)
    schema = {"name": "WorkerDecision", "schema": WorkerDecision.model_json_schema()}
    request: dict[str, Any] = {
        "model": "fake",
        "response_format": {"type": "json_schema", "json_schema": schema},
        "max_tokens": 16,
    }

    def ask(i: int) -> int:
        messages: Any = [m.model_dump() for m in prompt(i)]
        reply = client.chat.completions.create(messages=messages, **request)
        return WorkerDecision.model_validate_json(reply.choices[0].message.content or "").hours

    seconds, first_reply = [], []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(rounds):
            t0 = time.perf_counter()
            futures = [pool.submit(ask, i) for i in range(n)]
            first = None
            for future in futures:
                future.result()
                first = first or time.perf_counter() - t0
            seconds.append(time.perf_counter() - t0)
            first_reply.append(first or 0.0)
    client.close()
    return _round_times(seconds, first_reply)


#: The stand-in for LLM Economist v1's threaded mode (see :func:`_threaded_rounds`).
THREADED = "threaded openai SDK, 256 threads (LE v1's design)"


def bench_rounds(quick: bool, busy: int) -> list[dict[str, Any]]:
    import openai

    from llmecon.agents import llm_workers

    streaming = llm_workers.gather_streaming
    arms = {
        "chunked (after)": streaming,
        "gather all (before)": lambda calls: asyncio.gather(*calls),
    }
    machines = ("quiet", "busy") if busy else ("quiet",)

    def burners(machine: str) -> contextlib.AbstractContextManager[None]:
        return cpu_burners(busy if machine == "busy" else 0)

    rows: list[dict[str, Any]] = []
    with fake_server("openai") as (url, _):
        for workers in (100, 1000):
            for machine in machines:
                try:
                    with burners(machine):
                        rounds = ROUNDS_QUICK if quick else ROUNDS
                        result = _threaded_rounds(url, workers, 256, rounds)
                except openai.APIError as exc:
                    # Seen twice in many runs (a refused connection, a reply that never
                    # came): recorded, and the other arms still run.
                    print(f"{workers:5} workers, {THREADED}, {machine}: failed: {exc!r}")
                    rows.append({"workers": workers, "path": THREADED, "error": repr(exc)})
                    continue
                rows.append(_round_row(workers, THREADED, 256, "-", machine, busy, result))
            for label, batch, concurrency in (
                ("chat c=256", None, 256),
                ("completions batch 64, c=1024", 64, 1024),
            ):
                for arm, gather in arms.items():
                    if batch and "before" in arm:
                        continue
                    for machine in machines:
                        llm_workers.gather_streaming = gather  # type: ignore[assignment]
                        try:
                            with burners(machine):
                                pool = _pool(url, workers, concurrency, batch)
                                rounds = ROUNDS_QUICK if quick else ROUNDS
                                result = asyncio.run(_rounds(pool, rounds))
                        finally:
                            llm_workers.gather_streaming = streaming
                        row = _round_row(workers, label, concurrency, arm, machine, busy, result)
                        rows.append(row)
    return rows


def _round_row(
    workers: int,
    label: str,
    concurrency: int,
    arm: str,
    machine: str,
    busy: int,
    result: dict[str, Any],
) -> dict[str, Any]:
    ideal = LATENCY_S * max(1.0, workers / concurrency)
    row = {
        "workers": workers,
        "path": label,
        "start": arm,
        "machine": machine if machine == "quiet" else f"busy ({busy} CPU-bound beside)",
        "ideal_s": ideal,
        "steady_over_ideal": result["steady_s"] / ideal,
        **result,
    }
    print(
        f"{workers:5} workers, {label:29} {arm:20} {machine:5}: steady "
        f"{result['steady_s']:.3f} s (ideal {ideal:.2f}, x{row['steady_over_ideal']:.2f};"
        f" fastest x{result['fastest_s'] / ideal:.2f}), rounds "
        + " ".join(f"{s:.2f}" for s in result["seconds_per_round"])
        + f", first reply after {min(result['first_reply_s']):.3f} s",
        flush=True,
    )
    return row


def bench_startup(tmp: Path) -> dict[str, Any]:
    """Wall seconds of a minimal run (``llmecon run`` with the mock planner, rational
    workers, 10 agents, 1 year; min of 3) and of importing what it imports."""
    cli = [sys.executable, "-m", "llmecon", "run", "--planner", "mock/default"]
    cli += ["--workers", "rational", "--years", "1", "--agents", "10", "--out", str(tmp)]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    imports = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import llmecon.cli.run"], check=True)
        imports.append(time.perf_counter() - t0)
    result = {"minimal_run_s": min(walls), "import_cli_s": min(imports)}
    print(f"startup: minimal run {min(walls):.2f} s, importing the CLI {min(imports):.2f} s")
    return result


#: The stand-in of LLM Economist v1's threaded design as a process of its own: the
#: prompts, schema and thread pool of :func:`_threaded_rounds`, nothing else imported.
_THREADED_PROCESS = """
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
from pydantic import BaseModel, Field


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)


url, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0, timeout=120)
schema = {"name": "WorkerDecision", "schema": WorkerDecision.model_json_schema()}


def ask(i):
    messages = [
        {"role": "system", "content": "You are a nurse earning $38 per hour."},
        {"role": "user", "content": f"Week {i}: how many hours will you work? JSON please."},
    ]
    reply = client.chat.completions.create(
        model="fake",
        messages=messages,
        response_format={"type": "json_schema", "json_schema": schema},
        max_tokens=16,
    )
    return WorkerDecision.model_validate_json(reply.choices[0].message.content).hours


with ThreadPoolExecutor(max_workers=256) as pool:
    for _ in range(rounds):
        list(pool.map(ask, range(n)))
"""

#: Workers and rounds of the ``process`` part (the issue's side-by-side setting).
PROCESS_WORKERS, PROCESS_ROUNDS, PROCESS_REPEATS = 100, 4, 3


def bench_process(tmp: Path) -> dict[str, Any]:
    """Wall seconds of whole processes (interpreter start to exit), interleaved."""
    arms: dict[str, Callable[[str, int], list[str]]] = {
        THREADED: lambda url, _: [
            sys.executable, "-c", _THREADED_PROCESS, url, str(PROCESS_WORKERS),
            str(PROCESS_ROUNDS),
        ],
        "llmecon run (defaults: concurrency 64, references)": lambda url, i: [
            *_llmecon_run(url, tmp, f"d{i}"),
        ],
        "llmecon run --max-concurrency 256 --no-reference": lambda url, i: [
            *_llmecon_run(url, tmp, f"f{i}"), "--max-concurrency", "256", "--no-reference",
        ],
    }  # fmt: skip
    walls: dict[str, list[float]] = {arm: [] for arm in arms}
    with fake_server("openai") as (url, _):
        for i in range(PROCESS_REPEATS):
            for arm, command in arms.items():
                t0 = time.perf_counter()
                subprocess.run(command(url, i), check=True, capture_output=True)
                walls[arm].append(time.perf_counter() - t0)
    rows = {
        arm: {"min_s": min(w), "median_s": float(np.median(w)), "walls_s": w}
        for arm, w in walls.items()
    }
    floor = PROCESS_ROUNDS * LATENCY_S
    for arm, row in rows.items():
        row["threaded_over_this"] = rows[THREADED]["median_s"] / row["median_s"]
        print(
            f"process, {PROCESS_WORKERS} workers x {PROCESS_ROUNDS} rounds, {arm}: "
            f"min {row['min_s']:.2f} s, median {row['median_s']:.2f} s "
            f"(stand-in / this {row['threaded_over_this']:.2f}; the model's latency alone "
            f"{floor:.1f} s)",
            flush=True,
        )
    return {"workers": PROCESS_WORKERS, "rounds": PROCESS_ROUNDS, "arms": rows}


def _llmecon_run(url: str, tmp: Path, run_id: str) -> list[str]:
    """``llmecon run`` of the ``process`` part: the us-federal baseline planner (no
    model call), LLM workers on the fake server, one step a year."""
    return [
        sys.executable, "-m", "llmecon", "run", "--planner", "us-federal",
        "--workers", "openai/fake", "--api-base", url, "--agents", str(PROCESS_WORKERS),
        "--years", str(PROCESS_ROUNDS), "--out", str(tmp), "--run-id", run_id,
    ]  # fmt: skip


def _bare_body() -> tuple[bytes, dict[str, str]]:
    """The chat request every bare client posts, and its headers."""
    body = json.dumps(
        {"model": "fake", "messages": [m.model_dump() for m in prompt(0)], "max_tokens": 16}
    ).encode()
    return body, {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


async def _bare_aiohttp(url: str, concurrency: int, n: int, server_pid: int) -> dict[str, float]:
    """The floor under the ``http`` transport: a bare aiohttp session posting the same
    chat request (no llmecon code: no schema, parsing, retries or records)."""
    import aiohttp

    body, headers = _bare_body()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def one(_: int) -> object:
            async with session.post(url + "/chat/completions", data=body, headers=headers) as r:
                return json.loads(await r.read())

        _, result = await _timed(one, concurrency, n, server_pid)
    return result


async def _bare_rnet(url: str, concurrency: int, n: int, server_pid: int) -> dict[str, float]:
    """The same request through rnet (a Python binding of Rust's reqwest)."""
    rnet: Any = importlib.import_module("rnet")  # optional: not a dependency

    body, headers = _bare_body()
    client, limit = rnet.Client(), asyncio.Semaphore(concurrency)

    async def one(_: int) -> object:
        async with limit:
            reply = await client.post(url + "/chat/completions", body=body, headers=headers)
            return json.loads(await reply.bytes())

    return (await _timed(one, concurrency, n, server_pid))[1]


async def _bare_pyreqwest(url: str, concurrency: int, n: int, server_pid: int) -> dict[str, float]:
    """The same request through pyreqwest (another binding of reqwest)."""
    pyreqwest: Any = importlib.import_module("pyreqwest.client")  # optional

    body, headers = _bare_body()
    async with pyreqwest.ClientBuilder().max_connections(concurrency).build() as client:

        async def one(_: int) -> object:
            request = client.post(url + "/chat/completions").body_bytes(body).headers(headers)
            reply = await request.build().send()
            return await reply.json()

        return (await _timed(one, concurrency, n, server_pid))[1]


def _llmecon_http(url: str, concurrency: int, n: int, server_pid: int) -> Any:
    model = build(url, "openai/fake", {"transport": "http"}, concurrency)
    return _measure(model, concurrency, n, server_pid)


#: arm -> (client, run's collector settings, event loop: "asyncio" or "uvloop").
#: The rnet, pyreqwest and uvloop arms run when those packages are installed
#: (``pip install rnet pyreqwest uvloop``; none is a dependency of llmecon).
FLOOR_ARMS: dict[str, tuple[Callable[..., Any], bool, str]] = {
    "bare aiohttp": (_bare_aiohttp, False, "asyncio"),
    "bare aiohttp, run GC": (_bare_aiohttp, True, "asyncio"),
    "bare aiohttp on uvloop, run GC": (_bare_aiohttp, True, "uvloop"),
    "bare rnet, run GC": (_bare_rnet, True, "asyncio"),
    "bare pyreqwest, run GC": (_bare_pyreqwest, True, "asyncio"),
    "llmecon http transport": (_llmecon_http, False, "asyncio"),
    "llmecon http transport, run GC": (_llmecon_http, True, "asyncio"),
}


def _available(arm: str) -> bool:
    optional = ("rnet", "pyreqwest", "uvloop")
    return all(importlib.util.find_spec(m) is not None for m in optional if m in arm)


def bench_floor(quick: bool) -> list[dict[str, Any]]:
    """Client CPU per call of bare clients (no llmecon code) and of the ``http``
    transport, with Python's default garbage-collector settings and with those of a run
    (:func:`llmecon._gc.run_gc`), alternating (3 rounds each) at concurrency 256 and
    1 024: how much of the per-call cost is the wire's own, and whether another
    maintained client or event loop (uvloop, rnet, pyreqwest) has a lower floor."""
    from llmecon._gc import run_gc

    arms = {name: arm for name, arm in FLOOR_ARMS.items() if _available(name)}
    missing = sorted(set(FLOOR_ARMS) - set(arms))
    if missing:
        print(f"floor: not installed, left out: {', '.join(missing)}")
    rows: list[dict[str, Any]] = []
    with fake_server("openai") as (url, pid):
        for concurrency in (256, 1024):
            n = 4 * concurrency if not quick else concurrency
            for repeat in range(3 if not quick else 1):
                for name, (client, tuned_gc, loop) in arms.items():
                    factory = None
                    if loop == "uvloop":
                        factory = importlib.import_module("uvloop").new_event_loop
                    gc_context = run_gc() if tuned_gc else contextlib.nullcontext()
                    with gc_context, asyncio.Runner(loop_factory=factory) as runner:
                        result = runner.run(client(url, concurrency, n, pid))
                    ideal = concurrency / LATENCY_S
                    row = {
                        "client": name,
                        "concurrency": concurrency,
                        "repeat": repeat,
                        "achieved_over_ideal": result["calls_per_s"] / ideal,
                        **result,
                    }
                    rows.append(row)
                    print(
                        f"floor {name:32} c={concurrency:4}: client CPU "
                        f"{result['client_cpu_us_per_call']:4.0f} µs/call, "
                        f"{row['achieved_over_ideal']:.2f} of ideal",
                        flush=True,
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument(
        "--part",
        choices=("transports", "floor", "rounds", "startup", "process"),
        action="append",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=1,
        help="CPU-bound processes beside the busy-machine rounds (0: quiet rounds only)",
    )
    ns = parser.parse_args()
    every = ["transports", "floor", "rounds", "startup", "process"]
    parts = ns.part or every
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_at_start": load,
        "latency_s": LATENCY_S,
    }
    if RESULTS.exists() and len(parts) < len(every):  # keep the parts not re-run, and their load
        kept = json.loads(RESULTS.read_text())
        results = {**kept, "loads_of_rerun_parts": kept.get("loads_of_rerun_parts", {})}
    if "transports" in parts:
        results["transports"] = bench_transports(ns.quick)
    if "floor" in parts:
        results["floor"] = bench_floor(ns.quick)
    if "rounds" in parts:
        results["rounds"] = bench_rounds(ns.quick, ns.busy)
    if "startup" in parts:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["startup"] = bench_startup(Path(tmp))
    if "process" in parts:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["process"] = bench_process(Path(tmp))
    if len(parts) < len(every):  # the top-level loads are those of the full run
        for part in parts:
            results["loads_of_rerun_parts"][part] = {"start": load, "end": os.getloadavg()}
    else:
        results["load_average_at_end"] = os.getloadavg()
        results.pop("loads_of_rerun_parts", None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
