"""Where the shipped top-level folders (``prompts/``, ``personas/``) live, and paths
given to the Python API.

In a wheel they are package data under ``llmecon/_data/``; in a source checkout or an
editable install they are the repository's top-level folders.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def in_package(path: Path) -> bool:
    """Whether ``path`` (resolved) lies in the installed llmecon package: its code,
    presets, tables or shipped data, which no output may replace or fill."""
    return path.resolve().is_relative_to(_PACKAGE_DIR)


def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` (``"prompts"`` or ``"personas"``)."""
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / name


def path_argument(value: object, function: str, what: str = "a run folder's path") -> Path:
    """``value`` as a :class:`Path`, or a ``TypeError`` that names ``function`` and what
    it takes (``load_run(5)`` said only "expected str, bytes or os.PathLike object")."""
    if isinstance(value, str | PathLike):
        return Path(value)
    raise TypeError(
        f"{function} takes {what} (a str or Path), not {type(value).__name__} {value!r}"
    )
