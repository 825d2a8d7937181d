"""Warnings that point at the caller's line, not into llmecon.

``warnings.warn(..., stacklevel=2)`` names the frame one above the warning, which for a
library call made through :mod:`llmecon.api` or a run's event loop is another llmecon
module: the user reading ``load_run(...)``'s warning was shown a line of
``llmecon/runs/log.py``. :func:`warn` counts the frames instead: it skips this package's
own frames and those of the machinery that runs its coroutines and threads (asyncio,
concurrent.futures, threading), so the warning names the first line outside them, the
user's script, notebook cell or test. Under the command line that is a line of click,
which the command line's warning format does not print. A warning raised where no such
frame is left (a worker thread) names ``sys``, as Python does for a stacklevel past the
top.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

#: Modules whose frames are skipped: llmecon's own and what runs its code for it.
_SKIPPED = ("llmecon", "asyncio", "concurrent", "threading")


def _skipped(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _SKIPPED)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` naming the first line outside
    :data:`_SKIPPED` (``sys`` if there is none)."""
    frame: FrameType | None = sys._getframe(1)  # the llmecon function warning
    level = 2  # warnings.warn's stacklevel that names it
    while frame is not None and _skipped(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
