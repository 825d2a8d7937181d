"""Prices of common hosted models, in USD per million tokens (input, output).

List prices as published by OpenAI and Anthropic (standard tier, no batch or cache
discounts), checked 2025. A model not in the table has an unknown price: its cost is
``None``, never a guess. Dated snapshots (``gpt-4o-2024-08-06``) match their family by
the longest prefix.
"""

from __future__ import annotations

from llmecon.models._types import Usage

#: model family -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    # Anthropic
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
}


def price_of(model: str) -> tuple[float, float] | None:
    """``(input, output)`` USD per 1M tokens of ``model`` (provider prefix allowed)."""
    name = model.rsplit("/", 1)[-1].lower()
    best: str | None = None
    for family in PRICES_PER_MTOK:
        matches = name == family or (name.startswith(family + "-") and _is_snapshot(name, family))
        if matches and (best is None or len(family) > len(best)):
            best = family
    return PRICES_PER_MTOK[best] if best else None


def _is_snapshot(name: str, family: str) -> bool:
    """``gpt-4o-2024-08-06`` is a snapshot of ``gpt-4o``; ``gpt-4o-audio`` is not."""
    suffix = name[len(family) + 1 :]
    return suffix[:1].isdigit() or suffix in {"latest", "preview"}


def cost_usd(model: str, usage: Usage) -> float | None:
    """Cost of ``usage`` on ``model``, or ``None`` when the price is unknown."""
    price = price_of(model)
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6
