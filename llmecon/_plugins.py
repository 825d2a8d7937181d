"""Plug-ins: third-party planners, model providers and SWFs announced by entry points.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."llmecon.planners"]
    my-planner = "my_package.planners:my_factory"

    [project.entry-points."llmecon.providers"]
    myprov = "my_package.provider:MyProvider"

    [project.entry-points."llmecon.swfs"]
    median = "my_package.welfare:MEDIAN"

The registries (:mod:`llmecon.planners.base`, :mod:`llmecon.models._registry`,
:mod:`llmecon.economy.welfare`) load their group once, when first used. See
``docs/plugins.md``. A plug-in that fails to load is skipped with a
:class:`PluginWarning` naming it; it never stops the CLI. A plug-in never replaces a
name registered before it (a built-in above all), in any of the three registries:
whatever its import registered under such a name is undone, with a warning, so that a
run recorded as ``saez`` is Saez.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from llmecon._warn import warn


class PluginWarning(UserWarning):
    """A plug-in could not be loaded or registered (it is skipped)."""


def is_llmecon_code(obj: object) -> bool:
    """Whether ``obj`` (a function, a class, an instance's type: its ``__module__``) is
    llmecon's own code rather than a plug-in's or a script's: an error of llmecon's is a
    bug to show, one of a plug-in's its author's, named and contained."""
    return (getattr(obj, "__module__", None) or "").startswith("llmecon.")


def warn_plugin(group: str, name: str, value: str, problem: str) -> None:
    """Warn that the plug-in ``name`` (``value``) of ``group`` was skipped."""
    warn(f"llmecon: skipped the {group} plug-in {name!r} ({value}): {problem}", PluginWarning)


#: The registries a plug-in's import may not overwrite: (label, returns the registry
#: dict). Each registry module adds itself when imported (:func:`guard_registry`).
_GUARDED: list[tuple[str, Callable[[], dict[str, Any]]]] = []


def guard_registry(label: str, registry: Callable[[], dict[str, Any]]) -> None:
    """Protect the names of ``registry()`` (``label``: "planner", "provider", "SWF")
    from being replaced or removed by any plug-in's import, whatever its group."""
    _GUARDED.append((label, registry))


def register_entry_points(
    group: str,
    registry: Callable[[], dict[str, Any]],
    what: str,
    accepts: Callable[[Any], bool],
    register: Callable[[str, Any, importlib.metadata.EntryPoint], object],
    name_of: Callable[[importlib.metadata.EntryPoint, Any], str] = lambda ep, _: ep.name,
) -> None:
    """Register what the entry points of ``group`` provide, in the ``registry()`` dict.

    An entry point loads either a module whose import registered its entries (left as
    it is), or an object ``accepts`` takes (``what``: "a planner factory"), registered
    with ``register(name_of(ep, obj), obj, ep)`` unless loading it registered that name
    already. A name registered before (by llmecon or an earlier plug-in), a
    ``ValueError`` of ``register`` (an invalid name) and any other object are skipped
    with a :class:`PluginWarning`."""
    import inspect

    seen = set(registry())
    for ep, obj in load_plugins(group):
        added = set(registry()) - seen  # what loading this entry point registered
        seen |= added
        if inspect.ismodule(obj):
            continue
        if not accepts(obj):
            warn_plugin(group, ep.name, ep.value, f"neither a module nor {what}")
            continue
        name = name_of(ep, obj)
        if name in added:
            continue  # its import registered it
        if name in registry():
            warn_plugin(group, ep.name, ep.value, f"the name {name!r} is taken")
            continue
        try:
            register(name, obj, ep)
        except ValueError as exc:
            warn_plugin(group, ep.name, ep.value, str(exc))
        seen |= set(registry())


def load_plugins(group: str) -> Iterator[tuple[importlib.metadata.EntryPoint, Any]]:
    """``(entry point, loaded object)`` for each entry point of ``group`` that loads; one
    that raises while loading is skipped with a :class:`PluginWarning`.

    A name of any guarded registry (:func:`guard_registry`) that the entry point's
    import re-registered or removed is put back as it was, with a
    :class:`PluginWarning`; the new names it registered stay.
    """
    try:
        found = list(importlib.metadata.entry_points(group=group))
    except Exception as exc:  # a broken distribution's metadata must not stop the CLI
        warn_plugin(group, "*", "entry points", f"{type(exc).__name__}: {exc}")
        return
    for ep in found:
        before = [(label, get, dict(get())) for label, get in _GUARDED]
        try:
            obj = ep.load()
        except Exception as exc:  # any error of third-party code: skip, say so
            warn_plugin(group, ep.name, ep.value, f"{type(exc).__name__}: {exc}")
            _keep(group, ep, before)
            continue
        _keep(group, ep, before)
        yield ep, obj


def _keep(
    group: str,
    ep: importlib.metadata.EntryPoint,
    before: list[tuple[str, Callable[[], dict[str, Any]], dict[str, Any]]],
) -> None:
    """Undo what loading ``ep`` did to names that were registered before it."""
    for label, get, entries in before:
        registry = get()
        for name, entry in entries.items():
            now = registry.get(name)
            if now is entry or _resolved(entry, now):
                continue
            registry[name] = entry
            warn(
                f"llmecon: the {group} plug-in {ep.name!r} ({ep.value}) tried to replace "
                f"the {label} {name!r}, which was registered before it; kept the earlier one",
                PluginWarning,
            )


def _resolved(lazy: Any, now: Any) -> bool:
    """Whether ``now`` is what the lazy ``"module:attr"`` registry entry ``lazy`` names
    (the provider registry imports such entries on first use; the path may name a
    re-export, so it is imported, not compared as text)."""
    if not isinstance(lazy, str) or now is None or isinstance(now, str):
        return False
    module, _, attr = lazy.partition(":")
    try:
        return getattr(importlib.import_module(module), attr) is now
    except Exception:  # a path that does not import names something else
        return False


#: How a run's manifest names a plug-in's package among its ``package_versions``.
PLUGIN_PREFIX = "plug-in "


def plugin_versions(objects: Iterable[object]) -> dict[str, str]:
    """``{"plug-in <distribution>": version}`` of the installed packages whose code
    ``objects`` are (a plug-in's planner, provider, SWF function, vote rule); code in
    no installed package (a script's, a notebook's) as ``{"plug-in <module>": "not an
    installed package"}``. llmecon's own objects are left out. What a run's manifest
    records, so that a resume can say a plug-in changed under it."""
    modules = {_module_of(obj) for obj in objects} - {""}
    modules = {m for m in modules if m != "llmecon" and not m.startswith("llmecon.")}
    if not modules:
        return {}
    try:
        owners = importlib.metadata.packages_distributions()
    except Exception:  # a broken distribution's metadata: name the modules alone
        owners = {}
    found: dict[str, str] = {}
    for module in sorted(modules):
        dists = owners.get(module.partition(".")[0]) or []
        if not dists:
            found[f"{PLUGIN_PREFIX}{module}"] = "not an installed package"
        for dist in dists:
            try:
                found[f"{PLUGIN_PREFIX}{dist}"] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                found[f"{PLUGIN_PREFIX}{dist}"] = "unknown version"
    return found


def _module_of(obj: object) -> str:
    """The module that defines ``obj`` (a function or class), else its class's."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or not callable(obj):
        module = getattr(type(obj), "__module__", None)
    return module if isinstance(module, str) else ""


def plugin_changes(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """How the plug-ins of a run's manifest (``recorded``: its ``package_versions``)
    differ from ``now`` (:func:`plugin_versions` of the resumed run), one phrase each:
    ``my-plugins 0.1.0 → 0.2.0``, ``my-plugins 0.1.0 → not used now``,
    ``new-one 1.0 (not used when the run began)``."""
    before, after = _plugins_in(recorded), _plugins_in(now)
    said = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if new is None:
            said.append(f"{name} {old} → not used now")
        elif old is None:
            said.append(f"{name} {new} (not used when the run began)")
        else:
            said.append(f"{name} {old} → {new}")
    return said


def _plugins_in(versions: Mapping[str, str]) -> dict[str, str]:
    """The plug-in entries of ``package_versions``, by package (:data:`PLUGIN_PREFIX` off)."""
    return {
        key.removeprefix(PLUGIN_PREFIX): version
        for key, version in versions.items()
        if key.startswith(PLUGIN_PREFIX)
    }
