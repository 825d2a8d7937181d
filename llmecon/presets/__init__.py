"""Presets: named partial run configurations reproducing the reference papers.

A preset is a YAML file in this folder, ``<name>.yaml``, with a one-line
``description``, optional ``base`` (another preset it extends) and ``settings``
(``RunConfig`` fields). It is applied *under* everything the user says: the field
defaults < the preset < a config file < command-line options or keyword arguments.
``RunConfig`` applies it when validated (``preset:`` in a config file, ``--preset`` on
the command line, ``llmecon.run(preset=…)``) and the manifest records the resolved
config, so a replay never needs the preset again (a config read from a log is taken as
recorded: ``llmecon.runs.config.recorded_config``). The fields a preset fills stay unset
in ``model_fields_set``: ``llmecon.run(config, preset=other)`` gives ``other``'s values
for every field not set on ``config``. ``config.preset`` cannot be assigned on a built
config (``ConfigError``): build a new one with the preset. A ``personas`` value naming a
file in this folder is resolved to its path. Side by side with the papers:
``docs/presets.md``.

This module reads only YAML (no other llmecon import), so ``runs/config.py`` can use it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).resolve().parent


class PresetError(ValueError):
    """An unknown preset, or a preset file that is not a valid preset."""


@functools.cache
def _read(name: str) -> dict[str, Any]:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(preset_names())
        raise PresetError(f"unknown preset {name!r}: use one of {known}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not isinstance(data.get("settings", {}), dict):
        raise PresetError(f"preset file {path} must hold 'description' and a 'settings' mapping")
    return data


def preset_names() -> dict[str, str]:
    """Every shipped preset and its one-line description, by name."""
    out = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out[path.stem] = " ".join(str(data.get("description", "")).split())
    return out


def preset_settings(name: str) -> dict[str, Any]:
    """The ``RunConfig`` fields preset ``name`` sets (its ``base`` first, then its own)."""
    return _resolve(name, ())


def settings_of(preset: object) -> dict[str, Any]:
    """The fields a config's ``preset`` value sets: none for no preset or an unknown
    name (the config's check of its ``preset`` field names the known ones)."""
    if not isinstance(preset, str):
        return {}
    try:
        return preset_settings(preset)
    except PresetError:
        return {}


def _resolve(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if name in seen:
        raise PresetError(f"preset {name!r} extends itself ({' -> '.join((*seen, name))})")
    data = _read(name)
    base = data.get("base")
    settings: dict[str, Any] = _resolve(str(base), (*seen, name)) if base else {}
    own = {str(k).replace("-", "_"): v for k, v in (data.get("settings") or {}).items()}
    personas = own.get("personas")
    if isinstance(personas, str) and (PRESET_DIR / personas).is_file():
        own["personas"] = str(PRESET_DIR / personas)
    settings.update(own)
    return settings


__all__ = ["PRESET_DIR", "PresetError", "preset_names", "preset_settings", "settings_of"]
