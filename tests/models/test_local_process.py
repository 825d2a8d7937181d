"""The embedded model's child process: crashes, kills and timeouts end cleanly.

llama.cpp runs in a child process (``llmecon.models._local``); these tests kill it with
signals in the middle of calls, time calls out under an active JSON grammar (which used
to abort the whole process), and check that the children end with their parent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from llmecon.models import ChatMessage, GenerateConfig, ModelTimeoutError, ProviderError, get_model
from llmecon.models._local import LocalModelProcess, LocalProvider, stop_local_models
from tests.conftest import require_local_model

pytestmark = pytest.mark.local_model

PROMPT = [
    ChatMessage(role="system", content="You are a nurse earning $38 per hour."),
    ChatMessage(
        role="user", content='How many hours per week will you work? Reply as JSON {"hours": int}.'
    ),
]


class WorkerDecision(BaseModel):
    hours: int = Field(ge=0, le=80)


class ManyDigits(BaseModel):
    """The grammar forces at least 900 items: a generation that cannot end early."""

    digits: list[Annotated[int, Field(ge=0, le=9)]] = Field(min_length=900)


LONG = [ChatMessage(role="user", content="List many digits.")]
#: Room for the forced ~1800 tokens: on any CPU this runs for seconds.
LONG_CONFIG = GenerateConfig(max_tokens=1900, max_retries=0)


@pytest.fixture
def process() -> LocalModelProcess:
    """The shared child of ``local/smollm2-135m``, loaded (one call made)."""
    require_local_model()
    model = get_model("local/smollm2-135m", config=GenerateConfig(max_tokens=24, timeout_s=120))
    out = asyncio.run(model.generate(PROMPT, WorkerDecision))
    assert out.parsed is not None
    handle = LocalProvider().process  # same settings: the same shared handle
    assert handle is model.provider.process and handle.pid is not None  # type: ignore[attr-defined]
    return handle


def _kill_when_generating(
    process: LocalModelProcess, sig: signal.Signals, killed: list[int], after: int = 0
) -> threading.Thread:
    """A thread that sends ``sig`` to the child once it generates request ``after``+1."""

    def run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pid = process.generating_pid
            if pid is not None and process.served >= after:
                os.kill(pid, sig)
                killed.append(pid)
                return
            time.sleep(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGABRT], ids=["SIGKILL", "SIGABRT"])
def test_a_child_killed_mid_call_is_a_retryable_error_then_calls_succeed(
    process: LocalModelProcess, sig: signal.Signals
) -> None:
    model = get_model(
        "local/smollm2-135m", config=LONG_CONFIG.model_copy(update={"timeout_s": 120})
    )
    starts = process.starts
    killed: list[int] = []
    killer = _kill_when_generating(process, sig, killed, after=process.served)
    with pytest.raises(ProviderError) as info:
        asyncio.run(model.generate(LONG, ManyDigits))
    killer.join(10)
    assert killed, "the child was never seen generating"
    assert info.value.retryable
    assert f"local model process died ({sig.name})" in info.value.message
    # The next calls start a fresh child and succeed.
    small = GenerateConfig(max_tokens=24, timeout_s=120, max_retries=0)
    for week in range(2):
        messages = [*PROMPT, ChatMessage(role="user", content=f"Week {week}.")]
        out = asyncio.run(model.generate(messages, WorkerDecision, small))
        assert out.parsed is not None and out.retries == 0
    assert process.starts == starts + 1
    assert process.pid not in (None, killed[0])
    assert not _alive(killed[0])  # reaped, not a zombie


def test_model_retries_succeed_after_the_child_is_killed(process: LocalModelProcess) -> None:
    config = GenerateConfig(max_tokens=24, timeout_s=120, max_retries=3, backoff_base_s=0.01)
    model = get_model("local/smollm2-135m", config=config)
    killed: list[int] = []
    _kill_when_generating(process, signal.SIGKILL, killed, after=process.served)

    async def calls() -> list[object]:
        return [
            await model.generate(
                [*PROMPT, ChatMessage(role="user", content=f"Week {i}.")], WorkerDecision
            )
            for i in range(3)
        ]

    outs = asyncio.run(calls())
    assert killed
    assert all(o.parsed is not None for o in outs)  # type: ignore[attr-defined]
    # the killed attempt was retried: the first call's, or a later one's when the watching
    # thread of a loaded machine saw the first too late
    retried = [o.retries for o in outs]  # type: ignore[attr-defined]
    assert sorted(r >= 1 for r in retried) == [False, False, True], retried
    assert model.failures == 0


def test_a_timeout_under_a_grammar_kills_the_child_not_the_process(
    process: LocalModelProcess,
) -> None:
    """The crash this module exists for: cancelling a generation constrained by a JSON
    grammar used to force end-of-sequence, and llama.cpp aborted the whole process."""
    model = get_model("local/smollm2-135m")
    starts, pid = process.starts, process.pid
    t0 = time.perf_counter()
    with pytest.raises(ModelTimeoutError) as info:
        asyncio.run(
            model.generate(LONG, ManyDigits, LONG_CONFIG.model_copy(update={"timeout_s": 1.0}))
        )
    assert time.perf_counter() - t0 < 30  # ended by the timeout, not by the generation
    assert "no reply within 1 s (generation cancelled; the model process was killed" in str(
        info.value
    )
    out = asyncio.run(
        model.generate(PROMPT, WorkerDecision, GenerateConfig(max_tokens=24, timeout_s=120))
    )
    assert out.parsed is not None
    assert process.starts == starts + 1 and process.pid != pid
    assert pid is not None and not _alive(pid)


def test_a_child_that_died_while_idle_is_replaced_without_an_error(
    process: LocalModelProcess,
) -> None:
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # Dead once every thread has exited (the handle reaps it then).
    _wait_for(lambda: process.pid is None, 30, "SIGKILL did not kill the child")
    model = get_model("local/smollm2-135m", config=GenerateConfig(max_tokens=24, timeout_s=120))
    out = asyncio.run(model.generate(PROMPT, WorkerDecision))
    assert out.parsed is not None and out.retries == 0
    assert process.pid not in (None, pid) and not _alive(pid)


def test_a_prompt_longer_than_the_context_is_a_final_error_and_the_child_lives() -> None:
    require_local_model()
    model = get_model(
        "local/smollm2-135m",
        n_ctx=128,
        config=GenerateConfig(max_tokens=8, timeout_s=120, max_retries=3),
    )
    too_long = [ChatMessage(role="user", content="tax " * 400)]
    with pytest.raises(ProviderError) as info:
        asyncio.run(model.generate(too_long))
    assert not info.value.retryable and "context" in info.value.message.lower()
    process = model.provider.process  # type: ignore[attr-defined]
    pid = process.pid
    out = asyncio.run(model.generate([ChatMessage(role="user", content="Hi")]))
    assert out.text and process.pid == pid and process.starts == 1
    process.stop()
    assert not _alive(pid)


def test_a_run_goes_on_when_the_child_is_killed_mid_run(tmp_path: Path) -> None:
    """Workers on the embedded model; the child is killed during the 3rd of 9 calls.
    The run completes, the call in flight is retried (or a recorded fallback), and every
    other call succeeds."""
    require_local_model()
    from llmecon.runs import build_config, build_simulation, read_events
    from llmecon.runs.events import LLMCall

    process = LocalProvider().process
    config = build_config(
        overrides=dict(
            agents=3,
            years=3,
            planner="saez",
            workers="local/smollm2-135m",
            out=str(tmp_path),
            run_id="killed",
        )
    )
    killed: list[int] = []
    killer = _kill_when_generating(process, signal.SIGKILL, killed, after=process.served + 2)
    starts = process.starts
    result = build_simulation(config).run()
    killer.join(10)
    assert killed, "the child was never killed"
    assert result.status == "completed"
    calls = [e for e in read_events(tmp_path / "killed") if isinstance(e, LLMCall)]
    assert len(calls) == 3 * 3 and all(c.role == "worker" for c in calls)
    # Transport retries (a re-ask would also count in retries, but adds a repair).
    affected = [c for c in calls if c.fallback or c.retries > c.repairs]
    assert len(affected) == 1
    assert affected[0].fallback or affected[0].error_type is None
    others = [c for c in calls if c is not affected[0]]
    assert all(c.error_type is None and not c.fallback for c in others)
    assert all(c.parsed is not None and 0 <= c.parsed["hours"] <= 80 for c in others)
    assert process.starts >= starts + 1 and process.pid not in (None, killed[0])


def test_models_test_timeout_exits_with_a_message_not_an_abort() -> None:
    require_local_model()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmecon",
            "models",
            "test",
            "local/smollm2-135m",
            "--timeout",
            "0.01",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    # 10 ms is less than any machine takes to start the model process and answer
    assert result.returncode >= 0, f"killed by signal {-result.returncode}: {output}"
    assert result.returncode == 1, output
    # one plain line, without a Python class name: the last try's grown timeout and the
    # one given, "no reply within 0.04 s (the timeout of 0.01 s, doubled for each retry)"
    assert "Error: local/smollm2-135m: no reply within " in output
    assert "the timeout of 0.01 s" in output
    assert "ModelTimeoutError" not in output
    assert "Traceback" not in output


def test_children_end_with_their_parent(tmp_path: Path) -> None:
    """Killed parent (no atexit): the child sees end of file on its stdin and exits.
    Normal exit: atexit kills and reaps it."""
    require_local_model()
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys, time
            from llmecon.models import ChatMessage, GenerateConfig, get_model
            model = get_model("local/smollm2-135m", config=GenerateConfig(max_tokens=4))
            asyncio.run(model.generate([ChatMessage(role="user", content="Hi")]))
            print(model.provider.process.pid, flush=True)
            if sys.argv[1] == "wait":
                time.sleep(600)
            """
        )
    )
    for how in ("wait", "exit"):
        parent = subprocess.Popen(
            [sys.executable, str(script), how], stdout=subprocess.PIPE, text=True
        )
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        if how == "wait":
            parent.kill()
        assert parent.wait(120) == (-signal.SIGKILL if how == "wait" else 0)
        # An orphan is reaped by init (or not, in some containers): a zombie has exited.
        _wait_for(partial(_exited, child), 30, f"child {child} outlived its parent ({how})")


def test_no_child_is_left_after_stop() -> None:
    require_local_model()
    model = get_model("local/smollm2-135m", config=GenerateConfig(max_tokens=4, timeout_s=120))
    asyncio.run(model.generate([ChatMessage(role="user", content="Hi")]))
    pids = [p for p in (model.provider.process.pid,) if p is not None]  # type: ignore[attr-defined]
    assert pids
    stop_local_models()
    assert not any(_alive(pid) for pid in pids)
    assert model.provider.process.pid is None  # type: ignore[attr-defined]


def _alive(pid: int, *, zombie_alive: bool = True) -> bool:
    """Whether ``pid`` is a live process (by default a zombie counts: not reaped)."""
    if not os.path.isdir("/proc/self"):  # no procfs (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("X", "x") and (zombie_alive or state != "Z")


def _exited(pid: int) -> bool:
    return not _alive(pid, zombie_alive=False)


def _wait_for(condition: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)
