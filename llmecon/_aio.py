"""Small asyncio helpers shared by the layers."""

from __future__ import annotations

import asyncio


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None``. A call such as
    ``asyncio.run(...)`` made on ``None`` is made outside any ``except`` block, so the
    exceptions it raises carry no unrelated ``RuntimeError("no running event loop")`` as
    their context (a connection failure was reported as that error)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
