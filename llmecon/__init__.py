"""llmecon: design tax policy with language models.

``llmecon.load_run(path)`` loads a logged run as pandas DataFrames. It is imported on
first use, so ``import llmecon.economy`` (and ``llmecon --help``) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmecon.runs.dataframes import RunData, load_run

__all__ = ["RunData", "load_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmecon.runs import dataframes

        return getattr(dataframes, name)
    raise AttributeError(f"module 'llmecon' has no attribute {name!r}")
