"""Where the shipped top-level folders (``prompts/``, ``personas/``) live.

In a wheel they are package data under ``llmecon/_data/``; in a source checkout or an
editable install they are the repository's top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` (``"prompts"`` or ``"personas"``)."""
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / name
