"""Prices of hosted models, from LiteLLM's maintained cost map (no network).

The map is the one ``litellm.model_cost`` holds with ``LITELLM_LOCAL_MODEL_COST_MAP=True``:
``model_prices_and_context_window_backup.json`` inside the installed (pinned) litellm.
It is read straight from that file (~40 ms, once per process) rather than by importing
litellm (~2–3 s, which would also block the event loop in the middle of a run); if the
file is not where this release of litellm keeps it, ``litellm.model_cost`` is used.

A name is looked up as given (``gpt-4o``, dated snapshots such as ``gpt-4o-2024-08-06``,
``claude-opus-4-5``, litellm-style ``groq/…``), then with a provider prefix whose map
entry belongs to that provider removed (``openai/gpt-4o`` → ``gpt-4o``,
``anthropic/claude-opus-4-5`` → ``claude-opus-4-5``). A model not in the map has an
unknown price: its cost is ``None``, never a guess (``Model.set_price`` overrides).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from llmecon.models._types import Usage

#: The cost map file inside the litellm package (litellm 1.106.2).
_MAP_FILE = "model_prices_and_context_window_backup.json"


def _map_path() -> Path | None:
    """Where the installed litellm keeps its cost map (found without importing litellm)."""
    spec = importlib.util.find_spec("litellm")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _MAP_FILE
        if path.is_file():
            return path
    return None


@functools.cache
def cost_map() -> dict[str, Any]:
    """LiteLLM's cost map: model name -> entry with ``input_cost_per_token``, …"""
    path = _map_path()
    if path is not None:
        with path.open(encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        return data
    from llmecon.models._litellm import import_litellm  # sets LITELLM_LOCAL_MODEL_COST_MAP

    return dict(import_litellm().model_cost)


def _entry_price(entry: Any) -> tuple[float, float] | None:
    """``(input, output)`` USD per token of a map entry, if it has both prices."""
    if not isinstance(entry, dict):
        return None
    per_input, per_output = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if isinstance(per_input, int | float) and isinstance(per_output, int | float):
        return float(per_input), float(per_output)
    return None


@functools.cache
def _price_per_token(model: str) -> tuple[float, float] | None:
    table = cost_map()
    for name in dict.fromkeys((model, model.lower())):
        if name == "sample_spec":  # the map's documentation entry
            return None
        price = _entry_price(table.get(name))
        if price is not None:
            return price
        provider, sep, rest = name.partition("/")
        entry = table.get(rest) if sep else None
        if isinstance(entry, dict) and entry.get("litellm_provider") == provider:
            price = _entry_price(entry)
            if price is not None:
                return price
    return None


def price_of(model: str) -> tuple[float, float] | None:
    """``(input, output)`` USD per 1M tokens of ``model``, or ``None`` when unknown."""
    price = _price_per_token(model)
    return None if price is None else (price[0] * 1e6, price[1] * 1e6)


def price_known(model: str) -> bool:
    """Whether ``model`` is in the price map."""
    return _price_per_token(model) is not None


def cost_usd(model: str, usage: Usage) -> float | None:
    """Cost of ``usage`` on ``model``, or ``None`` when the price is unknown."""
    price = _price_per_token(model)
    if price is None:
        return None
    return usage.input_tokens * price[0] + usage.output_tokens * price[1]


def cost_at(price_per_mtok: tuple[float, float], usage: Usage) -> float:
    """Cost of ``usage`` at ``(input, output)`` USD per 1M tokens (a price override)."""
    return (usage.input_tokens * price_per_mtok[0] + usage.output_tokens * price_per_mtok[1]) / 1e6
