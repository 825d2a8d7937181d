"""Garbage-collector settings for the duration of a run.

A run keeps thousands of model requests in flight, each a few dozen short-lived
Python objects (tasks, futures, response buffers). With CPython's default thresholds
the cyclic collector runs every 700 allocations and its middle generation is full of
requests still in flight, so it re-scans them again and again: on a 2-core machine
~30 % of the client's CPU per call at 1 024 concurrent requests
(``benchmarks/bench_throughput.py``, part ``floor``). During a run the objects that
exist when it starts (personas, the economy, templates, modules) are frozen out of
collection (:func:`gc.freeze`) and the collector runs less often; both are undone when
the run ends, so a notebook or a host program gets its own settings back (a program
that froze objects itself keeps them frozen: the run then leaves freezing alone).
Cycles are still collected, only in larger batches.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Collector thresholds while a run is in progress (CPython's default: 700, 10, 10).
RUN_THRESHOLDS = (10_000, 50, 50)

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None
_froze = False


@contextlib.contextmanager
def run_gc() -> Iterator[None]:
    """Tune the collector for a run (see the module docstring); nested or concurrent
    runs in one process share one tuning, restored when the last one ends."""
    global _depth, _saved, _froze
    with _lock:
        if _depth == 0:
            saved = gc.get_threshold()
            _saved = (saved[0], saved[1], saved[2])
            _froze = gc.get_freeze_count() == 0  # never thaw what the host froze
            if _froze:
                gc.freeze()
            gc.set_threshold(*RUN_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _froze:
                    gc.unfreeze()
                _saved, _froze = None, False
