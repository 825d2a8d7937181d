"""JSON read strictly: a key given twice and NaN or Infinity are refused, not guessed
at (a model's reply, a config file)."""

from __future__ import annotations

from typing import Any


class DuplicateKeyError(ValueError):
    """A JSON object gives a key twice (``json`` keeps the last without a word)."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (:class:`DuplicateKeyError`)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKeyError(f"the key {twice!r} is given twice: give each field once")
    return obj


def no_constant(text: str) -> Any:
    """``parse_constant`` refusing ``NaN``, ``Infinity`` and ``-Infinity``."""
    raise ValueError(f"{text} is not a JSON number")
