"""Warnings that point at the caller's line, not into llmecon.

``warnings.warn(..., stacklevel=2)`` names the frame one above the warning, which for a
library call made through :mod:`llmecon.api` or a run's event loop is another llmecon
module: the user reading ``load_run(...)``'s warning was shown a line of
``llmecon/runs/log.py``. :func:`warn` counts the frames instead: it skips this package's
own frames and those of the machinery that runs its coroutines and threads (asyncio,
concurrent.futures, threading), so the warning names the first line outside them, the
user's script, notebook cell or test. Under the command line that is a line of click,
which the command line's warning format does not print. A warning raised where no such
frame is left names the line that started the thread's work when it was started by
:func:`~llmecon._aio.run_in_thread` (a run from a notebook cell), else ``sys``, as
Python does for a stacklevel past the top.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterator
from types import FrameType

#: Modules whose frames are skipped: llmecon's own and what runs its code for it.
_SKIPPED = ("llmecon", "asyncio", "concurrent", "threading")


def _skipped(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _SKIPPED)


#: Worker threads -> the caller's frame that started their work (:func:`caller_frame`).
_STARTED_BY: dict[int, FrameType] = {}


def caller_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outwards outside :data:`_SKIPPED`: the user's."""
    while frame is not None and _skipped(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
    return frame


def starter(frame: FrameType | None) -> FrameType | None:
    """The user's frame for work handed to another thread from ``frame``: the first
    frame outside :data:`_SKIPPED` (a script's ``llmecon.run(...)`` line), else the one
    this thread's own work was started by (:func:`started_by`: a notebook's run)."""
    return caller_frame(frame) or _STARTED_BY.get(threading.get_ident())


@contextlib.contextmanager
def started_by(frame: FrameType | None) -> Iterator[None]:
    """Within the block (a worker thread's work), :func:`warn` names ``frame``'s line
    when no frame of the thread is the user's: the notebook line that started a run."""
    ident = threading.get_ident()
    if frame is not None:
        _STARTED_BY[ident] = frame
    try:
        yield
    finally:
        _STARTED_BY.pop(ident, None)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` naming the first line outside
    :data:`_SKIPPED`; in a worker thread with none, the line that started its work
    (:func:`started_by`), else ``sys``."""
    frame: FrameType | None = sys._getframe(1)  # the llmecon function warning
    level = 2  # warnings.warn's stacklevel that names it
    while frame is not None and _skipped(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    starter = _STARTED_BY.get(threading.get_ident()) if frame is None else None
    if starter is None:
        warnings.warn(message, category, stacklevel=level)
        return
    module_globals = starter.f_globals
    warnings.warn_explicit(
        message,
        category,
        starter.f_code.co_filename,
        starter.f_lineno,
        module=module_globals.get("__name__"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )
