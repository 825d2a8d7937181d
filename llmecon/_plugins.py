"""Plug-ins: third-party planners and model providers announced by entry points.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."llmecon.planners"]
    my-planner = "my_package.planners:my_factory"

    [project.entry-points."llmecon.providers"]
    myprov = "my_package.provider:MyProvider"

The registries (:mod:`llmecon.planners.base`, :mod:`llmecon.models._registry`) load
their group once, when first used. See ``docs/plugins.md``. A plug-in that fails to
load is skipped with a :class:`PluginWarning` naming it; it never stops the CLI.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterator
from typing import Any


class PluginWarning(UserWarning):
    """A plug-in could not be loaded or registered (it is skipped)."""


def warn_plugin(group: str, name: str, value: str, problem: str) -> None:
    """Warn that the plug-in ``name`` (``value``) of ``group`` was skipped."""
    warnings.warn(
        f"llmecon: skipped the {group} plug-in {name!r} ({value}): {problem}",
        PluginWarning,
        stacklevel=3,
    )


def load_plugins(group: str) -> Iterator[tuple[importlib.metadata.EntryPoint, Any]]:
    """``(entry point, loaded object)`` for each entry point of ``group`` that loads; one
    that raises while loading is skipped with a :class:`PluginWarning`."""
    try:
        found = list(importlib.metadata.entry_points(group=group))
    except Exception as exc:  # a broken distribution's metadata must not stop the CLI
        warn_plugin(group, "*", "entry points", f"{type(exc).__name__}: {exc}")
        return
    for ep in found:
        try:
            obj = ep.load()
        except Exception as exc:  # any error of third-party code: skip, say so
            warn_plugin(group, ep.name, ep.value, f"{type(exc).__name__}: {exc}")
            continue
        yield ep, obj
