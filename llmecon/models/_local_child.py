"""The process that runs one llama.cpp model for :mod:`llmecon.models._local`.

Started by the parent as ``python -P <this file> --model PATH --n-ctx N --n-threads N
--n-batch N`` (``--n-batch 0``: choose, see :func:`default_n_batch`). It imports nothing
from ``llmecon`` (only the standard library and ``llama_cpp``), so it starts fast and
does not depend on the parent's package state.

Protocol, one JSON object per line:

* stdout, once the model is loaded and warmed up: ``{"ready": true, "n_batch": 512,
  "amx": false, "load_s": 0.4, "warm_up_s": 0.9}``, or ``{"ready": false, "error":
  "..."}`` and exit code 1.
* stdin, one request at a time: the keyword arguments of
  ``Llama.create_chat_completion`` (``messages``, ``max_tokens``, ``temperature``,
  ``top_p``, ``seed``, ``stop``, ``response_format``); stdout, its reply:
  ``{"ok": true, "text": "...", "input_tokens": 40, "output_tokens": 6}`` or
  ``{"ok": false, "error": "ValueError: ..."}``.

Anything native code prints to stdout is sent to stderr (the protocol has a private
copy of stdout). When stdin reaches end of file (the parent exited or closed it), the
process exits at once, even in the middle of a generation. SIGINT is ignored: the parent
decides when this process ends (it kills it to cancel a generation).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from typing import IO, Any

#: Request keys passed on to ``create_chat_completion``; anything else is ignored.
REQUEST_KEYS = ("messages", "max_tokens", "temperature", "top_p", "seed", "stop", "response_format")


def has_amx_kernels() -> bool:
    """Whether this llama.cpp build has the AMX kernels (``False`` if not importable)."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
    except Exception:
        return False
    return "AMX_INT8 = 1" in info


def default_n_batch() -> int:
    """512, or 1 for llama.cpp builds with AMX kernels (they crash on batches > 1)."""
    return 1 if has_amx_kernels() else 512


def _read_requests(stream: IO[bytes], requests: queue.SimpleQueue[Any]) -> None:
    """Queue each request line; exit the process when the parent closes the pipe."""
    for line in stream:
        try:
            requests.put(json.loads(line))
        except ValueError as exc:
            requests.put(exc)
    os._exit(0)


def _answer(llama: Any, request: Any) -> dict[str, Any]:
    if isinstance(request, Exception) or not isinstance(request, dict):
        return {"ok": False, "error": f"malformed request: {request}"}
    args = {key: request[key] for key in REQUEST_KEYS if request.get(key) is not None}
    try:
        result = llama.create_chat_completion(**args)
        usage = result.get("usage") or {}
        choice = result["choices"][0]
        return {
            "ok": True,
            "text": choice["message"].get("content") or "",
            "input_tokens": int(usage.get("prompt_tokens", 0)),
            "output_tokens": int(usage.get("completion_tokens", 0)),
            # stopped at max_tokens: a reply that does not parse then says why
            "cut_off": choice.get("finish_reason") == "length",
        }
    except Exception as exc:  # e.g. a prompt longer than n_ctx
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--n-threads", type=int, required=True)
    parser.add_argument("--n-batch", type=int, default=0)
    ns = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # a crashed model must not leave a core file of its memory behind
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = threading.Thread(target=_read_requests, args=(sys.stdin.buffer, requests), daemon=True)
    reader.start()

    t0 = time.perf_counter()
    try:
        from llama_cpp import Llama

        amx = has_amx_kernels()
        n_batch = ns.n_batch or (1 if amx else 512)
        llama = Llama(
            model_path=ns.model,
            n_ctx=ns.n_ctx,
            n_threads=ns.n_threads,
            n_batch=n_batch,
            n_ubatch=n_batch,
            verbose=False,
        )
        load_s = time.perf_counter() - t0
        # llama.cpp's first evaluation is slow (~1 s on 2 cores: buffers are set up):
        # do it now, so that it counts as loading, not as the first request's work.
        llama.eval(llama.tokenize(b"Hello"))
        llama.reset()
    except Exception as exc:
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send(
        {
            "ready": True,
            "n_batch": n_batch,
            "amx": amx,
            "load_s": round(load_s, 3),
            "warm_up_s": round(time.perf_counter() - t0 - load_s, 3),
        }
    )
    while True:
        send(_answer(llama, requests.get()))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the parent went away while we answered
        os._exit(0)
