"""What stops a run honestly: the circuit breaker over model calls, and the run's errors.

A run whose model calls fail is not a run: every failed call becomes a fallback, and a
summary made of fallbacks looks like a result. The breaker watches every logical model
call (after the model layer's retries) and trips

- at once on an authentication error (a bad or missing key never heals by itself);
- after ``max_consecutive_failures`` failed calls in a row;
- when more than ``max_failure_share`` of the calls failed, once at least
  :data:`MIN_CALLS_FOR_SHARE` calls were made.

When it trips, the run loop cancels the year in flight, logs ``run_completed`` with
status ``failed`` and the reason, and raises :class:`RunFailedError`; the CLI exits 1
with the reason, which names the model and its endpoint. The run stays resumable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

#: The failure-share rule applies once this many calls were made.
MIN_CALLS_FOR_SHARE = 20
#: Errors that no retry will cure: the breaker trips at the first one.
FATAL_ERRORS = frozenset({"AuthError", "MissingKeyError", "LocalModelUnavailableError"})


class RunFailedError(RuntimeError):
    """A run stopped because it could not go on (the breaker tripped, or an error).

    ``result`` is the :class:`~llmecon.runs.loop.RunResult` of the years that did
    complete; the run folder is left resumable (``llmecon resume``).
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class CircuitBreaker:
    """Counts failed model calls; :attr:`reason` is set once it trips."""

    max_consecutive: int = 10
    max_share: float = 0.5
    enabled: bool = True
    calls: int = 0
    failures: int = 0
    consecutive: int = 0
    reason: str | None = None
    _events: dict[asyncio.AbstractEventLoop, asyncio.Event] = field(default_factory=dict)

    def record(self, model: str, endpoint: str, error_type: str | None, message: str) -> None:
        """Count one finished call (``error_type`` is ``None`` on success)."""
        self.calls += 1
        if error_type is None:
            self.consecutive = 0
            return
        self.failures += 1
        self.consecutive += 1
        if not self.enabled or self.reason is not None:
            return
        where = f"{model} at {endpoint}"
        if error_type in FATAL_ERRORS:
            self._trip(f"{where}: {message}")
        elif self.consecutive >= self.max_consecutive:
            self._trip(
                f"{self.consecutive} model calls in a row failed; the last one, {where}: {message}"
            )
        elif self.calls >= MIN_CALLS_FOR_SHARE and self.failures > self.max_share * self.calls:
            self._trip(
                f"{self.failures} of {self.calls} model calls failed (more than "
                f"{self.max_share:.0%}); the last one, {where}: {message}"
            )

    def _trip(self, reason: str) -> None:
        self.reason = reason
        for event in self._events.values():
            event.set()

    async def wait(self) -> str:
        """Return the reason once the breaker trips (on the running loop)."""
        loop = asyncio.get_running_loop()
        event = self._events.get(loop)
        if event is None:
            event = self._events[loop] = asyncio.Event()
            if self.reason is not None:
                event.set()
        await event.wait()
        assert self.reason is not None
        return self.reason
